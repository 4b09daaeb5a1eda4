"""Flight search."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

from tandem.clock import local_date, utc_now
from tandem.errors import Invalid
from tandem.services.flights import SearchResult, search_flights

if TYPE_CHECKING:
    from tests.conftest import Db


def _search(db: Db, *, now: datetime | None = None, **kwargs: object) -> SearchResult:
    args: dict[str, object] = {
        "origin": "BKK",
        "destination": "HKT",
        "passengers": 1,
        "cabin": "economy",
        "limit": 3,
        "settings": db.settings.business,
        "now": now or utc_now(),
    }
    args.update(kwargs)
    with db.sessions() as s:
        return search_flights(s, **args)  # type: ignore[arg-type]


def test_finds_daily_flights_with_prices_in_local_time(db: Db) -> None:
    day = local_date(utc_now(), db.settings.business.timezone) + timedelta(days=5)
    result = _search(db, date=day, passengers=2, cabin="business")
    options = result.options
    # BKK->HKT flies as AN100 (morning) and AN200 (evening) from BKK (seeded cancellations aside).
    assert options and {o.flight_number for o in options} <= {"AN100", "AN200"}
    assert options == sorted(options, key=lambda o: o.departure_local)
    for option in options:
        assert option.departure_local.date() == day
        assert option.departure_local.utcoffset() == timedelta(hours=7)
        assert option.cabin == "business" and option.seats_left >= 2
        assert option.total_price == option.price_per_person * 2
        assert isinstance(option.total_price, Decimal)
    assert result.nearest_dates == []


def test_respects_limit(db: Db, flight_factory: Callable[..., int]) -> None:
    day = local_date(utc_now(), db.settings.business.timezone) + timedelta(days=6)
    result = _search(db, date=day, limit=1)
    assert len(result.options) == 1


def test_limit_defaults_to_search_max_options(db: Db) -> None:
    day = local_date(utc_now(), db.settings.business.timezone) + timedelta(days=6)
    one = db.settings.updated(search_max_options=1)
    assert len(_search(db, date=day, limit=None, settings=one.business).options) == 1
    assert len(_search(db, date=day, limit=None).options) == len(_search(db, date=day, limit=3).options) > 1


def test_excludes_cancelled_full_and_departed_flights(db: Db, flight_factory: Callable[..., int]) -> None:
    now = utc_now()
    base = now + timedelta(days=40)  # beyond the seeded window: only our flights exist
    ok = flight_factory(departure_at=base, origin="CNX", destination="BKK")
    flight_factory(departure_at=base + timedelta(hours=1), origin="CNX", destination="BKK", status="cancelled")
    flight_factory(departure_at=base + timedelta(hours=2), origin="CNX", destination="BKK", seats_economy=1)
    day = local_date(base, db.settings.business.timezone)
    result = _search(db, origin="CNX", destination="BKK", date=day, passengers=2)
    assert [o.flight_id for o in result.options] == [ok]
    # At a later moment the same flight has departed and is no longer offered.
    later = _search(db, origin="CNX", destination="BKK", date=day, passengers=2, now=base + timedelta(minutes=1))
    assert later.options == []


def test_offers_nearest_dates_when_nothing_fits(db: Db, flight_factory: Callable[..., int]) -> None:
    base = utc_now() + timedelta(days=60)
    day = local_date(base, db.settings.business.timezone)
    for offset in (-2, 1, 3, 4):
        flight_factory(departure_at=base + timedelta(days=offset), origin="BKK", destination="SIN")
    flight_factory(departure_at=base, origin="BKK", destination="SIN", seats_business=0)
    result = _search(db, destination="SIN", date=day, cabin="business")
    assert result.options == []
    expected = [day + timedelta(days=1), day - timedelta(days=2), day + timedelta(days=3)]
    assert result.nearest_dates == expected


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"origin": "HKT", "destination": "CNX"}, "no_route"),
        ({"origin": "XXX"}, "unknown_airport"),
        ({"destination": "BKK"}, "same_airport"),
        ({"passengers": 0}, "passengers"),
        ({"passengers": 10}, "passengers"),
        ({"cabin": "first"}, "cabin"),
    ],
)
def test_invalid_searches(db: Db, kwargs: dict[str, object], reason: str) -> None:
    day = local_date(utc_now(), db.settings.business.timezone) + timedelta(days=3)
    with pytest.raises(Invalid) as err:
        _search(db, date=day, **kwargs)  # type: ignore[arg-type]
    assert err.value.reason == reason
