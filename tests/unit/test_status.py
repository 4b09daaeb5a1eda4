"""Flight status over time, with an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from tandem.clock import FixedClock, local_date
from tandem.errors import Invalid, NotFound
from tandem.services.status import FlightStatusInfo, flight_status

if TYPE_CHECKING:
    from tests.conftest import Db

DEPARTURE = datetime(2031, 5, 10, 3, 0, tzinfo=UTC)  # 10:00 in Bangkok


def _status(db: Db, number: str, clock: FixedClock, day: object = None) -> FlightStatusInfo:
    with db.sessions() as s:
        return flight_status(
            s,
            flight_number=number,
            date=day or local_date(DEPARTURE, db.settings.business.timezone),  # type: ignore[arg-type]
            now=clock(),
            settings=db.settings.business,
            brand=db.settings.brand,
        )


def test_on_time_flight_departs_then_lands(db: Db, flight_factory: Callable[..., int]) -> None:
    flight_factory(flight_number="AN7001", departure_at=DEPARTURE, duration=timedelta(hours=2))
    clock = FixedClock(DEPARTURE - timedelta(hours=3))
    info = _status(db, "an 7001", clock)
    assert (info.status, info.delay_minutes) == ("scheduled", 0)
    assert (
        info.scheduled_departure_local.hour == 10 and info.estimated_departure_local == info.scheduled_departure_local
    )
    clock.set(DEPARTURE)
    assert _status(db, "AN7001", clock).status == "departed"
    clock.advance(timedelta(hours=2))
    assert _status(db, "AN7001", clock).status == "landed"


def test_delay_shifts_the_transitions(db: Db, flight_factory: Callable[..., int]) -> None:
    flight_factory(
        flight_number="AN7002", departure_at=DEPARTURE, duration=timedelta(hours=1), status="delayed", delay_minutes=45
    )
    clock = FixedClock(DEPARTURE + timedelta(minutes=30))
    info = _status(db, "AN7002", clock)
    assert info.status == "delayed" and info.delay_minutes == 45
    assert info.estimated_departure_local is not None
    assert info.estimated_departure_local - info.scheduled_departure_local == timedelta(minutes=45)
    clock.set(DEPARTURE + timedelta(minutes=45))
    assert _status(db, "AN7002", clock).status == "departed"
    clock.set(DEPARTURE + timedelta(minutes=104))
    assert _status(db, "AN7002", clock).status == "departed"
    clock.set(DEPARTURE + timedelta(minutes=105))
    assert _status(db, "AN7002", clock).status == "landed"


def test_cancelled_stays_cancelled(db: Db, flight_factory: Callable[..., int]) -> None:
    flight_factory(flight_number="AN7003", departure_at=DEPARTURE, status="cancelled")
    for offset in (timedelta(hours=-1), timedelta(hours=5)):
        info = _status(db, "AN7003", FixedClock(DEPARTURE + offset))
        assert info.status == "cancelled" and info.estimated_departure_local is None


def test_unknown_flight_or_date_is_not_found_and_malformed_is_invalid(db: Db) -> None:
    clock = FixedClock(DEPARTURE)
    with pytest.raises(NotFound):
        _status(db, "AN9999", clock)
    with pytest.raises(NotFound):  # AN204 exists, but not on that far-away day
        _status(db, "AN204", clock)
    with pytest.raises(Invalid) as err:
        _status(db, "TG204", clock)
    assert err.value.reason == "flight_number"


def test_seeded_an204_has_a_status_today(db: Db, seed_now: datetime) -> None:
    clock = FixedClock(seed_now)
    info = _status(db, "AN204", clock, local_date(seed_now, db.settings.business.timezone))
    assert info.origin == "BKK" and info.destination == "KBV"
    assert info.status in {"scheduled", "delayed", "departed", "landed", "cancelled"}


def test_date_defaults_to_today_in_the_airlines_time_zone(db: Db, flight_factory: Callable[..., int]) -> None:
    flight_factory(flight_number="AN7004", departure_at=DEPARTURE)
    late_evening = datetime(2031, 5, 9, 18, 30, tzinfo=UTC)  # 01:30 on 10 May in Bangkok, 9 May in UTC
    with db.sessions() as s:
        info = flight_status(
            s, flight_number="AN7004", now=late_evening, settings=db.settings.business, brand=db.settings.brand
        )
    assert info.flight_number == "AN7004" and info.status == "scheduled"
