"""tandem_rasa/tracker_store.py when PostgreSQL fails, inside Rasa's own environment and wrapped as
Rasa's agent wraps every tracker store (``FailSafeTrackerStore``). Rasa's wrapper would answer a
failed read with a fresh tracker and keep a failed save in memory (a turn answered, never stored);
the store raises ``TrackerStoreFailed`` instead, which the wrapper lets through (not an
``Exception``), nothing goes to the in-memory fallback, and once the database is back the
conversation is exactly what was stored before the failure, then carries on."""

from __future__ import annotations

import json
import subprocess
import textwrap

from sqlalchemy.engine import make_url

from tests.integration.conftest import fresh_database_url
from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys

    import sqlalchemy as sa
    from rasa.core.brokers.broker import EventBroker
    from rasa.core.tracker_store import FailSafeTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered

    from tandem_rasa.tracker_store import TandemSQLTrackerStore, TrackerStoreFailed

    pg = json.loads(sys.argv[1])
    domain = Domain.empty()
    admin = sa.create_engine(
        f"postgresql://{pg['username']}@{pg['host']}:{pg['port']}/postgres", isolation_level="AUTOCOMMIT"
    )

    def turn(n):
        return [UserUttered(f"message {n}", {"name": "greet"}), ActionExecuted("utter_greet"), BotUttered(f"reply {n}"),
                ActionExecuted("action_listen")]

    def connections(allowed):
        with admin.connect() as c:
            c.execute(sa.text(f'ALTER DATABASE "{pg["db"]}" ALLOW_CONNECTIONS {"true" if allowed else "false"}'))
            if not allowed:
                c.execute(sa.text(
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{pg['db']}'"
                ))

    async def outcome(call):
        try:
            await call
        except TrackerStoreFailed as error:
            return {"failed": error.operation, "is_exception": isinstance(error, Exception), "text": str(error)}
        return "ok"

    def texts(tracker):
        return [e.text for e in tracker.events if isinstance(e, UserUttered)] if tracker else None

    class Recording(EventBroker):
        # The event stream as the tracker store feeds it: what would reach RabbitMQ.
        def __init__(self):
            self.bodies = []

        def publish(self, event):
            self.bodies.append(event)

    async def main():
        broker = Recording()
        store = FailSafeTrackerStore(
            TandemSQLTrackerStore(domain=domain, dialect="postgresql", event_broker=broker, **pg)
        )
        tracker = await store.get_or_create_tracker("c1")
        tracker.update_with_events(turn(1), domain)
        await store.save(tracker)
        tracker = await store.retrieve("c1")  # the next turn: read, then the database goes away
        tracker.update_with_events(turn(2), domain)
        connections(False)
        results = {"save": await outcome(store.save(tracker)), "retrieve": await outcome(store.retrieve("c1"))}
        results["fallback_used"] = store._fallback_tracker_store is not None
        connections(True)
        results["after"] = texts(await store.retrieve("c1"))
        tracker = await store.retrieve("c1")
        tracker.update_with_events(turn(2), domain)  # the same message, sent again
        await store.save(tracker)
        results["again"] = texts(await store.retrieve("c1"))
        results["published"] = [b["text"] for b in broker.bodies if b["event"] == "user" and b["sender_id"] == "c1"]
        return results

    print(json.dumps(asyncio.run(main())))
    """
)


def test_a_database_failure_fails_the_turn_instead_of_forgetting_it() -> None:
    with fresh_database_url("tandem_tracker_fail") as url:
        parsed = make_url(url)
        pg = {
            "host": parsed.host,
            "port": parsed.port or 5432,
            "db": parsed.database,
            "username": parsed.username,
            "password": parsed.password,
        }
        run = subprocess.run(
            [str(PYTHON), "-c", SCRIPT, json.dumps(pg)], cwd=ROOT, capture_output=True, text=True, timeout=240
        )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for operation in ("save", "retrieve"):
        failed = result[operation]
        assert failed["failed"] == operation and failed["is_exception"] is False, result
        assert "message" not in failed["text"]  # the error's type only, not the SQL or its values
    assert result["fallback_used"] is False  # nothing kept in Rasa's in-memory fallback
    assert result["after"] == ["message 1"]  # the failed save stored nothing
    assert result["again"] == ["message 1", "message 2"]
    # The event stream carries what was stored: nothing of the failed save, each message once.
    assert result["published"] == ["message 1", "message 2"]
