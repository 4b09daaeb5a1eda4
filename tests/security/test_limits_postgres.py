"""Findings 2 and 3 on real PostgreSQL: the limits survive concurrency.

- N threads start ``create_booking`` at once from one client and one e-mail (different
  conversations, different flights): at most the limit ends up held, however the transactions
  interleave; the same for the flight share on one cabin.
- N conversations guess the last name of one reference at the same moment: exactly
  LOOKUP_MAX_FAILURES_PER_REFERENCE of them are compared (and fail), the rest are refused unseen.

The database is this module's own (created, migrated, seeded with a short schedule, dropped), with
a pool just big enough for the threads: the integration suite's ``pg`` fixture keeps 55
connections, and a second instance of it would exhaust a default PostgreSQL's 100.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from tandem.clock import utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import upgrade_head
from tandem.db.models import Booking, Flight, LookupFailure
from tandem.errors import Conflict, NotFound, RateLimited
from tandem.ratelimit import InMemoryRateLimiter
from tandem.seed import seed
from tandem.services.bookings import create_booking
from tandem.settings import ActionSettings
from tandem.tools import Caller, Toolbox
from tests.conftest import Db
from tests.integration.conftest import fresh_database_url

pytestmark = pytest.mark.integration
THREADS = 25


@pytest.fixture(scope="module")
def pg(settings_factory: Callable[..., ActionSettings], seed_now: datetime) -> Iterator[Db]:
    with fresh_database_url("tandem_sec") as url:
        settings = settings_factory(url, SCHEDULE_DAYS=7)
        engine = create_engine_from_settings(settings.database, pool_size=THREADS + 2, max_overflow=3)
        try:
            upgrade_head(settings.database, engine=engine)
            with make_session_factory(engine).begin() as session:
                seed(session, settings=settings.business, now=seed_now)
            yield Db(settings=settings, engine=engine, sessions=make_session_factory(engine))
        finally:
            engine.dispose()


@pytest.fixture
def pg_flight(pg: Db, insert_flight: Callable[..., int]) -> Callable[..., int]:
    def factory(**kwargs: object) -> int:
        return insert_flight(pg.sessions, pg.settings, **kwargs)

    return factory


def _race(attempt: Callable[[int], None]) -> tuple[int, list[str], list[BaseException]]:
    barrier = threading.Barrier(THREADS)
    lock = threading.Lock()
    ok: list[int] = []
    refused: list[str] = []
    unexpected: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            attempt(i)
            with lock:
                ok.append(i)
        except Conflict as exc:
            with lock:
                refused.append(exc.reason)
        except BaseException as exc:  # reported by the caller's assertion
            with lock:
                unexpected.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return len(ok), refused, unexpected


@pytest.mark.timeout(120)
def test_concurrent_holds_from_one_client_and_email_stop_at_the_limit(
    pg: Db,
    pg_flight: Callable[..., int],
) -> None:
    now = utc_now()
    flights = [pg_flight(departure_at=now + timedelta(days=6, minutes=i)) for i in range(THREADS)]
    email = f"race-{now.timestamp():.0f}@example.com"
    client = f"race-client-{now.timestamp():.0f}"

    def attempt(i: int) -> None:
        with pg.sessions.begin() as s:
            create_booking(
                s,
                flight_id=flights[i],
                passengers=1,
                cabin="economy",
                last_name="Lee",
                email=email,
                settings=pg.settings.business,
                brand=pg.settings.brand,
                now=now,
                conversation_id=f"race-conv-{i}",
                client_key=client,
            )

    held, refused, unexpected = _race(attempt)
    assert unexpected == []
    limit = min(pg.settings.business.booking_max_holds_per_email, pg.settings.business.booking_max_holds_per_client)
    assert held == limit and refused == ["too_many_holds"] * (THREADS - limit)
    with pg.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Booking).where(Booking.email == email)) == limit
        seats = s.scalars(select(Flight.seats_economy).where(Flight.id.in_(flights))).all()
        assert sum(150 - n for n in seats) == limit  # refused holds gave their seats back


@pytest.mark.timeout(120)
def test_concurrent_holds_on_one_cabin_stop_at_the_share(
    pg: Db,
    pg_flight: Callable[..., int],
) -> None:
    now = utc_now()
    flight_id = pg_flight(departure_at=now + timedelta(days=7), seats_economy=40)

    def attempt(i: int) -> None:
        with pg.sessions.begin() as s:
            create_booking(
                s,
                flight_id=flight_id,
                passengers=2,
                cabin="economy",
                last_name="Lee",
                email=f"share-{i}@example.com",
                settings=pg.settings.business,
                brand=pg.settings.brand,
                now=now,
                conversation_id=f"share-conv-{i}",
                client_key=f"share-client-{i}",
            )

    held, refused, unexpected = _race(attempt)
    assert unexpected == []
    allowed = int(40 * pg.settings.business.booking_max_held_share) // 2
    assert held == allowed and set(refused) == {"hold_share"}
    with pg.sessions() as s:
        assert s.get_one(Flight, flight_id).seats_economy == 40 - 2 * allowed


@pytest.mark.timeout(120)
def test_concurrent_guesses_stop_at_the_reference_limit(pg: Db) -> None:
    box = Toolbox(sessions=pg.sessions, settings=pg.settings, limiter=InMemoryRateLimiter())
    reference = "Q" + uuid.uuid4().hex[:5].upper()  # unknown: locks like a real one
    barrier = threading.Barrier(THREADS)
    lock = threading.Lock()
    outcomes: list[str] = []

    def guess(i: int) -> None:
        barrier.wait()
        try:
            asyncio.run(box.get_booking(Caller(f"guess-{reference}-{i}"), reference=reference, last_name=f"Name{i}"))
            outcome = "found"
        except (NotFound, RateLimited) as exc:
            outcome = type(exc).__name__
        except BaseException as exc:  # reported by the assertion below
            outcome = repr(exc)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    limit = pg.settings.business.lookup_max_failures_per_reference
    assert sorted(outcomes) == ["NotFound"] * limit + ["RateLimited"] * (THREADS - limit)
    with pg.sessions() as s:
        counted = s.scalar(
            select(func.count())
            .select_from(LookupFailure)
            .where(LookupFailure.scope == "reference", LookupFailure.subject == reference)
        )
    assert counted == limit
