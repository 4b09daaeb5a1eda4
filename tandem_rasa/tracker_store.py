"""Rasa's SQL tracker store with two costs of every turn removed (issue 14, profiled under load).

Loaded by class path from ``endpoints.yml`` (``type: tandem_rasa.tracker_store.TandemSQLTrackerStore``),
with the same settings as Rasa's ``SQL`` store; the table and the rows are Rasa's own, so the
store can be switched back and forth without a migration.

1. **SQLite commits without an fsync each.** Rasa commits every turn on its event loop; with
   SQLite's defaults (rollback journal, ``synchronous=FULL``) each commit waited for the disk. In
   WAL mode with ``synchronous=NORMAL`` a commit survives the process crashing (the embedded
   default's failure mode); only an operating-system crash or power loss may lose the last
   commits. PostgreSQL (production) is untouched.
2. **No ``count()`` before each save.** Rasa counts the stored events of the conversation's
   session (a query with a sub-query) to know which events of the tracker are new. The turn's own
   ``retrieve`` has just read exactly those rows, under the conversation's lock, so their number is
   kept (once: the next save of the turn falls back to Rasa's count) and the new events are the
   ones after it.
3. **No ORM objects per event.** The events are read as their ``data`` column only (Rasa builds
   a full ORM object per row and reads only that column) and written in one multi-row ``INSERT``
   (Rasa adds one ORM object per event to the session's unit of work). Same query, same rows.
"""

from __future__ import annotations

import itertools
import json
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

# How many conversations' counts are kept between a retrieve and its save (bounded: a retrieve
# without a save, e.g. a tracker read by the HTTP API, must not grow memory).
MAX_PENDING = 10_000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


class TandemSQLTrackerStore(SQLTrackerStore):
    """Rasa's ``SQLTrackerStore`` (same constructor, same table): see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored: OrderedDict[str, int] = OrderedDict()
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self.engine.dispose()  # connections opened while creating the table get the pragmas too

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> DialogueStateTracker | None:
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions)
            events = [json.loads(data) for (data,) in query.with_entities(self.SQLEvent.data).all()]
        if not fetch_events_from_all_sessions:
            # The rows of the conversation's latest session, as _additional_events would count them.
            self._stored[sender_id] = len(events)
            self._stored.move_to_end(sender_id)
            while len(self._stored) > MAX_PENDING:
                self._stored.popitem(last=False)
        if self.domain and events:
            return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        return None

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Store the tracker's new events (those after the ones stored) in one ``INSERT``."""
        await self.stream_events(tracker)
        with self.session_scope() as session:
            rows = []
            for event in self._additional_events(session, tracker):
                data = event.as_dict()
                rows.append(
                    {
                        "sender_id": tracker.sender_id,
                        "type_name": event.type_name,
                        "timestamp": data.get("timestamp"),
                        "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                        "action_name": data.get("name"),
                        "data": json.dumps(data),
                    }
                )
            if rows:
                session.execute(sa.insert(self.SQLEvent.__table__), rows)
            session.commit()

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator[Any]:
        stored = self._stored.pop(tracker.sender_id, None)
        if stored is None or stored > len(tracker.events):
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, stored, len(tracker.events))


__all__ = ["TandemSQLTrackerStore"]
