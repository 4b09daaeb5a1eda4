"""tandem_rasa/tracker_store.py inside Rasa's own environment: the rows are exactly Rasa's SQL store's
(nothing lost, nothing stored twice, across turns and sessions and when a save has no retrieve before
it), a save after the turn's retrieve runs no count() query, and SQLite runs in WAL mode."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.integration.conftest import fresh_database_url
from tests.stack import RASA, ROOT

PYTHON = RASA.parent / "python"

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sqlite3, sys
    from unittest import mock

    import sqlalchemy.orm
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from tandem_rasa.tracker_store import TandemSQLTrackerStore

    path = sys.argv[1]
    pg = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    domain = Domain.empty()

    def turn(n):
        return [UserUttered(f"message {n}", {"name": "greet"}), ActionExecuted("utter_greet"), BotUttered(f"reply {n}"),
                ActionExecuted("action_listen")]

    async def main():
        if pg:  # the same on PostgreSQL: two fresh databases
            store = TandemSQLTrackerStore(domain=domain, dialect="postgresql", **pg["ours"])
            reference = SQLTrackerStore(domain=domain, dialect="postgresql", **pg["reference"])
        else:
            store = TandemSQLTrackerStore(domain=domain, dialect="sqlite", db=path)
            reference = SQLTrackerStore(domain=domain, dialect="sqlite", db=path + ".ref")
        counted = []
        real_count = sqlalchemy.orm.Query.count

        def spy(self):
            counted.append(1)
            return real_count(self)

        with mock.patch.object(sqlalchemy.orm.Query, "count", spy):
            for s in (store, reference):
                assert await s.retrieve("c1") is None
                first = [ActionExecuted("action_listen"), *turn(1)]
                tracker = DialogueStateTracker.from_events("c1", first, domain.slots)
                await s.save(tracker)
                for n in (2, 3):  # two more turns: retrieve, add, save
                    tracker = await s.retrieve("c1")
                    for event in turn(n):
                        tracker.update(event)
                    await s.save(tracker)
                # a new session in the middle of a turn
                tracker = await s.retrieve("c1")
                restart = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]
                for event in restart + turn(4):
                    tracker.update(event)
                await s.save(tracker)
                # a save without a retrieve before it (falls back to Rasa's count)
                tracker = await s.retrieve("c1")
                tracker.update(UserUttered("late", {"name": "greet"}))
                await s.save(tracker)
                tracker.update(BotUttered("later"))
                await s.save(tracker)
                if s is store:
                    our_counts = len(counted)
        query = sqlalchemy.text("SELECT sender_id, type_name, intent_name, action_name, data FROM events ORDER BY id")

        def without_time(data):
            value = json.loads(data)
            value.pop("timestamp", None)
            return json.dumps(value, sort_keys=True)

        def rows(s):
            with s.engine.connect() as connection:
                return [(*r[:4], without_time(r[4])) for r in connection.execute(query)]

        ours, theirs = rows(store), rows(reference)
        mode = "wal" if pg else sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        full = await store.retrieve_full_tracker("c1")
        print(json.dumps({
            "same": ours == theirs, "rows": len(ours), "ref_counts": len(counted) - our_counts,
            "our_counts": our_counts, "journal_mode": mode, "full_events": len(full.events),
        }))

    asyncio.run(main())
    """
)


def _run(*args: str) -> dict[str, object]:
    run = subprocess.run([str(PYTHON), "-c", SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def test_the_store_keeps_rasa_s_rows_without_the_count_query(tmp_path: Path) -> None:
    result = _run(str(tmp_path / "tracker.db"))
    # 5 + 4 + 4 events, a new session (3) with a turn (4), then 1 + 1: all stored once, as Rasa's store does.
    assert result["same"] is True and result["rows"] == result["full_events"] == 22, result
    assert result["journal_mode"] == "wal"
    # Rasa's store counts before each of its 6 saves; ours only for the save that had no retrieve.
    assert (result["ref_counts"], result["our_counts"]) == (6, 1), result


def test_the_same_rows_on_postgresql(tmp_path: Path) -> None:
    with fresh_database_url("tandem_tracker") as ours, fresh_database_url("tandem_tracker_ref") as reference:

        def part(url: str) -> dict[str, object]:
            parsed = make_url(url)
            return {
                "host": parsed.host,
                "port": parsed.port or 5432,
                "db": parsed.database,
                "username": parsed.username,
                "password": parsed.password,
            }

        result = _run(str(tmp_path / "unused.db"), json.dumps({"ours": part(ours), "reference": part(reference)}))
    assert result["same"] is True and result["rows"] == result["full_events"] == 22, result
    assert (result["ref_counts"], result["our_counts"]) == (6, 1), result
