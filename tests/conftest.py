"""Shared fixtures: a migrated + seeded SQLite database per test, and a flight factory.

The schema always comes from the real Alembic migration; to keep the suite fast it is migrated
and seeded once per session into a template file, which each test copies.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tandem.clock import local_date, utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import upgrade_head
from tandem.db.models import Flight
from tandem.seed import seed
from tandem.settings import ActionSettings, load_action_settings
from tests.stack import Stack, start_stack

FlightFactory = Callable[..., int]
_flight_numbers = itertools.count(9000)


def make_settings(database_url: str, **overrides: Any) -> ActionSettings:
    """ActionSettings for tests: never read a developer's .env or REDIS_URL by accident."""
    values: dict[str, Any] = {"DATABASE_URL": database_url, "REDIS_URL": None, "_env_file": None}
    values.update(overrides)
    return load_action_settings(**values)


@dataclass
class Db:
    settings: ActionSettings
    engine: Engine
    sessions: sessionmaker[Session]


@pytest.fixture(scope="session")
def seed_now() -> datetime:
    """The moment the template database was seeded (seeded data is relative to it)."""
    return utc_now()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, seed_now: datetime) -> Path:
    path = tmp_path_factory.mktemp("template") / "tandem.db"
    settings = make_settings(f"sqlite:///{path}", SCHEDULE_DAYS=35)
    engine = create_engine_from_settings(settings.database)
    try:
        upgrade_head(settings.database, engine=engine)
        with make_session_factory(engine).begin() as session:
            seed(session, settings=settings.business, now=seed_now, demo=True)  # the tests use the demo bookings
    finally:
        engine.dispose()  # checkpoints the WAL into the main file before it is copied
    return path


@pytest.fixture
def db(tmp_path: Path, sqlite_template: Path) -> Iterator[Db]:
    """A private, migrated and seeded SQLite database (35-day schedule)."""
    path = tmp_path / "tandem.db"
    shutil.copyfile(sqlite_template, path)
    settings = make_settings(f"sqlite:///{path}", SCHEDULE_DAYS=35)
    engine = create_engine_from_settings(settings.database)
    yield Db(settings=settings, engine=engine, sessions=make_session_factory(engine))
    engine.dispose()


def add_flight(
    sessions: sessionmaker[Session],
    settings: ActionSettings,
    *,
    departure_at: datetime,
    duration: timedelta = timedelta(minutes=85),
    origin: str = "BKK",
    destination: str = "HKT",
    seats_economy: int = 150,
    seats_business: int = 12,
    fare_economy: Decimal = Decimal("2000.00"),
    fare_business: Decimal = Decimal("8000.00"),
    status: str = "scheduled",
    delay_minutes: int = 0,
    flight_number: str | None = None,
) -> int:
    """Insert one flight outside the seeded timetable (numbers AN9000+); returns its id."""
    flight = Flight(
        flight_number=flight_number or f"AN{next(_flight_numbers)}",
        origin=origin,
        destination=destination,
        departure_date=local_date(departure_at, settings.business.timezone),
        departure_at=departure_at,
        arrival_at=departure_at + duration,
        status=status,
        delay_minutes=delay_minutes,
        seats_economy=seats_economy,
        seats_business=seats_business,
        fare_economy=fare_economy,
        fare_business=fare_business,
    )
    with sessions.begin() as session:
        session.add(flight)
        session.flush()
        return flight.id


@pytest.fixture
def flight_factory(db: Db) -> FlightFactory:
    def factory(**kwargs: Any) -> int:
        return add_flight(db.sessions, db.settings, **kwargs)

    return factory


@pytest.fixture
def insert_flight() -> Callable[..., int]:
    """:func:`add_flight` for fixtures of other databases (PostgreSQL in tests/integration)."""
    return add_flight


@pytest.fixture(scope="session")
def settings_factory() -> Callable[..., ActionSettings]:
    """:func:`make_settings` (test settings that ignore .env and REDIS_URL)."""
    return make_settings


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The action server and the Rasa server from the trained model, one per test run (e2e and
    browser tests share it)."""
    yield from start_stack(tmp_path_factory)
