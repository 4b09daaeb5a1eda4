"""Rasa's SQL tracker store with costs of every turn removed (issue 14, profiled under load; issue 15).

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
4. **An index for the per-turn query on PostgreSQL.** Rasa indexes only ``sender_id``. Its query
   (``_event_query``) first finds the conversation's latest ``session_started`` (``max(timestamp)``),
   and without an index that reads every event the conversation ever had. A partial index on
   ``(sender_id, timestamp) WHERE type_name = 'session_started'`` turns it into an index-only scan
   that reads one entry. It holds the session starts only: 1.2 MB where a full
   ``(sender_id, type_name, timestamp)`` index takes 38 MB (500k events), and most inserts never
   touch it. It matches because psycopg2 sends ``'session_started'`` as a literal; with a generic
   plan the query would fall back to Rasa's index, as it did before. No index helps the fetch
   itself: ``timestamp >= start OR start IS NULL`` cannot be an index condition, and ``EXPLAIN``
   keeps the bitmap scan on Rasa's index even when ``(sender_id, timestamp)`` or
   ``(sender_id, id)`` exist, so neither is created. The index is built when the store starts,
   after Rasa has created the table. A replica that finds it in the catalog takes no lock (a no-op
   ``CREATE INDEX`` would still lock the table against inserts). Otherwise ``CREATE INDEX IF NOT
   EXISTS`` runs under ``pg_advisory_xact_lock``, so replicas that start together wait for each
   other instead of colliding. The table and rows stay Rasa's own: Rasa's store never sees an
   extra index. SQLite gets none: the embedded mode runs one process with few conversations, and
   another index would bring back write work that point 1 removed.
5. **A failed read or write fails the turn.** Rasa wraps every tracker store in a
   ``FailSafeTrackerStore``, which answers a failed ``retrieve`` with a fresh tracker and keeps the
   tracker of a failed ``save`` in the process's memory: under a database restart, turns answered
   and never stored. Both raise :class:`TrackerStoreFailed` (a ``BaseException``, which that
   wrapper lets through) instead: the turn ends unsaved with a retryable error
   (tandem_rasa/failures.py).
6. **The event stream publishes what was stored, once stored.** With an event broker (analytics),
   Rasa's ``save`` first calls ``stream_events``, which retrieves the conversation once more (a
   query and a replay of the whole session into a tracker, every turn) to find the new events,
   and publishes them before the insert: a turn whose insert then fails has published events the
   tracker store never holds. Here the new events are the ones the insert writes, found as in
   point 2, and they are published after the commit (publishing only appends to the broker's
   buffer: tandem_rasa/event_broker.py).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY

from tandem_rasa.failures import TurnFailed

logger = logging.getLogger(__name__)

# The indexes added to Rasa's table on PostgreSQL: name -> what follows ``ON <table>``. An index is
# identified by its name, so a changed definition needs a new name.
POSTGRESQL_INDEXES = {
    "tandem_events_session_started": f"(sender_id, timestamp) WHERE type_name = '{SessionStarted.type_name}'",
}
# Any fixed key, the same in every replica ("tandem", issue 15): serialises the index creation.
INDEX_LOCK_KEY = 0x7461_6E64_656D_0015

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


def _index_names(connection: sa.engine.Connection, table: str) -> set[str]:
    """The names of the indexes on ``table`` (resolved through the search path, as Rasa's queries
    are); raises when the table is missing."""
    oid = connection.execute(sa.text("SELECT to_regclass(:table)::oid"), {"table": table}).scalar()
    if oid is None:
        # Rasa only logs a failed CREATE TABLE (e.g. the database is missing) and carries on.
        raise RuntimeError(f"Rasa's tracker table {table!r} does not exist: see Rasa's 'Could not create tables' error")
    query = sa.text("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = :oid")
    return {name for (name,) in connection.execute(query, {"oid": oid})}


def create_postgresql_indexes(engine: sa.engine.Engine, table: str) -> list[str]:
    """Create those of :data:`POSTGRESQL_INDEXES` that ``table`` lacks and return their names.

    Safe to run from several processes at once: the creation is serialised by an advisory lock,
    and the check for existing indexes takes no lock at all.
    """
    with engine.connect() as connection:
        if not POSTGRESQL_INDEXES.keys() - _index_names(connection, table):
            return []
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": INDEX_LOCK_KEY})
        # Another replica may have created the indexes while this one waited for the lock.
        missing = sorted(POSTGRESQL_INDEXES.keys() - _index_names(connection, table))
        for name in missing:
            connection.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} {POSTGRESQL_INDEXES[name]}"))
    if missing:
        logger.info("Created the indexes %s on the tracker table %r.", ", ".join(missing), table)
    return missing


class TrackerStoreFailed(TurnFailed):
    """The database failed during a retrieve or a save: the turn ends unsaved (tandem_rasa/failures.py)."""

    def __init__(self, operation: str, error: Exception) -> None:
        # The error's type only: its text may quote the SQL and its parameters (the conversation).
        super().__init__(f"tracker store {operation} failed ({type(error).__name__})")
        self.operation = operation


class TandemSQLTrackerStore(SQLTrackerStore):
    """Rasa's ``SQLTrackerStore`` (same constructor, same table): see the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored: OrderedDict[str, int] = OrderedDict()
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            self.engine.dispose()  # connections opened while creating the table get the pragmas too
        elif self.engine.dialect.name == "postgresql":
            create_postgresql_indexes(self.engine, self.SQLEvent.__tablename__)

    async def _retrieve(self, sender_id: str, fetch_events_from_all_sessions: bool) -> DialogueStateTracker | None:
        try:
            with self.session_scope() as session:
                query = self._event_query(session, sender_id, fetch_events_from_all_sessions)
                events = [json.loads(data) for (data,) in query.with_entities(self.SQLEvent.data).all()]
        except Exception as error:
            # Rasa's FailSafeTrackerStore would answer "no such conversation" (a fresh tracker).
            raise TrackerStoreFailed("retrieve", error) from error
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
        try:
            await self._save(tracker)
        except Exception as error:
            # Rasa's FailSafeTrackerStore would keep the tracker in this process's memory: a turn
            # answered and never stored.
            raise TrackerStoreFailed("save", error) from error

    async def _save(self, tracker: DialogueStateTracker) -> None:
        with self.session_scope() as session:
            new_events = list(self._additional_events(session, tracker))
            rows = []
            for event in new_events:
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
        if self.event_broker is not None and new_events:
            await self._stream_new_events(self.event_broker, new_events, tracker.sender_id)

    def _additional_events(self, session: Any, tracker: DialogueStateTracker) -> Iterator[Any]:
        stored = self._stored.pop(tracker.sender_id, None)
        if stored is None or stored > len(tracker.events):
            return super()._additional_events(session, tracker)
        return itertools.islice(tracker.events, stored, len(tracker.events))


__all__ = ["POSTGRESQL_INDEXES", "TandemSQLTrackerStore", "TrackerStoreFailed", "create_postgresql_indexes"]
