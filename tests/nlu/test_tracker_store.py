"""tandem_rasa/tracker_store.py inside Rasa's own environment: the rows are exactly Rasa's SQL store's
(nothing lost, nothing stored twice, across turns and sessions and when a save has no retrieve before
it), a save after the turn's retrieve runs no count() query, and SQLite runs in WAL mode."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

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
    domain = Domain.empty()

    def turn(n):
        return [UserUttered(f"message {n}", {"name": "greet"}), ActionExecuted("utter_greet"), BotUttered(f"reply {n}"),
                ActionExecuted("action_listen")]

    async def main():
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
                    ours = len(counted)
        query = "SELECT sender_id, type_name, intent_name, action_name FROM events ORDER BY id"
        rows = lambda p: [tuple(r) for r in sqlite3.connect(p).execute(query)]
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        full = await store.retrieve_full_tracker("c1")
        print(json.dumps({
            "same": rows(path) == rows(path + ".ref"), "rows": len(rows(path)), "ref_counts": len(counted) - ours,
            "our_counts": ours, "journal_mode": mode, "full_events": len(full.events),
        }))

    asyncio.run(main())
    """
)


def test_the_store_keeps_rasa_s_rows_without_the_count_query(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(PYTHON), "-c", SCRIPT, str(tmp_path / "tracker.db")], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    # 5 + 4 + 4 events, a new session (3) with a turn (4), then 1 + 1: all stored once, as Rasa's store does.
    assert result["same"] is True and result["rows"] == result["full_events"] == 22, result
    assert result["journal_mode"] == "wal"
    # Rasa's store counts before each of its 6 saves; ours only for the save that had no retrieve.
    assert (result["ref_counts"], result["our_counts"]) == (6, 1), result
