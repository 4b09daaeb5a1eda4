"""Bookings: holds, lookup, fare rules, cancellation and approval."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from tandem.clock import utc_now
from tandem.db.models import Booking, Flight, Ticket
from tandem.errors import Conflict, Invalid, NotFound
from tandem.services.bookings import (
    BookingCreated,
    cancel_booking,
    create_booking,
    expire_holds,
    generate_reference,
    get_booking,
    quote_cancellation,
)
from tandem.settings import ActionSettings

if TYPE_CHECKING:
    from tests.conftest import Db

FlightFactory = Callable[..., int]


def _book(
    db: Db,
    flight_id: int,
    *,
    now: datetime,
    passengers: int = 1,
    cabin: str = "economy",
    last_name: str = "Smith",
    email: str = "Someone@Example.com",
    settings: ActionSettings | None = None,
) -> BookingCreated:
    with db.sessions.begin() as s:
        return create_booking(
            s,
            flight_id=flight_id,
            passengers=passengers,
            cabin=cabin,
            last_name=last_name,
            email=email,
            settings=(settings or db.settings).business,
            brand=(settings or db.settings).brand,
            now=now,
        )


def _confirm(db: Db, reference: str) -> None:
    with db.sessions.begin() as s:
        booking = s.scalars(select(Booking).where(Booking.reference == reference)).one()
        booking.status = "confirmed"


def _seats(db: Db, flight_id: int) -> tuple[int, int]:
    with db.sessions() as s:
        flight = s.get_one(Flight, flight_id)
        return flight.seats_economy, flight.seats_business


def test_generated_references_follow_the_rules() -> None:
    for _ in range(3000):
        ref = generate_reference(flight_prefix="AN")
        assert re.fullmatch(r"[2-9A-HJ-NP-Z]{6}", ref), ref
        assert re.search(r"\d", ref) and re.search(r"[A-Z]", ref)
        assert not re.match(r"AN\d", ref)


def test_create_booking_holds_seats_and_returns_payment_link(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=10), fare_business=Decimal("9000.50"))
    created = _book(db, flight_id, now=now, passengers=3, cabin="business", last_name="  van  Dijk ")
    assert created.total_amount == Decimal("27001.50") and created.currency == "THB"
    assert created.payment_link == db.settings.business.payment_link_base + created.reference
    assert created.hold_expires_at == now + timedelta(minutes=db.settings.business.hold_minutes)
    assert created.departure_local.utcoffset() == timedelta(hours=7)
    assert _seats(db, flight_id) == (150, 12 - 3)
    with db.sessions() as s:
        booking = s.scalars(select(Booking).where(Booking.reference == created.reference)).one()
        assert (booking.status, booking.last_name, booking.email) == ("held", "van Dijk", "someone@example.com")


def test_sold_out_cancelled_departed_and_unknown_flights(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    two_left = flight_factory(departure_at=now + timedelta(days=3), seats_economy=2)
    with pytest.raises(Conflict) as err:
        _book(db, two_left, now=now, passengers=3)
    assert err.value.reason == "sold_out"
    assert _seats(db, two_left) == (2, 12)  # nothing taken by the failed attempt
    cancelled = flight_factory(departure_at=now + timedelta(days=3), status="cancelled")
    with pytest.raises(Conflict) as err:
        _book(db, cancelled, now=now)
    assert err.value.reason == "flight_cancelled"
    gone = flight_factory(departure_at=now - timedelta(minutes=5))
    with pytest.raises(Conflict) as err:
        _book(db, gone, now=now)
    assert err.value.reason == "departed"
    with pytest.raises(NotFound):
        _book(db, 10_000_000, now=now)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("passengers", 0, "passengers"),
        ("cabin", "first", "cabin"),
        ("email", "not-an-email", "email"),
        ("last_name", "   ", "last_name"),
    ],
)
def test_create_booking_validates(
    db: Db, flight_factory: FlightFactory, field: str, value: object, reason: str
) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=3))
    with pytest.raises(Invalid) as err:
        _book(db, flight_id, now=now, **{field: value})  # type: ignore[arg-type]
    assert err.value.reason == reason
    assert _seats(db, flight_id) == (150, 12)


def test_concurrent_bookings_on_sqlite_never_oversell(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=3), seats_economy=5)
    outcomes: list[str] = []
    barrier = threading.Barrier(12)
    # Overselling only: the hold limits (tests/security/test_seat_holds.py) would stop it earlier.
    unlimited = db.settings.updated(booking_max_held_share=1.0, booking_max_holds_per_email=99)

    def attempt() -> None:
        barrier.wait()
        try:
            _book(db, flight_id, now=now, settings=unlimited)
            outcomes.append("ok")
        except Conflict as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["ok"] * 5 + ["sold_out"] * 7
    assert _seats(db, flight_id) == (0, 12)


def test_get_booking_matches_last_name_loosely(db: Db) -> None:
    with db.sessions() as s:
        for spelling in ("Müller", "muller", "  MÜLLER ", "Mu ller"):
            details = get_booking(s, reference="hv4qkp", last_name=spelling, settings=db.settings.business)
            assert details.reference == "HV4QKP" and details.last_name == "Müller"
        details = get_booking(s, reference="AB12CD", last_name="smith", settings=db.settings.business)
        assert (details.status, details.cabin, details.passengers) == ("confirmed", "economy", 1)
        assert details.flight_number == "AN100" and details.origin == "BKK" and details.destination == "HKT"
        assert details.payment_link is None  # only held bookings show one


def test_get_booking_mismatch_is_indistinguishable_from_unknown(db: Db) -> None:
    errors = []
    with db.sessions() as s:
        for reference, last_name in (("AB12CD", "Jones"), ("ZZ99ZZ", "Smith"), ("AB12CD", "")):
            with pytest.raises(NotFound) as err:
                get_booking(s, reference=reference, last_name=last_name, settings=db.settings.business)
            errors.append((type(err.value), str(err.value)))
    assert len(set(errors)) == 1


@pytest.mark.parametrize(
    ("cabin", "passengers", "notice", "refund", "fee", "rule"),
    [
        ("economy", 1, timedelta(days=8), Decimal("1500.00"), Decimal("0.00"), "economy_7d_plus"),
        ("economy", 1, timedelta(days=7), Decimal("1500.00"), Decimal("0.00"), "economy_7d_plus"),
        ("economy", 2, timedelta(days=3), Decimal("2000.00"), Decimal("0.00"), "economy_1_to_7d"),
        ("economy", 1, timedelta(hours=24), Decimal("1000.00"), Decimal("0.00"), "economy_1_to_7d"),
        ("economy", 1, timedelta(hours=23), Decimal("0.00"), Decimal("0.00"), "economy_under_24h"),
        ("business", 2, timedelta(hours=2), Decimal("14000.00"), Decimal("2000.00"), "business_fee"),
        ("business", 1, timedelta(days=30), Decimal("7000.00"), Decimal("1000.00"), "business_fee"),
    ],
)
def test_fare_rules(
    db: Db,
    flight_factory: FlightFactory,
    cabin: str,
    passengers: int,
    notice: timedelta,
    refund: Decimal,
    fee: Decimal,
    rule: str,
) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + notice, fare_economy=Decimal("2000"), fare_business=Decimal("8000"))
    created = _book(db, flight_id, now=now, passengers=passengers, cabin=cabin)
    _confirm(db, created.reference)
    with db.sessions() as s:
        quote = quote_cancellation(
            s, reference=created.reference, last_name="smith", settings=db.settings.business, now=now
        )
    assert (quote.refund_amount, quote.fee, quote.rule) == (refund, fee, rule)
    assert quote.needs_approval is False


def test_held_booking_refunds_nothing_and_airline_cancellation_refunds_all(
    db: Db, flight_factory: FlightFactory
) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=10))
    held = _book(db, flight_id, now=now)
    with db.sessions() as s:
        quote = quote_cancellation(
            s, reference=held.reference, last_name="Smith", settings=db.settings.business, now=now
        )
    assert (quote.refund_amount, quote.rule, quote.booking_status) == (Decimal("0.00"), "held_unpaid", "held")

    paid = _book(db, flight_id, now=now, passengers=2)
    _confirm(db, paid.reference)
    with db.sessions.begin() as s:
        s.get_one(Flight, flight_id).status = "cancelled"
    with db.sessions() as s:
        quote = quote_cancellation(
            s, reference=paid.reference, last_name="Smith", settings=db.settings.business, now=now
        )
    assert (quote.refund_amount, quote.rule) == (Decimal("4000.00"), "flight_cancelled")


def test_cancel_below_threshold_cancels_and_releases_seats(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=10), seats_economy=20)
    created = _book(db, flight_id, now=now, passengers=4)
    _confirm(db, created.reference)
    assert _seats(db, flight_id) == (16, 12)
    with db.sessions.begin() as s:
        result = cancel_booking(
            s,
            reference=created.reference,
            last_name="SMITH",
            settings=db.settings.business,
            now=now,
            conversation_id="conv-1",
        )
    assert (result.status, result.refund_amount, result.ticket_id) == ("cancelled", Decimal("6000.00"), None)
    assert _seats(db, flight_id) == (20, 12)
    with db.sessions() as s:
        booking = s.scalars(select(Booking).where(Booking.reference == created.reference)).one()
        assert (booking.status, booking.refund_amount, booking.cancelled_at) == ("cancelled", Decimal("6000.00"), now)
        assert s.scalar(select(func.count()).select_from(Ticket)) == 0
    with pytest.raises(Conflict) as err, db.sessions.begin() as s:
        cancel_booking(
            s,
            reference=created.reference,
            last_name="Smith",
            settings=db.settings.business,
            now=now,
            conversation_id="conv-1",
        )
    assert err.value.reason == "already_cancelled"
    assert _seats(db, flight_id) == (20, 12)  # not released twice


def test_cancel_above_threshold_needs_an_agent(db: Db) -> None:
    now = utc_now()
    with db.sessions() as s:
        flight_id = s.scalars(select(Booking.flight_id).where(Booking.reference == "XK93PQ")).one()
    seats_before = _seats(db, flight_id)
    with db.sessions.begin() as s:
        result = cancel_booking(
            s, reference="XK93PQ", last_name="tanaka", settings=db.settings.business, now=now, conversation_id="conv-42"
        )
    assert result.status == "pending_approval" and result.ticket_id is not None
    assert result.refund_amount > db.settings.business.refund_approval_threshold
    with db.sessions() as s:
        ticket = s.get_one(Ticket, result.ticket_id)
        assert (ticket.kind, ticket.status, ticket.booking_reference, ticket.conversation_id) == (
            "refund_approval",
            "queued",
            "XK93PQ",
            "conv-42",
        )
        assert str(result.refund_amount) in ticket.summary
        booking = s.scalars(select(Booking).where(Booking.reference == "XK93PQ")).one()
        assert booking.status == "cancellation_pending" and booking.refund_amount == result.refund_amount
    assert _seats(db, flight_id) == seats_before  # seats stay held until an agent decides
    with pytest.raises(Conflict) as err, db.sessions() as s:
        quote_cancellation(s, reference="XK93PQ", last_name="Tanaka", settings=db.settings.business, now=now)
    assert err.value.reason == "cancellation_pending"


def test_threshold_is_configurable(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=10))
    created = _book(db, flight_id, now=now)
    _confirm(db, created.reference)
    strict = db.settings.updated(refund_approval_threshold=Decimal("1499.99"))
    with db.sessions() as s:
        quote = quote_cancellation(s, reference=created.reference, last_name="Smith", settings=strict.business, now=now)
    assert quote.refund_amount == Decimal("1500.00") and quote.needs_approval


def test_cancel_after_departure_and_already_cancelled_conflict(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(hours=1))
    created = _book(db, flight_id, now=now)
    later = now + timedelta(hours=2)
    with pytest.raises(Conflict) as err, db.sessions.begin() as s:
        cancel_booking(
            s,
            reference=created.reference,
            last_name="Smith",
            settings=db.settings.business,
            now=later,
            conversation_id="c",
        )
    assert err.value.reason == "departed"
    with pytest.raises(Conflict) as err, db.sessions() as s:
        quote_cancellation(s, reference="ZR7TWM", last_name="Garcia", settings=db.settings.business, now=now)
    assert err.value.reason == "already_cancelled"


def test_expired_holds_release_seats(db: Db, flight_factory: FlightFactory) -> None:
    now = utc_now()
    flight_id = flight_factory(departure_at=now + timedelta(days=5), seats_economy=10)
    held = _book(db, flight_id, now=now, passengers=3)
    with db.sessions.begin() as s:
        assert expire_holds(s, now=now + timedelta(minutes=1)) == 0
    with db.sessions.begin() as s:
        assert expire_holds(s, now=held.hold_expires_at) == 1
    assert _seats(db, flight_id) == (10, 12)
    with db.sessions() as s:
        assert (
            get_booking(s, reference=held.reference, last_name="Smith", settings=db.settings.business).status
            == "cancelled"
        )
