"""The event stream's path: broker messages → analytics tables → the KPI report, idempotently.

On SQLite and on a real PostgreSQL (fails, never skips, when PostgreSQL is missing), and through
a real RabbitMQ (TEST_RABBITMQ_URL, default the local server: fails when it is missing). The oracle
is the tracker-store path: the same events written as Rasa's ``events`` table must give the same
report.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker

from tandem.analytics.collector import KpiCollector
from tandem.analytics.consumer import AnalyticsConsumer, consume, declare, parse_message
from tandem.analytics.kpi import kpi_report
from tandem.analytics.metrics import ConsumerMetrics
from tandem.analytics.sessions import sessions_of
from tandem.analytics.store import reduced_event, stored_sessions
from tandem.analytics.tracker_source import EVENTS, tracker_engine, tracker_sessions
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import upgrade_head
from tandem.settings import DatabaseSettings
from tests.integration.conftest import fresh_database_url

from .events import Script, fallback

AMQP_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
HOUR = 3600.0


def _conversations() -> list[Script]:
    """A booking (rated 4), a fallback answer from the model (then one from the cache), a handoff."""
    book = Script("conv-book").start()
    book.user("book a flight", "book_flight").action("action_create_booking")
    book.slot("tool_calls", [{"tool": "create_booking", "outcome": "ok", "ms": 25}])
    book.slot("task_outcome", "booking_created").bot(text="Booked: AB12CD for Jane Doe").listen()
    book.user("bye", "goodbye").utter("utter_goodbye").utter("utter_ask_rating").listen()
    book.user("4", "rate").action("action_record_rating").slot("rating", 4.0).bot(text="thanks").listen()
    book.slot("email", "jane.doe@example.com")
    llm = Script("conv-llm", channel="slack").start()
    llm.user("surfboard?", "nlu_fallback", 0.2).action("action_fallback")
    llm.slot("fallback_decision", fallback("answer", model=True, prompt=800, completion=40, cost="0.0021"))
    llm.slot("task_outcome", "knowledge_answered").bot(text="yes").listen()
    llm.user("kite?", "nlu_fallback", 0.25).action("action_fallback")
    llm.slot("fallback_decision", fallback("answer", cached=True)).slot("task_outcome", "knowledge_answered")
    llm.bot(text="yes").listen()
    human = Script("conv-human", channel="telegram").start()
    human.user("agent", "request_human").action("action_handoff")
    human.slot("tool_calls", [{"tool": "create_handoff", "outcome": "unavailable", "ms": 3000}]).listen()
    human.user("agent!", "request_human").action("action_handoff").slot("handoff_reason", "user_request")
    human.slot("task_outcome", "handoff").bot(text="ticket 7").listen()
    return [book, llm, human]


def _bodies(scripts: list[Script]) -> list[bytes]:
    return [json.dumps(m).encode() for s in scripts for m in s.messages()]


@pytest.fixture(params=["sqlite", "postgresql"])
def analytics_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A migrated business database (the analytics tables live there)."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'analytics.db'}"])
        context = None
    else:
        context = fresh_database_url("tandem_analytics")
        urls = iter([context.__enter__()])
    settings = DatabaseSettings.model_validate({"DATABASE_URL": next(urls)})
    engine = create_engine_from_settings(settings)
    try:
        upgrade_head(settings, engine=engine)
        yield make_session_factory(engine)
    finally:
        engine.dispose()
        if context is not None:
            context.__exit__(None, None, None)


def _tracker_store(path: Path, scripts: list[Script]) -> sa.Engine:
    """Rasa's ``events`` table with the scripts' events, as the SQL tracker store writes it."""
    engine = tracker_engine(f"sqlite:///{path}")
    EVENTS.metadata.create_all(engine)
    with engine.begin() as connection:
        for script in scripts:
            connection.execute(
                EVENTS.insert(),
                [
                    {
                        "sender_id": script.sender_id,
                        "type_name": e["event"],
                        "timestamp": e["timestamp"],
                        "data": json.dumps(e),
                    }
                    for e in script.events
                ],
            )
    return engine


def test_a_batch_is_stored_once_however_often_it_arrives(analytics_db: sessionmaker[Session]) -> None:
    scripts = _conversations()
    registry = CollectorRegistry()
    consumer = AnalyticsConsumer(analytics_db, metrics=ConsumerMetrics(registry))
    bodies = _bodies(scripts)
    first = consumer.handle(bodies)
    assert (first.stored, first.duplicates, first.rejected, first.sessions) == (len(bodies), 0, 0, 3)
    again = consumer.handle([*bodies, b"not json", b"\xff\xfe", b'{"event": "user"}', b"[]"])
    assert (again.stored, again.duplicates, again.rejected) == (0, len(bodies), 4)
    with analytics_db() as session:
        count = session.scalar(sa.text("SELECT count(*) FROM analytics_events"))
        stored = list(stored_sessions(session))
    assert count == len(bodies)
    expected = [r for s in scripts for r in sessions_of(s.sender_id, s.events)]
    assert sorted(stored, key=lambda r: r.sender_id) == sorted(expected, key=lambda r: r.sender_id)
    value = registry.get_sample_value
    assert value("tandem_analytics_duplicate_events_total") == len(bodies)
    assert value("tandem_analytics_rejected_messages_total") == 4
    assert value("tandem_handoffs_total", {"reason": "user_request"}) == 1
    assert value("tandem_fallback_turns_total", {"stage": "answer"}) == 2
    assert value("tandem_task_outcomes_total", {"outcome": "booking_created", "channel": "website"}) == 1
    assert value("tandem_csat_ratings_total", {"rating": "4", "channel": "website"}) == 1
    assert value("tandem_intent_confidence_count", {"channel": "slack"}) == 2
    assert value("tandem_rasa_turn_seconds_count", {"channel": "telegram"}) == 2


def test_no_text_and_no_other_slot_values_are_kept(analytics_db: sessionmaker[Session]) -> None:
    AnalyticsConsumer(analytics_db).handle(_bodies(_conversations()))
    with analytics_db() as session:
        dump = json.dumps([row for (row,) in session.execute(sa.text("SELECT data FROM analytics_events"))])
    assert "Jane" not in dump and "jane.doe@example.com" not in dump and "surfboard" not in dump
    assert "AB12CD" not in dump
    assert reduced_event({"event": "slot", "name": "email", "value": "a@b.c", "timestamp": 1.0})["value"] is None


def test_events_split_across_batches_in_any_order_give_the_same_sessions(
    analytics_db: sessionmaker[Session],
) -> None:
    bodies = _bodies(_conversations())
    consumer = AnalyticsConsumer(analytics_db)
    for chunk in (bodies[1::2], bodies[::-3], bodies):  # odd ones, then some reversed, then all
        consumer.handle(chunk)
    with analytics_db() as session:
        stored = sorted(stored_sessions(session), key=lambda r: r.sender_id)
    expected = sorted(
        (r for s in _conversations() for r in sessions_of(s.sender_id, s.events)), key=lambda r: r.sender_id
    )
    assert stored == expected


def test_the_broker_path_reports_what_the_tracker_store_reports(
    analytics_db: sessionmaker[Session], tmp_path: Path
) -> None:
    scripts = _conversations()
    AnalyticsConsumer(analytics_db).handle(_bodies(scripts))
    with analytics_db() as session:
        from_broker = list(stored_sessions(session))
    engine = _tracker_store(tmp_path / "tracker.db", scripts)
    try:
        from_tracker = list(tracker_sessions(engine))
    finally:
        engine.dispose()
    now = max(r.ended_at for r in from_tracker) + 2 * HOUR
    broker_report = kpi_report(from_broker, now=now, idle_seconds=HOUR)
    assert broker_report == kpi_report(from_tracker, now=now, idle_seconds=HOUR)
    assert broker_report["sessions"] == 3 and broker_report["engaged_sessions"] == 3
    assert broker_report["task_success_rate"] == round(2 / 3, 4)
    assert broker_report["handoff_rate"] == round(1 / 3, 4)
    assert broker_report["cache_hit_rate"] == 0.5
    assert broker_report["tool_success_rate"] == 0.5
    assert broker_report["error_rate"] == round(1 / 7, 4)  # 7 user turns, one with a failed tool
    assert broker_report["llm_cost"] == 0.0021 and broker_report["cost_per_conversation"] == 0.0007
    assert broker_report["csat"] == 1.0 and broker_report["csat_response_rate"] == 1.0


def test_the_kpi_gauges_come_from_the_session_table(analytics_db: sessionmaker[Session]) -> None:
    scripts = _conversations()
    AnalyticsConsumer(analytics_db).handle(_bodies(scripts))
    now = scripts[-1].at + 60
    registry = CollectorRegistry()
    registry.register(KpiCollector(analytics_db, window_hours=24, idle_seconds=HOUR, clock=lambda: now))
    assert registry.get_sample_value("tandem_kpi_sessions", {"channel": "all"}) == 3
    assert registry.get_sample_value("tandem_kpi_sessions", {"channel": "slack"}) == 1
    assert registry.get_sample_value("tandem_kpi_cache_hit_rate", {"channel": "slack"}) == 0.5
    assert registry.get_sample_value("tandem_kpi_csat_mean", {"channel": "all"}) == 4.0
    status = registry.get_sample_value
    assert status("tandem_sessions_by_status", {"status": "succeeded", "channel": "website"}) == 1
    assert status("tandem_sessions_by_status", {"status": "succeeded", "channel": "slack"}) == 1
    assert status("tandem_sessions_by_status", {"status": "handed_off", "channel": "telegram"}) == 1
    # No ratings on Slack: no made-up CSAT sample.
    assert registry.get_sample_value("tandem_kpi_csat", {"channel": "slack"}) is None


def test_parse_message_refuses_what_is_not_a_rasa_event() -> None:
    assert parse_message(b'{"sender_id": "a", "event": "user", "timestamp": 1.5}') is not None
    for body in (
        b"",
        b"null",
        b"{}",
        b'{"sender_id": "", "event": "user", "timestamp": 1}',
        b'{"sender_id": "a", "event": "", "timestamp": 1}',  # would fail store_events: never a batch's poison
        b'{"sender_id": "a", "event": "user", "timestamp": true}',
        b"x" * 1_000_001,
    ):
        assert parse_message(body) is None


# --- through RabbitMQ --------------------------------------------------------------------------


@pytest.fixture
def queue() -> Iterator[str]:
    """A fresh durable queue bound to Rasa's exchange on the real RabbitMQ; deleted afterwards."""
    name = f"tandem-test-{uuid.uuid4().hex[:10]}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        declare(connection.channel(), name)
        yield name
    finally:
        connection.channel().queue_delete(name)
        connection.close()


