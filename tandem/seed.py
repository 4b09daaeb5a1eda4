"""Seed data: airports and a daily schedule; on request, demo customers and bookings.

What a deployment gets from ``python -m tandem.cli seed``: the airports and the demo airline's
schedule (catalogue data, nothing personal; a real airline replaces :func:`timetable` or loads its
own schedule). The fixed demo customers and bookings below are different: their references and
last names are published (README, tests), so anyone could open or cancel them. They are added only
with ``seed(..., demo=True)`` — ``seed --demo`` or ``SEED_DEMO_DATA=true`` on the command line,
which ``make run`` (embedded demo) and the tests use, and a production database never needs.

Idempotent: rows that already exist (airport code, flight number + local date, customer e-mail,
booking reference) are left alone, so re-running adds nothing, and re-running on a later day only
adds the days that entered the window (``SCHEDULE_DAYS`` from today in the airline time zone).

Timetable (deterministic, see :func:`timetable`). Each hub (BKK, DMK) flies to every other served
airport twice a day, morning and evening, and back. Flight numbers are fixed per route and time of
day so that the same number flies every day:

====================  ==========  =========================================================
block                 numbers     within the block
====================  ==========  =========================================================
BKK morning           AN100-127   AN1{2i} hub -> airport i, AN1{2i+1} airport i -> hub
BKK evening           AN200-227   same pattern
DMK morning           AN300-327   same pattern
DMK evening           AN400-427   same pattern
====================  ==========  =========================================================

``i`` is the airport's position among the non-hub airports of :data:`tandem.airports.AIRPORTS`
(HKT=0, CNX=1, KBV=2, ...). So AN204 is Bangkok (BKK) -> Krabi in the evening and AN305 is
Krabi -> Bangkok (DMK) in the morning. Fares (THB) and a few delays/cancellations are drawn from a
random generator seeded with :data:`SEED`, the flight number and the date: the same every run.

Fixed bookings (references are part of the test and demo contract):

=========  ==========  ==============================================================
reference  last name   purpose
=========  ==========  ==============================================================
AB12CD     Smith       confirmed, economy, 1 pax, AN100 BKK->HKT in 20 days: small
                       automatic refund (75 % rule)
XK93PQ     Tanaka      confirmed, business, 2 pax, AN118 BKK->NRT in 30 days: refund
                       above the approval threshold (ticket for an agent)
ZR7TWM     Garcia      already cancelled (AN204 in 10 days): cancelling again conflicts
HV4QKP     Müller      confirmed, economy, 1 pax, first flight departing 3-24 h after the
                       seed ran: "within 24 h" (no economy refund); accented last name
=========  ==========  ==============================================================
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from tandem.airports import AIRPORTS, HUBS
from tandem.clock import local_date
from tandem.db.models import Airport, Booking, Customer, Flight
from tandem.settings import BusinessSettings

log = logging.getLogger(__name__)

SEED = 20_250_101
SEATS_ECONOMY = 150
SEATS_BUSINESS = 12
CANCELLED_SHARE = 0.03
DELAYED_SHARE = 0.10
DELAY_CHOICES = (15, 20, 30, 45, 60, 90, 120, 180)
TURNAROUND_MINUTES = 50

# Block time from Bangkok in minutes (both Bangkok airports are close enough to share it).
BLOCK_MINUTES: dict[str, int] = {
    "HKT": 85, "CNX": 75, "KBV": 80, "USM": 65, "CEI": 85, "HDY": 90,
    "SIN": 140, "KUL": 125, "HKG": 165, "NRT": 360, "ICN": 330, "DPS": 255,
    "SGN": 90, "HAN": 110,
}  # fmt: skip

# First departure of each block, minutes after local midnight; airports are staggered by 10 min.
SLOT_START_MINUTES = {"morning": 6 * 60, "evening": 14 * 60}


@dataclass(frozen=True)
class ScheduledRoute:
    """One daily flight of the timetable."""

    flight_number: str
    origin: str
    destination: str
    departure_minute: int  # minutes after local midnight
    duration_minutes: int
    international: bool


@dataclass(frozen=True)
class SeedBooking:
    reference: str
    last_name: str
    first_name: str
    email: str
    cabin: str
    passengers: int
    status: str
    flight_number: str | None  # None: the first flight departing 3-24 h from now
    days_ahead: int


SEED_BOOKINGS: tuple[SeedBooking, ...] = (
    SeedBooking("AB12CD", "Smith", "John", "john.smith@example.com", "economy", 1, "confirmed", "AN100", 20),
    SeedBooking("XK93PQ", "Tanaka", "Yuki", "yuki.tanaka@example.com", "business", 2, "confirmed", "AN118", 30),
    SeedBooking("ZR7TWM", "Garcia", "Maria", "maria.garcia@example.com", "economy", 1, "cancelled", "AN204", 10),
    SeedBooking("HV4QKP", "Müller", "Lena", "lena.mueller@example.com", "economy", 1, "confirmed", None, 0),
)  # fmt: skip


@dataclass(frozen=True)
class SeedReport:
    airports: int
    flights: int
    customers: int
    bookings: int


def timetable() -> list[ScheduledRoute]:
    """Every daily flight, in flight-number order (see the module docstring)."""
    non_hubs = [a for a in AIRPORTS if a.code not in HUBS]
    routes: list[ScheduledRoute] = []
    for hub_index, hub in enumerate(HUBS):
        for slot_index, start in enumerate(SLOT_START_MINUTES.values()):
            block = 100 + 100 * (2 * hub_index + slot_index)
            for i, airport in enumerate(non_hubs):
                duration = BLOCK_MINUTES[airport.code]
                international = airport.country != "TH"
                # DMK five minutes after BKK so the two hubs do not depart in lockstep.
                out_departure = start + 10 * i + 5 * hub_index
                back_departure = _round5(out_departure + duration + TURNAROUND_MINUTES)
                routes.append(
                    ScheduledRoute(f"AN{block + 2 * i}", hub, airport.code, out_departure, duration, international)
                )
                routes.append(
                    ScheduledRoute(f"AN{block + 2 * i + 1}", airport.code, hub, back_departure, duration, international)
                )
    return routes


def seed(session: Session, *, settings: BusinessSettings, now: datetime, demo: bool = False) -> SeedReport:
    """Insert whatever is missing; return how many rows of each kind were added.

    Airports and the schedule always; the demo customers and bookings only with ``demo``.
    """
    airports = _seed_airports(session)
    flights = _seed_flights(session, settings=settings, now=now)
    customers = _seed_customers(session, now=now) if demo else 0
    bookings = _seed_bookings(session, settings=settings, now=now) if demo else 0
    report = SeedReport(airports=airports, flights=flights, customers=customers, bookings=bookings)
    log.info("seed done: %s", report)
    return report


def flight_row(route: ScheduledRoute, day: date, zone: ZoneInfo) -> dict[str, object]:
    """The database row of one route on one local day, with its fares and status."""
    # Deterministic demo data, not security: a seeded PRNG is exactly what is wanted.
    rng = random.Random(f"{SEED}:{route.flight_number}:{day.isoformat()}")  # noqa: S311
    departure_local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=route.departure_minute)
    departure_at = departure_local.astimezone(ZoneInfo("UTC"))
    arrival_at = departure_at + timedelta(minutes=route.duration_minutes)
    base = Decimal(500 + 10 * route.duration_minutes) * (Decimal("1.8") if route.international else 1)
    # Demand: +/- around the base, busier on Fridays and Sundays.
    factor = Decimal(str(round(0.85 + 0.5 * rng.random(), 3)))
    if day.weekday() in (4, 6):
        factor += Decimal("0.10")
    economy = (base * factor).quantize(Decimal("1E1"), rounding=ROUND_HALF_UP)
    business = (economy * Decimal("3.5")).quantize(Decimal("1E1"), rounding=ROUND_HALF_UP)
    draw = rng.random()
    status, delay = "scheduled", 0
    if draw < CANCELLED_SHARE:
        status = "cancelled"
    elif draw < CANCELLED_SHARE + DELAYED_SHARE:
        status, delay = "delayed", rng.choice(DELAY_CHOICES)
    return {
        "flight_number": route.flight_number,
        "origin": route.origin,
        "destination": route.destination,
        "departure_date": day,
        "departure_at": departure_at,
        "arrival_at": arrival_at,
        "status": status,
        "delay_minutes": delay,
        "seats_economy": SEATS_ECONOMY,
        "seats_business": SEATS_BUSINESS,
        "fare_economy": economy.quantize(Decimal("0.01")),
        "fare_business": business.quantize(Decimal("0.01")),
    }


def _round5(minutes: int) -> int:
    return (minutes + 4) // 5 * 5


def _seed_airports(session: Session) -> int:
    existing = set(session.scalars(select(Airport.code)))
    rows = [
        {"code": a.code, "city": a.city, "name": a.name, "country": a.country, "is_hub": a.code in HUBS}
        for a in AIRPORTS
        if a.code not in existing
    ]
    if rows:
        session.execute(insert(Airport), rows)
    return len(rows)


def _seed_flights(session: Session, *, settings: BusinessSettings, now: datetime) -> int:
    zone = ZoneInfo(settings.timezone)
    first = local_date(now, settings.timezone)
    last = first + timedelta(days=settings.schedule_days - 1)
    existing = set(
        session.execute(
            select(Flight.flight_number, Flight.departure_date).where(Flight.departure_date.between(first, last))
        ).tuples()
    )
    routes = timetable()
    rows = [
        flight_row(route, first + timedelta(days=offset), zone)
        for offset in range(settings.schedule_days)
        for route in routes
        if (route.flight_number, first + timedelta(days=offset)) not in existing
    ]
    # One executemany in chunks: SQLAlchemy batches it (insertmanyvalues), a few seconds at most.
    for start in range(0, len(rows), 5000):
        session.execute(insert(Flight), rows[start : start + 5000])
    return len(rows)


def _seed_customers(session: Session, *, now: datetime) -> int:
    existing = set(session.scalars(select(Customer.email)))
    rows = [
        {"email": b.email, "first_name": b.first_name, "last_name": b.last_name, "created_at": now}
        for b in SEED_BOOKINGS
        if b.email not in existing
    ]
    if rows:
        session.execute(insert(Customer), rows)
    return len(rows)


def _seed_bookings(session: Session, *, settings: BusinessSettings, now: datetime) -> int:
    existing = set(session.scalars(select(Booking.reference)))
    today = local_date(now, settings.timezone)
    added = 0
    for spec in SEED_BOOKINGS:
        if spec.reference in existing:
            continue
        flight = _flight_for(session, spec, settings=settings, today=today, now=now)
        if flight is None:
            log.warning("no flight for seeded booking %s; skipped", spec.reference)
            continue
        # Seeded bookings demonstrate fare rules, which an airline cancellation would override.
        if flight.status in ("cancelled", "delayed"):
            flight.status, flight.delay_minutes = "scheduled", 0
        fare = flight.fare_business if spec.cabin == "business" else flight.fare_economy
        total = fare * spec.passengers
        cancelled = spec.status == "cancelled"
        if not cancelled:
            seats = Flight.seats_business if spec.cabin == "business" else Flight.seats_economy
            session.execute(update(Flight).where(Flight.id == flight.id).values({seats: seats - spec.passengers}))
        session.add(
            Booking(
                reference=spec.reference,
                flight_id=flight.id,
                cabin=spec.cabin,
                passengers=spec.passengers,
                last_name=spec.last_name,
                email=spec.email,
                status=spec.status,
                total_amount=total,
                currency=settings.currency,
                payment_link=None,
                created_at=now,
                hold_expires_at=None,
                cancelled_at=now if cancelled else None,
                refund_amount=(total * Decimal("0.75")).quantize(Decimal("0.01")) if cancelled else None,
            )
        )
        added += 1
    session.flush()
    return added


def _flight_for(
    session: Session, spec: SeedBooking, *, settings: BusinessSettings, today: date, now: datetime
) -> Flight | None:
    if spec.flight_number is None:
        return session.scalars(
            select(Flight)
            .where(
                Flight.departure_at >= now + timedelta(hours=3),
                Flight.departure_at < now + timedelta(hours=24),
                Flight.status != "cancelled",
            )
            .order_by(Flight.departure_at, Flight.flight_number)
            .limit(1)
        ).first()
    day = today + timedelta(days=spec.days_ahead)
    flight = session.scalars(
        select(Flight).where(Flight.flight_number == spec.flight_number, Flight.departure_date == day)
    ).first()
    if flight is None:
        # A short SCHEDULE_DAYS window does not reach the booking: add just that flight, exactly
        # as a longer window would have (so extending the window later skips it).
        route = next(r for r in timetable() if r.flight_number == spec.flight_number)
        flight = Flight(**flight_row(route, day, ZoneInfo(settings.timezone)))
        session.add(flight)
        session.flush()
    return flight
