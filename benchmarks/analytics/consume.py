"""How fast the analytics consumer drains Rasa's event stream, and how fast the KPI report reads.

    .venv/bin/python -m benchmarks.analytics.consume [--conversations N] [--turns T] [--runs R]

Synthetic conversations (a booking with tool calls, a fallback answer with tokens, a rating:
tests/analytics/events.py writes them as Rasa stores them) are published to a fresh durable queue
on the local RabbitMQ (TEST_RABBITMQ_URL), interleaved by turn as concurrent conversations
arrive; the real consumer (``tandem.analytics.consumer.consume``) drains them into a fresh
PostgreSQL database (TEST_POSTGRES_URL's server) or a SQLite file. Measured: events per second
from the first message to the queue being empty and every event stored, the session rows, and
the KPI report's time over the tracker-store reader and over the analytics tables. Results go to
benchmarks/analytics/results.json (and print as a table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pika
import sqlalchemy as sa

from tandem.analytics.consumer import AnalyticsConsumer, consume, declare
from tandem.analytics.kpi import kpi_report
from tandem.analytics.store import stored_sessions
from tandem.analytics.tracker_source import EVENTS, tracker_engine, tracker_sessions
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import upgrade_head
from tandem.settings import DatabaseSettings
from tests.analytics.events import Script, fallback
from tests.integration.conftest import fresh_database_url

AMQP_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
RESULTS = Path(__file__).with_name("results.json")


def conversation(n: int, turns: int) -> list[list[dict[str, Any]]]:
    """One conversation's broker messages, grouped by turn."""
    s = Script(f"bench-{n}", at=1_800_000_000.0 + n * 0.37, channel=("website", "slack", "telegram")[n % 3])
    s.start()
    groups = [s.messages()]
    for t in range(turns):
        before = len(s.events)
        if t % 3 == 2:
            s.user("can I bring a surfboard", "nlu_fallback", 0.3).action("action_fallback")
            s.slot("fallback_decision", fallback("answer", model=True, prompt=700, completion=40, cost="0.0009"))
            s.slot("task_outcome", "knowledge_answered").bot(text="yes").listen()
        else:
            s.user("where is AN204", "flight_status").action("flight_status_form").action("action_flight_status")
            s.slot("tool_calls", [{"tool": "flight_status", "outcome": "ok", "ms": 9}])
            s.slot("task_outcome", "flight_status_answered").bot(text="on time").listen()
        groups.append([{"sender_id": s.sender_id, **e} for e in s.events[before:]])
    return groups


def publish(queue: str, conversations: list[list[list[dict[str, Any]]]]) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    count = 0
    try:
        channel = connection.channel()
        for turn in range(max(len(c) for c in conversations)):  # concurrent conversations interleave
            for groups in conversations:
                for message in groups[turn] if turn < len(groups) else []:
                    channel.basic_publish(
                        "", queue, json.dumps(message).encode(), pika.BasicProperties(delivery_mode=2)
                    )
                    count += 1
    finally:
        connection.close()
    return count


def drain(database_url: str, conversations: list[list[list[dict[str, Any]]]], prefetch: int) -> dict[str, Any]:
    settings = DatabaseSettings.model_validate({"DATABASE_URL": database_url})
    engine = create_engine_from_settings(settings)
    upgrade_head(settings, engine=engine)
    sessions = make_session_factory(engine)
    queue = f"tandem-bench-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    declare(connection.channel(), queue)
    messages = publish(queue, conversations)
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(
        target=consume,
        kwargs={
            "consumer": AnalyticsConsumer(sessions),
            "url": AMQP_URL,
            "queue": queue,
            "prefetch": prefetch,
            "stop": stop,
            "batch_seconds": 0.2,
        },
        daemon=True,
    )
    thread.start()
    try:
        while True:
            with sessions() as session:
                stored = session.scalar(sa.text("SELECT count(*) FROM analytics_events")) or 0
            if stored >= messages:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        thread.join(timeout=30)
        connection.channel().queue_delete(queue)
        connection.close()
    report_started = time.perf_counter()
    with sessions() as session:
        records = list(stored_sessions(session))
    report = kpi_report(records, now=time.time(), idle_seconds=3600)
    report_seconds = time.perf_counter() - report_started
    engine.dispose()
    return {
        "messages": messages,
        "seconds": round(seconds, 2),
        "events_per_second": round(messages / seconds),
        "session_rows": len(records),
        "report_from_analytics_seconds": round(report_seconds, 3),
        "sessions_reported": report["sessions"],
    }


def tracker_report(tmp: Path, conversations: list[list[list[dict[str, Any]]]]) -> dict[str, Any]:
    engine = tracker_engine(f"sqlite:///{tmp}")
    EVENTS.metadata.create_all(engine)
    with engine.begin() as connection:
        rows = [
            {
                "sender_id": m["sender_id"],
                "type_name": m["event"],
                "timestamp": m["timestamp"],
                "data": json.dumps({k: v for k, v in m.items() if k != "sender_id"}),
            }
            for groups in conversations
            for group in groups
            for m in group
        ]
        connection.execute(EVENTS.insert(), rows)
    started = time.perf_counter()
    records = list(tracker_sessions(engine))
    report = kpi_report(records, now=time.time(), idle_seconds=3600)
    seconds = time.perf_counter() - started
    engine.dispose()
    tmp.unlink()
    return {
        "events": len(rows),
        "report_from_tracker_seconds": round(seconds, 3),
        "sessions_reported": report["sessions"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=200)
    args = parser.parse_args()
    conversations = [conversation(n, args.turns) for n in range(args.conversations)]
    runs: dict[str, list[dict[str, Any]]] = {"postgresql": [], "sqlite": []}
    for run in range(args.runs):
        with fresh_database_url("tandem_bench_analytics") as url:
            runs["postgresql"].append(drain(url, conversations, args.prefetch))
        path = Path(f"/tmp/tandem-bench-analytics-{run}.db")
        path.unlink(missing_ok=True)
        runs["sqlite"].append(drain(f"sqlite:///{path}", conversations, args.prefetch))
        path.unlink(missing_ok=True)
    tracker = tracker_report(Path("/tmp/tandem-bench-tracker.db"), conversations)
    results = {
        "command": "python -m benchmarks.analytics.consume " + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "date": time.strftime("%Y-%m-%d"),
        "conversations": args.conversations,
        "turns_per_conversation": args.turns,
        "runs": runs,
        "tracker": tracker,
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for store, rows in runs.items():
        for row in rows:
            print(
                f"{store:10} {row['messages']:6} events {row['seconds']:6.2f} s {row['events_per_second']:6} events/s "
                f"report {row['report_from_analytics_seconds']:.3f} s over {row['session_rows']} sessions"
            )
    print(f"tracker    {tracker['events']:6} events  report {tracker['report_from_tracker_seconds']:.3f} s")


if __name__ == "__main__":
    main()
