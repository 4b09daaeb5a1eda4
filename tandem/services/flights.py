"""Flight search: what can be booked on a route and a local date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from tandem.airports import airport_by_code
from tandem.clock import local_date, local_day_bounds
from tandem.db.models import Flight
from tandem.errors import Invalid
from tandem.services.common import require_aware, require_cabin, require_passengers, to_local
from tandem.settings import BusinessSettings

NEAREST_DATES_SPAN = 3


@dataclass(frozen=True)
class FlightOption:
    flight_id: int
    flight_number: str
    origin: str
    destination: str
    departure_local: datetime
    arrival_local: datetime
    cabin: str
    price_per_person: Decimal
    total_price: Decimal
    seats_left: int


@dataclass(frozen=True)
class SearchResult:
    options: list[FlightOption]
    # Only filled when ``options`` is empty: other local dates within +/-3 days with a fitting flight.
    nearest_dates: list[date]


def search_flights(
    session: Session,
    *,
    origin: str,
    destination: str,
    date: date,
    passengers: int,
    cabin: str,
    limit: int | None = None,
    settings: BusinessSettings,
    now: datetime,
) -> SearchResult:
    """Bookable flights from ``origin`` to ``destination`` on the airline-local ``date``.

    Bookable means: not cancelled, departing after ``now``, and with at least ``passengers`` seats
    left in ``cabin``. Options are ordered by departure; at most ``limit`` (None: the setting
    ``SEARCH_MAX_OPTIONS``). When none fits, the result lists the nearest dates (within 3 days
    either side, not in the past) that have one.

    Raises ``Invalid`` with reason ``unknown_airport``, ``same_airport``, ``no_route`` (no flights
    ever fly this way), ``passengers``, ``cabin`` or ``limit``.
    """
    require_aware(now)
    origin, destination = origin.strip().upper(), destination.strip().upper()
    for code in (origin, destination):
        if airport_by_code(code) is None:
            raise Invalid(f"{code!r} is not an airport we serve", reason="unknown_airport")
    if origin == destination:
        raise Invalid("origin and destination are the same", reason="same_airport")
    require_passengers(passengers, settings.max_passengers)
    require_cabin(cabin)
    limit = settings.search_max_options if limit is None else limit
    if not 1 <= limit <= 50:
        raise Invalid("limit must be between 1 and 50", reason="limit")
    route_exists = session.scalar(select(exists().where(Flight.origin == origin, Flight.destination == destination)))
    if not route_exists:
        raise Invalid(f"no flights from {origin} to {destination}", reason="no_route")

    seats = Flight.seats_business if cabin == "business" else Flight.seats_economy
    start, end = local_day_bounds(date, settings.timezone)
    bookable = (
        Flight.origin == origin,
        Flight.destination == destination,
        Flight.status != "cancelled",
        Flight.departure_at > now,
        seats >= passengers,
    )
    flights = session.scalars(
        select(Flight)
        .where(*bookable, Flight.departure_at >= start, Flight.departure_at < end)
        .order_by(Flight.departure_at)
        .limit(limit)
    ).all()
    options = [_option(f, cabin=cabin, passengers=passengers, tz=settings.timezone) for f in flights]
    if options:
        return SearchResult(options=options, nearest_dates=[])

    window_start, _ = local_day_bounds(date - timedelta(days=NEAREST_DATES_SPAN), settings.timezone)
    _, window_end = local_day_bounds(date + timedelta(days=NEAREST_DATES_SPAN), settings.timezone)
    departures = session.scalars(
        select(Flight.departure_at).where(
            *bookable, Flight.departure_at >= window_start, Flight.departure_at < window_end
        )
    ).all()
    days = {local_date(d, settings.timezone) for d in departures} - {date}
    nearest = sorted(days, key=lambda d: (abs((d - date).days), d))
    return SearchResult(options=[], nearest_dates=nearest)


def _option(flight: Flight, *, cabin: str, passengers: int, tz: str) -> FlightOption:
    business = cabin == "business"
    price = flight.fare_business if business else flight.fare_economy
    return FlightOption(
        flight_id=flight.id,
        flight_number=flight.flight_number,
        origin=flight.origin,
        destination=flight.destination,
        departure_local=to_local(flight.departure_at, tz),
        arrival_local=to_local(flight.arrival_at, tz),
        cabin=cabin,
        price_per_person=price,
        total_price=price * passengers,
        seats_left=flight.seats_business if business else flight.seats_economy,
    )
