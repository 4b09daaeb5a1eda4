"""The seeded schedule, fixed bookings and idempotency (SQLite; PostgreSQL in integration)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from tandem.clock import local_date
from tandem.db.models import Airport, Booking, Customer, Flight
from tandem.seed import SEED_BOOKINGS, flight_row, seed, timetable
from tandem.services.bookings import quote_cancellation

if TYPE_CHECKING:
    from tests.conftest import Db

FLIGHTS_PER_DAY = 2 * 14 * 2 * 2  # hubs x other airports x directions x (morning, evening)


def test_timetable_numbers_are_unique_and_include_the_contract_flights() -> None:
    routes = timetable()
    numbers = [r.flight_number for r in routes]
    assert len(routes) == FLIGHTS_PER_DAY == len(set(numbers))
    by_number = {r.flight_number: r for r in routes}
    assert min(int(n[2:]) for n in numbers) == 100
    assert (by_number["AN204"].origin, by_number["AN204"].destination) == ("BKK", "KBV")
    assert (by_number["AN305"].origin, by_number["AN305"].destination) == ("KBV", "DMK")
    # Every hub serves every other airport both ways, twice a day.
    pairs = Counter((r.origin, r.destination) for r in routes)
    assert set(pairs.values()) == {2} and len(pairs) == 56
    # Longer routes take longer: Tokyo vs Phuket.
    assert by_number["AN118"].duration_minutes > 3 * by_number["AN100"].duration_minutes


def test_seeded_schedule_covers_window_daily(db: Db, seed_now: datetime) -> None:
    today = local_date(seed_now, db.settings.business.timezone)
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Airport)) == 16
        assert s.scalar(select(func.count()).select_from(Flight)) == 35 * FLIGHTS_PER_DAY
        for number in ("AN204", "AN305"):
            days = s.scalars(select(Flight.departure_date).where(Flight.flight_number == number)).all()
            assert sorted(days) == [today + timedelta(days=i) for i in range(35)]
        flight = s.scalars(select(Flight).where(Flight.flight_number == "AN204")).first()
        assert flight is not None
        assert flight.departure_at.astimezone(ZoneInfo("Asia/Bangkok")).date() == flight.departure_date
        assert isinstance(flight.fare_economy, Decimal) and flight.fare_business > flight.fare_economy


def test_fares_and_disruptions_are_deterministic_and_plausible() -> None:
    zone = ZoneInfo("Asia/Bangkok")
    start = datetime(2030, 1, 1).date()
    rows = [flight_row(r, start + timedelta(days=d), zone) for d in range(180) for r in timetable()]
    again = [flight_row(r, start + timedelta(days=d), zone) for d in range(3) for r in timetable()]
    assert rows[: len(again)] == again
    statuses = Counter(str(r["status"]) for r in rows)
    assert 0.02 < statuses["cancelled"] / len(rows) < 0.04
    assert 0.08 < statuses["delayed"] / len(rows) < 0.12
    assert all(int(str(r["delay_minutes"])) > 0 for r in rows if r["status"] == "delayed")
    # The same flight costs different amounts on different days.
    an204 = {r["fare_economy"] for r in rows if r["flight_number"] == "AN204"}
    assert len(an204) > 10


def test_fixed_bookings_exist_with_their_purpose(db: Db, seed_now: datetime) -> None:
    with db.sessions() as s:
        bookings = {b.reference: b for b in s.scalars(select(Booking))}
        assert set(bookings) == {b.reference for b in SEED_BOOKINGS}
        assert s.scalar(select(func.count()).select_from(Customer)) == len(SEED_BOOKINGS)
        assert bookings["ZR7TWM"].status == "cancelled"
        soon = s.get_one(Flight, bookings["HV4QKP"].flight_id)
        assert timedelta(hours=3) <= soon.departure_at - seed_now < timedelta(hours=24)
        tanaka = bookings["XK93PQ"]
        assert (tanaka.cabin, tanaka.passengers, tanaka.last_name) == ("business", 2, "Tanaka")
        flight = s.get_one(Flight, tanaka.flight_id)
        assert flight.seats_business == 12 - 2  # seats of seeded bookings are taken

        small = quote_cancellation(
            s, reference="AB12CD", last_name="smith", settings=db.settings.business, now=seed_now
        )
        assert small.rule == "economy_7d_plus" and not small.needs_approval
        assert Decimal("0") < small.refund_amount < db.settings.business.refund_approval_threshold
        big = quote_cancellation(s, reference="XK93PQ", last_name="Tanaka", settings=db.settings.business, now=seed_now)
        assert big.needs_approval and big.refund_amount > db.settings.business.refund_approval_threshold


def test_seed_is_idempotent_and_extends_the_window_on_a_later_day(db: Db, seed_now: datetime) -> None:
    with db.sessions.begin() as s:
        report = seed(s, settings=db.settings.business, now=seed_now)
    assert (report.airports, report.flights, report.customers, report.bookings) == (0, 0, 0, 0)
    with db.sessions.begin() as s:
        later = seed(s, settings=db.settings.business, now=seed_now + timedelta(days=3))
    assert later.flights == 3 * FLIGHTS_PER_DAY and later.bookings == 0
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Flight)) == 38 * FLIGHTS_PER_DAY
        assert s.scalar(select(func.count()).select_from(Booking)) == len(SEED_BOOKINGS)
