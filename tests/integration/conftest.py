"""Real PostgreSQL and Redis. Unreachable servers make these tests error out, never skip.

PostgreSQL: a fresh database ``tandem_test_<random>`` is created on the server of
``TEST_POSTGRES_URL`` (default: the local server), migrated and seeded with the full schedule
(``SCHEDULE_DAYS`` default), and dropped at the end of the session. Redis: ``TEST_REDIS_URL``
(default: local db 0), with a unique key prefix per test, deleted afterwards.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import upgrade_head
from tandem.seed import seed
from tandem.settings import ActionSettings

ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class PgDb:
    settings: ActionSettings
    engine: Engine
    sessions: sessionmaker[Session]
    seed_seconds: float


@contextmanager
def fresh_database_url(prefix: str = "tandem_test") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database ``<prefix>_<random>`` on the server of
    ``TEST_POSTGRES_URL``, dropped (connections and all) when the block ends. Raises when
    PostgreSQL is unreachable: the tests error out, never skip."""
    admin_url = make_url(ADMIN_URL)
    if admin_url.drivername == "postgresql":
        admin_url = admin_url.set(drivername="postgresql+psycopg")  # psycopg2 is not installed
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def pg(settings_factory: Callable[..., ActionSettings], seed_now: datetime) -> Iterator[PgDb]:
    """A migrated PostgreSQL database seeded with the full schedule, private to this session."""
    with fresh_database_url() as url:
        settings = settings_factory(url)
        # A pool big enough for the concurrency test to run 50 sessions really at once.
        engine = create_engine_from_settings(settings.database, pool_size=25, max_overflow=30)
        try:
            upgrade_head(settings.database, engine=engine)
            started = time.perf_counter()
            with make_session_factory(engine).begin() as session:
                seed(session, settings=settings.business, now=seed_now, demo=True)
            seconds = time.perf_counter() - started
            yield PgDb(settings=settings, engine=engine, sessions=make_session_factory(engine), seed_seconds=seconds)
        finally:
            engine.dispose()


@pytest.fixture
def pg_flight(pg: PgDb, insert_flight: Callable[..., int]) -> Callable[..., int]:
    """Insert a flight (numbers AN9000+) into the session's PostgreSQL database."""

    def factory(**kwargs: object) -> int:
        return insert_flight(pg.sessions, pg.settings, **kwargs)

    return factory


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    client.ping()  # raises when Redis is unreachable: the tests error out
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    prefix = f"tandem-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}*"))
    if keys:
        redis_client.delete(*keys)