def _publish(queue: str, bodies: list[bytes]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        for body in bodies:
            channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    finally:
        connection.close()


def _waiting(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return connection.channel().queue_declare(queue, durable=True, passive=True).method.message_count
    finally:
        connection.close()


def _until(check, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _run(consumer: AnalyticsConsumer, queue: str, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=consume,
        kwargs={
            "consumer": consumer,
            "url": AMQP_URL,
            "queue": queue,
            "prefetch": 50,
            "stop": stop,
            "batch_seconds": 0.2,
        },
        daemon=True,
    )
    thread.start()
    return thread


def test_the_consumer_reads_the_queue_and_acknowledges_only_what_it_stored(queue: str, tmp_path: Path) -> None:
    scripts = _conversations()
    bodies = _bodies(scripts)
    url = f"sqlite:///{tmp_path / 'late.db'}"
    settings = DatabaseSettings.model_validate({"DATABASE_URL": url})
    engine = create_engine_from_settings(settings)
    sessions = make_session_factory(engine)
    stop = threading.Event()
    _publish(queue, [*bodies[:10], b"garbage", *bodies[:10]])  # a bad message and redeliveries
    thread = _run(AnalyticsConsumer(sessions), queue, stop)
    try:
        # The schema is missing: every batch fails and goes back to the queue, nothing is lost.
        time.sleep(1.5)
        assert thread.is_alive() and _stored(sessions) == -1  # no table yet: nothing stored, nothing acked
        upgrade_head(settings, engine=engine)
        _publish(queue, bodies[10:])
        _until(lambda: _waiting(queue) == 0 and _stored(sessions) == len(bodies))
    finally:
        stop.set()
        thread.join(timeout=15)
    assert not thread.is_alive()
    with sessions() as session:
        stored = sorted(stored_sessions(session), key=lambda r: r.sender_id)
    engine.dispose()
    expected = sorted((r for s in scripts for r in sessions_of(s.sender_id, s.events)), key=lambda r: r.sender_id)
    assert stored == expected


def _stored(sessions: sessionmaker[Session]) -> int:
    try:
        with sessions() as session:
            return int(session.scalar(sa.text("SELECT count(*) FROM analytics_events")) or 0)
    except sa.exc.OperationalError:
        return -1


def test_the_consumer_survives_a_broker_it_cannot_reach(tmp_path: Path) -> None:
    stop = threading.Event()
    consumer = AnalyticsConsumer(make_session_factory(sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")))
    thread = threading.Thread(
        target=consume,
        kwargs={
            "consumer": consumer,
            "url": "amqp://guest:guest@127.0.0.1:1/%2F",
            "queue": "q",
            "prefetch": 10,
            "stop": stop,
        },
        daemon=True,
    )
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # retrying with backoff, not dead
    stop.set()
    thread.join(timeout=15)
    assert not thread.is_alive()
