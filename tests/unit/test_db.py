"""Schema, migrations, engine set-up and the portable column types."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import downgrade_base, upgrade_head
from tandem.db.models import Base, Flight, Rating
from tandem.settings import ActionSettings

if TYPE_CHECKING:
    from tests.conftest import Db

EXPECTED_TABLES = {
    "airports",
    "flights",
    "customers",
    "bookings",
    "password_reset_outbox",
    "tickets",
    "agents",
    "agent_sessions",
    "handoff_messages",
    "ticket_events",
    "ratings",
    "audit_log",
    "lookup_failures",
    "fallback_decisions",
    "analytics_events",
    "analytics_sessions",
    "alembic_version",
}


def test_migration_matches_models_and_downgrades(
    tmp_path: Path, settings_factory: Callable[..., ActionSettings]
) -> None:
    settings = settings_factory(f"sqlite:///{tmp_path}/m.db")
    engine = create_engine_from_settings(settings.database)
    try:
        upgrade_head(settings.database, engine=engine)
        assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migration differ: {diff}"
        downgrade_base(settings.database, engine=engine)
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade_head(settings.database, engine=engine)  # and back up again
        assert "flights" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_sqlite_engine_creates_parent_folder_and_enables_wal(
    tmp_path: Path, settings_factory: Callable[..., ActionSettings]
) -> None:
    target = tmp_path / "nested" / "deeper" / "t.db"
    engine = create_engine_from_settings(settings_factory(f"sqlite:///{target}").database)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert target.parent.is_dir()
    finally:
        engine.dispose()


def test_datetimes_round_trip_as_aware_utc_and_money_as_decimal(db: Db) -> None:
    bangkok = timezone(timedelta(hours=7))
    departure = datetime(2031, 3, 1, 9, 30, tzinfo=bangkok)
    with db.sessions.begin() as s:
        flight = Flight(
            flight_number="AN8888",
            origin="BKK",
            destination="HKT",
            departure_date=departure.date(),
            departure_at=departure,
            arrival_at=departure + timedelta(hours=1),
            seats_economy=1,
            seats_business=0,
            fare_economy=Decimal("1234.565"),
            fare_business=Decimal("0.1"),
        )
        s.add(flight)
        s.flush()
        flight_id = flight.id
    with db.sessions() as s:
        loaded = s.get_one(Flight, flight_id)
        assert loaded.departure_at == datetime(2031, 3, 1, 2, 30, tzinfo=UTC)
        assert loaded.departure_at.tzinfo is not None
        assert loaded.fare_economy == Decimal("1234.57")  # quantised half-up to cents
        assert isinstance(loaded.fare_business, Decimal) and str(loaded.fare_business) == "0.10"


def test_naive_datetimes_are_refused(db: Db) -> None:
    with pytest.raises(Exception, match="naive"), db.sessions.begin() as s:
        s.add(Rating(conversation_id="c", rating=3, created_at=datetime(2030, 1, 1)))
        s.flush()


def test_check_constraints_hold(db: Db) -> None:
    now = datetime.now(UTC)
    with pytest.raises(IntegrityError), db.sessions.begin() as s:
        s.add(Rating(conversation_id="c", rating=6, created_at=now))
        s.flush()
    with pytest.raises(IntegrityError), db.sessions.begin() as s:
        flight = s.scalars(select(Flight).limit(1)).one()
        flight.seats_economy = -1
        s.flush()


def test_session_factory_is_unit_of_work(db: Db) -> None:
    sessions = make_session_factory(db.engine)
    with pytest.raises(RuntimeError), sessions.begin() as s:
        s.add(Rating(conversation_id="rolled-back", rating=4, created_at=datetime.now(UTC)))
        s.flush()
        raise RuntimeError("boom")
    with sessions() as s:
        assert s.scalars(select(Rating).where(Rating.conversation_id == "rolled-back")).first() is None
