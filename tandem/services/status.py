"""Flight status: the stored operational status, moved forward by the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tandem.clock import local_date
from tandem.db.models import Flight
from tandem.errors import NotFound
from tandem.services.common import require_aware, require_flight_number, to_local
from tandem.settings import BrandSettings, BusinessSettings

# Later stages win: the clock can move a flight forward, never back.
_STAGES = ("scheduled", "delayed", "departed", "landed")


@dataclass(frozen=True)
class FlightStatusInfo:
    flight_number: str
    date: date
    origin: str
    destination: str
    scheduled_departure_local: datetime
    scheduled_arrival_local: datetime
    status: str  # scheduled | delayed | departed | landed | cancelled
    delay_minutes: int
    estimated_departure_local: datetime | None  # None when cancelled
    estimated_arrival_local: datetime | None


def flight_status(
    session: Session,
    *,
    flight_number: str,
    date: date | None = None,
    now: datetime,
    settings: BusinessSettings,
    brand: BrandSettings,
) -> FlightStatusInfo:
    """Status of ``flight_number`` on the airline-local ``date`` (None: the local date of ``now``).

    The stored status (``scheduled`` / ``delayed`` with ``delay_minutes``, ``cancelled``) is
    combined with the clock: after the estimated departure (scheduled + delay) the flight is
    ``departed``, after the estimated arrival ``landed``; ``cancelled`` never changes.
    Unknown flight or date: ``NotFound``; malformed number: ``Invalid(reason="flight_number")``.
    """
    require_aware(now)
    number = require_flight_number(flight_number, prefix=brand.flight_prefix)
    date = date or local_date(now, settings.timezone)
    flight = session.scalars(
        select(Flight).where(Flight.flight_number == number, Flight.departure_date == date)
    ).first()
    if flight is None:
        raise NotFound(f"no flight {number} on {date.isoformat()}")

    tz = settings.timezone
    if flight.status == "cancelled":
        return FlightStatusInfo(
            flight_number=number,
            date=date,
            origin=flight.origin,
            destination=flight.destination,
            scheduled_departure_local=to_local(flight.departure_at, tz),
            scheduled_arrival_local=to_local(flight.arrival_at, tz),
            status="cancelled",
            delay_minutes=flight.delay_minutes,
            estimated_departure_local=None,
            estimated_arrival_local=None,
        )

    delay = timedelta(minutes=flight.delay_minutes)
    estimated_departure = flight.departure_at + delay
    estimated_arrival = flight.arrival_at + delay
    if now >= estimated_arrival:
        by_clock = "landed"
    elif now >= estimated_departure:
        by_clock = "departed"
    else:
        by_clock = "delayed" if flight.delay_minutes > 0 else "scheduled"
    stored = flight.status if flight.status in _STAGES else "scheduled"
    status = max(stored, by_clock, key=_STAGES.index)
    return FlightStatusInfo(
        flight_number=number,
        date=date,
        origin=flight.origin,
        destination=flight.destination,
        scheduled_departure_local=to_local(flight.departure_at, tz),
        scheduled_arrival_local=to_local(flight.arrival_at, tz),
        status=status,
        delay_minutes=flight.delay_minutes,
        estimated_departure_local=to_local(estimated_departure, tz),
        estimated_arrival_local=to_local(estimated_arrival, tz),
    )
