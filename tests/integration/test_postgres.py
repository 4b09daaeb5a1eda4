"""Services and tools on a real PostgreSQL database."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tandem.clock import FixedClock, local_date, utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.models import AuditLog, Booking, Flight, PasswordResetOutbox, Ticket
from tandem.errors import Conflict, NotFound, RateLimited, Unavailable
from tandem.gateway.readiness import database_check, run_checks
from tandem.ratelimit import InMemoryRateLimiter, RedisRateLimiter
from tandem.seed import SEED_BOOKINGS, seed
from tandem.services.accounts import consume_reset_token, request_password_reset
from tandem.services.bookings import cancel_booking, create_booking, get_booking, quote_cancellation
from tandem.services.status import flight_status
from tandem.settings import ActionSettings
from tandem.tools import Caller, Services, Toolbox

if TYPE_CHECKING:
    from tests.integration.conftest import PgDb

pytestmark = pytest.mark.integration

FLIGHTS_PER_DAY = 112


def _seats(pg: PgDb, flight_id: int) -> int:
    with pg.sessions() as s:
        return s.get_one(Flight, flight_id).seats_economy


def _book(
    pg: PgDb,
    flight_id: int,
    *,
    now: datetime,
    passengers: int = 1,
    cabin: str = "economy",
    last_name: str = "Lee",
    email: str = "lee@example.com",
    settings: ActionSettings | None = None,
) -> str:
    with pg.sessions.begin() as s:
        return create_booking(
            s,
            flight_id=flight_id,
            passengers=passengers,
            cabin=cabin,
            last_name=last_name,
            email=email,
            settings=(settings or pg.settings).business,
            brand=(settings or pg.settings).brand,
            now=now,
        ).reference


def _confirm(pg: PgDb, reference: str) -> None:
    with pg.sessions.begin() as s:
        s.scalars(select(Booking).where(Booking.reference == reference)).one().status = "confirmed"


def test_full_seed_is_fast_complete_and_idempotent(pg: PgDb, seed_now: datetime) -> None:
    assert pg.seed_seconds < 15, f"seeding took {pg.seed_seconds:.1f} s"
    days = pg.settings.business.schedule_days
    with pg.sessions() as s:
        first = s.scalar(select(func.min(Flight.departure_date)))
        assert first == local_date(seed_now, pg.settings.business.timezone)
        assert (
            s.scalar(
                select(func.count()).select_from(Flight).where(Flight.departure_date < first + timedelta(days=days))
            )
            == days * FLIGHTS_PER_DAY
        )
        for number in ("AN204", "AN305"):
            assert (s.scalar(select(func.count()).where(Flight.flight_number == number)) or 0) >= days
    with pg.sessions.begin() as s:
        again = seed(s, settings=pg.settings.business, now=seed_now, demo=True)
    assert (again.airports, again.flights, again.customers, again.bookings) == (0, 0, 0, 0)
    with pg.sessions.begin() as s:
        later = seed(s, settings=pg.settings.business, now=seed_now + timedelta(days=2), demo=True)
    assert later.flights == 2 * FLIGHTS_PER_DAY and later.bookings == 0
    with pg.sessions() as s:
        assert s.scalar(
            select(func.count()).select_from(Booking).where(Booking.reference.in_([b.reference for b in SEED_BOOKINGS]))
        ) == len(SEED_BOOKINGS)


@pytest.mark.timeout(120)
def test_fifty_concurrent_bookings_for_ten_seats(pg: PgDb, pg_flight: Callable[..., int]) -> None:
    now = utc_now()
    flight_id = pg_flight(departure_at=now + timedelta(days=5), seats_economy=10)
    barrier = threading.Barrier(50)
    lock = threading.Lock()
    references: list[str] = []
    conflicts: list[str] = []
    unexpected: list[BaseException] = []
    observed: list[int] = []
    done = threading.Event()
    # Overselling only: the hold limits (tests/security/test_seat_holds_postgres.py) would stop it earlier.
    unlimited = pg.settings.updated(booking_max_held_share=1.0, booking_max_holds_per_email=99)

    def attempt() -> None:
        barrier.wait()
        try:
            reference = _book(pg, flight_id, now=now, email="fifty@example.com", settings=unlimited)
            with lock:
                references.append(reference)
        except Conflict as exc:
            with lock:
                conflicts.append(exc.reason)
        except BaseException as exc:  # reported by the assertion below
            with lock:
                unexpected.append(exc)

    def watch() -> None:
        while not done.is_set():
            observed.append(_seats(pg, flight_id))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    done.set()
    watcher.join()

    assert unexpected == []
    assert len(references) == 10 and len(set(references)) == 10
    assert conflicts == ["sold_out"] * 40
    assert _seats(pg, flight_id) == 0
    assert observed and min(observed) >= 0
    with pg.sessions() as s:
        held = s.scalar(select(func.sum(Booking.passengers)).where(Booking.flight_id == flight_id))
        assert held == 10


def test_cancellation_refunds_and_approval_on_postgres(pg: PgDb, pg_flight: Callable[..., int]) -> None:
    now = utc_now()
    economy = pg_flight(departure_at=now + timedelta(days=3), seats_economy=30, fare_economy=Decimal("3333.33"))
    reference = _book(pg, economy, now=now, passengers=3)
    _confirm(pg, reference)
    with pg.sessions.begin() as s:
        result = cancel_booking(
            s, reference=reference, last_name="LEE", settings=pg.settings.business, now=now, conversation_id="pg-conv"
        )
    # 50 % of 9,999.99 rounds half-up to the cent.
    assert (result.status, result.refund_amount, result.ticket_id) == ("cancelled", Decimal("5000.00"), None)
    assert _seats(pg, economy) == 30

    business = pg_flight(departure_at=now + timedelta(days=9), fare_business=Decimal("12000"))
    big = _book(pg, business, now=now, passengers=2, cabin="business")
    _confirm(pg, big)
    with pg.sessions() as s:
        quote = quote_cancellation(s, reference=big, last_name="Lee", settings=pg.settings.business, now=now)
    assert (quote.refund_amount, quote.fee, quote.needs_approval) == (Decimal("22000.00"), Decimal("2000.00"), True)
    with pg.sessions.begin() as s:
        pending = cancel_booking(
            s, reference=big, last_name="Lee", settings=pg.settings.business, now=now, conversation_id="pg-conv"
        )
    assert pending.status == "pending_approval" and pending.ticket_id is not None
    with pg.sessions() as s:
        ticket = s.get_one(Ticket, pending.ticket_id)
        assert (ticket.kind, ticket.booking_reference, ticket.status) == ("refund_approval", big, "queued")
        booking = s.scalars(select(Booking).where(Booking.reference == big)).one()
        assert booking.status == "cancellation_pending"


def test_seeded_xk93pq_goes_to_an_agent(pg: PgDb) -> None:
    with pg.sessions() as s:
        quote = quote_cancellation(
            s, reference="XK93PQ", last_name="tanaka", settings=pg.settings.business, now=utc_now()
        )
    assert quote.needs_approval and quote.rule == "business_fee" and quote.fee == Decimal("2000.00")


def test_lookup_mismatch_is_the_same_not_found(pg: PgDb) -> None:
    messages = set()
    with pg.sessions() as s:
        assert (
            get_booking(s, reference="AB12CD", last_name=" SMITH", settings=pg.settings.business).reference == "AB12CD"
        )
        for reference, last_name in (("AB12CD", "Smyth"), ("QQ22QQ", "Smith")):
            with pytest.raises(NotFound) as err:
                get_booking(s, reference=reference, last_name=last_name, settings=pg.settings.business)
            messages.add((type(err.value), str(err.value)))
    assert len(messages) == 1


def test_password_reset_with_redis_limits(pg: PgDb, redis_client: redis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    sent: list[tuple[str, str]] = []

    class Mailer:
        def send_reset(self, *, email: str, token: str) -> None:
            sent.append((email, token))

    now = utc_now()

    def reset(email: str, conversation: str) -> None:
        with pg.sessions.begin() as s:
            request_password_reset(
                s,
                email=email,
                conversation_id=conversation,
                settings=pg.settings.business,
                limiter=limiter,
                now=now,
                mailer=Mailer(),
            )

    with pg.sessions() as s:
        before = s.scalar(select(func.count()).select_from(PasswordResetOutbox)) or 0
    reset("lena.mueller@example.com", "c1")
    reset("ghost@example.com", "c2")
    with pg.sessions() as s:
        rows = s.scalars(select(PasswordResetOutbox).order_by(PasswordResetOutbox.id.desc())).all()
        assert len(rows) == before + 1 and rows[0].email == "lena.mueller@example.com"
        assert sent[0][1] not in {rows[0].token_hash}
    for i in range(pg.settings.business.password_reset_limit_per_email - 1):
        reset("ghost@example.com", f"c-{i}")
    with pytest.raises(RateLimited):
        reset("ghost@example.com", "c-last")
    with pg.sessions.begin() as s:
        assert consume_reset_token(s, token=sent[0][1], now=now) == "lena.mueller@example.com"


def test_flight_status_transitions_on_postgres(pg: PgDb, pg_flight: Callable[..., int]) -> None:
    departure = utc_now().replace(microsecond=0) + timedelta(days=300)
    pg_flight(
        flight_number="AN7777", departure_at=departure, duration=timedelta(hours=1), delay_minutes=20, status="delayed"
    )
    day = local_date(departure, pg.settings.business.timezone)
    clock = FixedClock(departure)
    expected = [(timedelta(0), "delayed"), (timedelta(minutes=20), "departed"), (timedelta(minutes=80), "landed")]
    for offset, status in expected:
        clock.set(departure + offset)
        with pg.sessions() as s:
            assert (
                flight_status(
                    s,
                    flight_number="AN7777",
                    date=day,
                    now=clock(),
                    settings=pg.settings.business,
                    brand=pg.settings.brand,
                ).status
                == status
            )


async def test_toolbox_on_postgres_audits_with_masked_pii(
    pg: PgDb, pg_flight: Callable[..., int], redis_client: redis.Redis, redis_prefix: str
) -> None:
    conversation = f"pg-tools-{uuid.uuid4().hex[:8]}"
    tools = Toolbox(
        sessions=pg.sessions, settings=pg.settings, limiter=RedisRateLimiter(redis_client, prefix=redis_prefix)
    )
    flight_id = pg_flight(departure_at=utc_now() + timedelta(days=12))
    caller = Caller(conversation)
    created = await tools.create_booking(
        caller,
        flight_id=flight_id,
        passengers=1,
        cabin="economy",
        last_name="Kowalski",
        email="jan.kowalski@example.com",
    )
    with pytest.raises(NotFound):
        await tools.get_booking(caller, reference=created.reference, last_name="Nowak")
    await tools.request_password_reset(caller, email="jan.kowalski@example.com")
    with pg.sessions() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.actor == conversation).order_by(AuditLog.id)).all()
    assert [(r.tool, r.outcome) for r in rows] == [
        ("create_booking", "ok"),
        ("lookup_failure", "NotFound"),  # counted for the lock-out, in the lookup's transaction
        ("get_booking", "NotFound"),
        ("request_password_reset", "ok"),
    ]
    dumped = json.dumps([r.arguments for r in rows])
    for secret in ("kowalski", "Kowalski", "Nowak", "jan.k"):
        assert secret not in dumped


async def test_statement_timeout_and_unreachable_database_become_unavailable(
    pg: PgDb, settings_factory: Callable[..., Any]
) -> None:
    impatient = pg.settings.updated(db_statement_timeout_ms=200)
    engine = create_engine_from_settings(impatient.database)

    def sleepy(session: Session, **kwargs: object) -> NoReturn:
        session.execute(text("SELECT pg_sleep(3)"))
        raise AssertionError("statement_timeout did not fire")

    try:
        tools = Toolbox(
            sessions=make_session_factory(engine),
            settings=impatient,
            limiter=InMemoryRateLimiter(),
            services=Services(flight_status=sleepy),
        )
        started = time.perf_counter()
        with pytest.raises(Unavailable):
            await tools.flight_status(Caller("pg-timeout"), flight_number="AN204")
        assert time.perf_counter() - started < 2.5
    finally:
        engine.dispose()

    nowhere = settings_factory("postgresql+psycopg://postgres@127.0.0.1:1/none", DB_CONNECT_TIMEOUT_SECONDS=1)
    down = Toolbox.from_settings(nowhere)
    try:
        with pytest.raises(Unavailable):
            await down.flight_status(Caller("pg-down"), flight_number="AN204")
    finally:
        down.close()


async def test_the_gateways_readiness_check_on_postgres(pg: PgDb) -> None:
    """The gateway builds its engine with ``pool_pre_ping=True`` (GatewayState.database_engine): on
    PostgreSQL that once raised a TypeError (the keyword given twice), so /readyz and the handoff
    desk's sweep failed in production mode while SQLite worked."""
    engine = create_engine_from_settings(pg.settings.database, pool_pre_ping=True)
    try:
        ready, checks = await run_checks({"database": database_check(lambda: engine)}, timeout=5)
        assert ready and checks["database"]["ok"], checks
    finally:
        engine.dispose()
