"""Bookings: hold seats, look up, quote and perform cancellations.

Fare rules and the cancellation quote are :mod:`tandem.services.fares` (``FARE_RULES``). A refund
above ``settings.refund_approval_threshold`` is not paid automatically: the booking becomes
``cancellation_pending`` and a ``refund_approval`` ticket waits for an agent.

Seats are held with a single conditional UPDATE (``seats = seats - n WHERE seats >= n``), which
the database serialises per row: concurrent bookings can never oversell a flight, on SQLite or
PostgreSQL, without explicit locks.

Unpaid holds are limited (issue 10, finding 2): open holds per conversation, e-mail and client
key, and a share of each cabin; the counts are serialised per key (:func:`serialize_on`) and by
the flight's row lock, so concurrent attempts cannot go past a limit. Expired holds are released
by :func:`expire_holds`, run by ``python -m tandem.cli expire-holds --every SECONDS``.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tandem.db.models import Booking, Flight, Ticket
from tandem.errors import Conflict, NotFound
from tandem.services import fares
from tandem.services.common import (
    normalize_name_for_match,
    normalize_reference,
    require_aware,
    require_cabin,
    require_email,
    require_last_name,
    require_passengers,
    rowcount,
    serialize_on,
    to_local,
)

# FARE_RULES and FareRule are re-exported: they lived here before tandem.services.fares.
from tandem.services.fares import CENT, CancellationQuote
from tandem.services.fares import FARE_RULES as FARE_RULES
from tandem.services.fares import FareRule as FareRule
from tandem.settings import BrandSettings, BusinessSettings

# No 0/O or 1/I: references are read out over the phone and typed from e-mails.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
REFERENCE_DIGITS = frozenset("23456789")
REFERENCE_LENGTH = 6
REFERENCE_ATTEMPTS = 20


@dataclass(frozen=True)
class BookingCreated:
    reference: str
    flight_number: str
    departure_local: datetime
    total_amount: Decimal
    currency: str
    payment_link: str
    hold_expires_at: datetime


@dataclass(frozen=True)
class BookingDetails:
    reference: str
    status: str
    flight_number: str
    origin: str
    destination: str
    departure_local: datetime
    arrival_local: datetime
    flight_status: str
    cabin: str
    passengers: int
    last_name: str
    total_amount: Decimal
    currency: str
    payment_link: str | None
    hold_expires_at: datetime | None
    cancelled_at: datetime | None
    refund_amount: Decimal | None


@dataclass(frozen=True)
class CancellationResult:
    reference: str
    status: str  # "cancelled" | "pending_approval"
    refund_amount: Decimal
    currency: str
    ticket_id: int | None


def generate_reference(*, flight_prefix: str) -> str:
    """A random reference: unambiguous alphabet, at least one digit and one letter, never the
    flight-number prefix followed by a digit ("AN2...": it would read as a flight number, AN204,
    to the NLU and to people)."""
    while True:
        value = "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(REFERENCE_LENGTH))
        has_digit = any(ch in REFERENCE_DIGITS for ch in value)
        has_letter = any(ch.isalpha() for ch in value)
        if has_digit and has_letter and not (value.startswith(flight_prefix) and value[len(flight_prefix)].isdigit()):
            return value


def create_booking(
    session: Session,
    *,
    flight_id: int,
    passengers: int,
    cabin: str,
    last_name: str,
    email: str,
    settings: BusinessSettings,
    brand: BrandSettings,
    now: datetime,
    conversation_id: str | None = None,
    client_key: str | None = None,
) -> BookingCreated:
    """Hold seats on a flight and create a ``held`` booking with a payment link.

    The seats are taken by one conditional UPDATE; if it changes no row the flight is sold out in
    that cabin (``Conflict(reason="sold_out")``), cancelled (``flight_cancelled``) or gone
    (``departed``); an unknown flight is ``NotFound``. The hold lasts ``settings.hold_minutes``.

    Unpaid holds keep seats from paying customers, so they are limited (see
    :func:`_check_hold_limits`): too many open holds for this conversation, e-mail or client is
    ``Conflict(reason="too_many_holds")``; more than the cabin's share is
    ``Conflict(reason="hold_share")``. A refusal raises after the seats were taken: the caller's
    transaction must roll back on the exception (every caller's ``with sessions.begin()`` does).
    """
    require_aware(now)
    require_passengers(passengers, settings.max_passengers)
    require_cabin(cabin)
    stored_last_name = require_last_name(last_name)
    contact = require_email(email)
    scopes = _hold_scopes(contact, conversation_id, client_key)
    # Before the seat UPDATE, always in this order: limits of one e-mail/client/conversation are
    # counted by one transaction at a time (the flight row lock alone covers only this flight).
    serialize_on(session, *(f"holds:{name}:{value}" for name, value in scopes.items()))

    seats = Flight.seats_business if cabin == "business" else Flight.seats_economy
    taken = session.execute(
        update(Flight)
        .where(
            Flight.id == flight_id,
            seats >= passengers,
            Flight.status != "cancelled",
            Flight.departure_at > now,
        )
        .values({seats: seats - passengers})
        .execution_options(synchronize_session=False)
    )
    if rowcount(taken) != 1:
        _raise_why_not_bookable(session, flight_id=flight_id, now=now)

    # populate_existing: an instance already in this session would still show the old seat count.
    # The UPDATE holds the flight's row lock until commit, so the share counted below is exact.
    flight = session.get_one(Flight, flight_id, populate_existing=True)
    _check_hold_limits(
        session, flight=flight, cabin=cabin, passengers=passengers, scopes=scopes, settings=settings, now=now
    )
    fare = flight.fare_business if cabin == "business" else flight.fare_economy
    reference = _unused_reference(session, flight_prefix=brand.flight_prefix)
    hold_expires_at = now + timedelta(minutes=settings.hold_minutes)
    payment_link = f"{settings.payment_link_base}{reference}"
    total = (fare * passengers).quantize(CENT)
    session.add(
        Booking(
            reference=reference,
            flight_id=flight.id,
            cabin=cabin,
            passengers=passengers,
            last_name=stored_last_name,
            email=contact,
            status="held",
            total_amount=total,
            currency=settings.currency,
            payment_link=payment_link,
            created_at=now,
            hold_expires_at=hold_expires_at,
            conversation_id=conversation_id,
            client_key=client_key,
        )
    )
    # Flush inside the caller's transaction: a unique-violation here rolls the seats back too.
    session.flush()
    return BookingCreated(
        reference=reference,
        flight_number=flight.flight_number,
        departure_local=to_local(flight.departure_at, settings.timezone),
        total_amount=total,
        currency=settings.currency,
        payment_link=payment_link,
        hold_expires_at=hold_expires_at,
    )


def _hold_scopes(email: str, conversation_id: str | None, client_key: str | None) -> dict[str, str]:
    """The booking columns whose open holds are limited, with this hold's values (known ones only)."""
    scopes = {"email": email}
    if conversation_id:
        scopes["conversation_id"] = conversation_id
    if client_key:
        scopes["client_key"] = client_key
    return scopes


def _check_hold_limits(
    session: Session,
    *,
    flight: Flight,
    cabin: str,
    passengers: int,
    scopes: dict[str, str],
    settings: BusinessSettings,
    now: datetime,
) -> None:
    """Refuse a hold that would exceed a limit; called after the seat UPDATE of this hold.

    Open holds are ``held`` bookings whose hold has not expired (an expired one that the job has
    not released yet no longer counts against the customer). Per scope the count excludes this
    hold, which is not inserted yet. The share: seats held after this hold <=
    ``booking_max_held_share`` x (seats left + seats held) of the cabin, i.e. of what it has
    left to sell to paying customers.
    """
    open_hold = (Booking.status == "held", Booking.hold_expires_at > now)
    limits = {
        "email": settings.booking_max_holds_per_email,
        "conversation_id": settings.booking_max_holds_per_conversation,
        "client_key": settings.booking_max_holds_per_client,
    }
    for name, value in scopes.items():
        column = getattr(Booking, name)
        count = session.scalar(select(func.count()).select_from(Booking).where(column == value, *open_hold)) or 0
        if count >= limits[name]:
            raise Conflict(f"too many open holds for this {name}", reason="too_many_holds")

    held = (
        session.scalar(
            select(func.coalesce(func.sum(Booking.passengers), 0)).where(
                Booking.flight_id == flight.id, Booking.cabin == cabin, *open_hold
            )
        )
        or 0
    )
    left = flight.seats_business if cabin == "business" else flight.seats_economy  # after this hold
    if held + passengers > settings.booking_max_held_share * (left + held + passengers):
        raise Conflict("unpaid holds would take too much of this cabin", reason="hold_share")


def get_booking(session: Session, *, reference: str, last_name: str, settings: BusinessSettings) -> BookingDetails:
    """The booking with this reference, if ``last_name`` matches the one it was booked under.

    The last name is compared ignoring case, accents and whitespace. An unknown reference and a
    wrong last name raise the same ``NotFound``: the caller cannot probe for valid references.
    """
    booking, flight = _verified_booking(session, reference=reference, last_name=last_name)
    return BookingDetails(
        reference=booking.reference,
        status=booking.status,
        flight_number=flight.flight_number,
        origin=flight.origin,
        destination=flight.destination,
        departure_local=to_local(flight.departure_at, settings.timezone),
        arrival_local=to_local(flight.arrival_at, settings.timezone),
        flight_status=flight.status,
        cabin=booking.cabin,
        passengers=booking.passengers,
        last_name=booking.last_name,
        total_amount=booking.total_amount,
        currency=booking.currency,
        payment_link=booking.payment_link if booking.status == "held" else None,
        hold_expires_at=booking.hold_expires_at,
        cancelled_at=booking.cancelled_at,
        refund_amount=booking.refund_amount,
    )


def quote_cancellation(
    session: Session, *, reference: str, last_name: str, settings: BusinessSettings, now: datetime
) -> CancellationQuote:
    """What cancelling this booking now would refund, under :mod:`tandem.services.fares`. Changes nothing.

    Raises ``NotFound`` (as :func:`get_booking`) or ``Conflict`` with reason ``departed``,
    ``already_cancelled`` or ``cancellation_pending``.
    """
    require_aware(now)
    booking, flight = _verified_booking(session, reference=reference, last_name=last_name)
    return fares.quote(booking, flight, settings=settings, now=now)


def cancel_booking(
    session: Session,
    *,
    reference: str,
    last_name: str,
    settings: BusinessSettings,
    now: datetime,
    conversation_id: str,
    channel: str | None = None,
) -> CancellationResult:
    """Cancel a booking, or ask an agent to approve its refund when that is above the threshold.

    At or below ``settings.refund_approval_threshold``: the booking is ``cancelled``, its seats go
    back on sale and the refund is recorded (status ``"cancelled"``). Above it: the booking becomes
    ``cancellation_pending`` and a ``refund_approval`` ticket is opened (status
    ``"pending_approval"``, ``ticket_id`` set, the ticket records the ``channel`` the customer
    asked on); the seats stay held until an agent decides. Errors as :func:`quote_cancellation`.
    """
    require_aware(now)
    booking, flight = _verified_booking(session, reference=reference, last_name=last_name, for_update=True)
    quote = fares.quote(booking, flight, settings=settings, now=now)
    # Conditional on the status read above: a concurrent cancellation cannot refund twice.
    new_status = "cancellation_pending" if quote.needs_approval else "cancelled"
    changed = session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status.in_(("held", "confirmed")))
        .values(
            status=new_status,
            refund_amount=quote.refund_amount,
            cancelled_at=None if quote.needs_approval else now,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Conflict("the booking was changed meanwhile", reason="already_cancelled")

    if quote.needs_approval:
        ticket = Ticket(
            conversation_id=conversation_id,
            kind="refund_approval",
            reason="refund_above_threshold",
            status="queued",
            transcript=[],
            slots={"booking_ref": booking.reference, "refund_amount": str(quote.refund_amount)},
            summary=(
                f"Customer asked to cancel booking {booking.reference} ({flight.flight_number}, "
                f"{booking.passengers} x {booking.cabin}). Refund {quote.refund_amount} {booking.currency} "
                f"under rule {quote.rule} exceeds the approval threshold."
            ),
            booking_reference=booking.reference,
            created_at=now,
            channel=channel[:32] if channel else None,
        )
        session.add(ticket)
        session.flush()
        return CancellationResult(
            reference=booking.reference,
            status="pending_approval",
            refund_amount=quote.refund_amount,
            currency=booking.currency,
            ticket_id=ticket.id,
        )

    release_seats(session, booking)
    return CancellationResult(
        reference=booking.reference,
        status="cancelled",
        refund_amount=quote.refund_amount,
        currency=booking.currency,
        ticket_id=None,
    )


def expire_holds(session: Session, *, now: datetime) -> int:
    """Cancel ``held`` bookings whose hold has expired and put their seats back on sale.

    Meant for a periodic job; returns how many bookings expired.
    """
    require_aware(now)
    expired = session.scalars(
        select(Booking)
        .where(Booking.status == "held", Booking.hold_expires_at <= now)
        .with_for_update(skip_locked=True)
    ).all()
    for booking in expired:
        booking.status = "cancelled"
        booking.cancelled_at = now
        booking.refund_amount = Decimal("0.00")
        release_seats(session, booking)
    session.flush()
    return len(expired)


def release_seats(session: Session, booking: Booking) -> None:
    """Put a booking's seats back on sale (its cabin, its passengers)."""
    seats = Flight.seats_business if booking.cabin == "business" else Flight.seats_economy
    session.execute(
        update(Flight)
        .where(Flight.id == booking.flight_id)
        .values({seats: seats + booking.passengers})
        .execution_options(synchronize_session=False)
    )


def _verified_booking(
    session: Session, *, reference: str, last_name: str, for_update: bool = False
) -> tuple[Booking, Flight]:
    query = (
        select(Booking, Flight)
        .join(Flight, Flight.id == Booking.flight_id)
        .where(Booking.reference == normalize_reference(reference))
    )
    if for_update:
        query = query.with_for_update(of=Booking)
    row = session.execute(query).first()
    given = normalize_name_for_match(last_name)
    # Compare even when the reference is unknown, so both failures cost the same.
    stored = normalize_name_for_match(row[0].last_name) if row else "\x00"
    if row is None or not given or not hmac.compare_digest(given.encode(), stored.encode()):
        raise NotFound("no booking with this reference and last name")
    return row[0], row[1]


def _unused_reference(session: Session, *, flight_prefix: str) -> str:
    for _ in range(REFERENCE_ATTEMPTS):
        candidate = generate_reference(flight_prefix=flight_prefix)
        if session.scalar(select(Booking.id).where(Booking.reference == candidate)) is None:
            return candidate
    # ~1e9 possible references: reaching this means something else is wrong.
    raise Conflict("could not allocate a booking reference", reason="reference_exhausted")


def _raise_why_not_bookable(session: Session, *, flight_id: int, now: datetime) -> None:
    flight = session.get(Flight, flight_id)
    if flight is None:
        raise NotFound("no such flight")
    if flight.status == "cancelled":
        raise Conflict("the flight is cancelled", reason="flight_cancelled")
    if flight.departure_at <= now:
        raise Conflict("the flight has departed", reason="departed")
    raise Conflict("not enough seats left in this cabin", reason="sold_out")
