"""Rasa's tracker store, read for the KPI report: the ``events`` table of Rasa's SQL tracker store.

Rasa's ``SQLTrackerStore`` (and ours, tandem_rasa/tracker_store.py) keeps one row per event:
``sender_id``, ``type_name``, ``timestamp`` and the event's JSON in ``data``. This reads those
rows with SQLAlchemy, without Rasa, conversation by conversation, and hands each conversation's
events to :func:`tandem.analytics.sessions.sessions_of`: the embedded default (SQLite) has a KPI
report without a broker, and the broker pipeline has an oracle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from tandem.analytics.sessions import SessionRecord, sessions_of
from tandem.db.engine import create_engine_from_settings
from tandem.settings import DatabaseSettings

log = logging.getLogger(__name__)

_metadata = sa.MetaData()
EVENTS = sa.Table(
    "events",
    _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("sender_id", sa.String(255)),
    sa.Column("type_name", sa.String(255)),
    sa.Column("timestamp", sa.Float),
    sa.Column("data", sa.Text),
)
STATEMENT_TIMEOUT_MS = 60000  # a report over months of events is one long read


def tracker_engine(url: str) -> sa.Engine:
    """An engine for the tracker store's URL (``TRACKER_DB_URL``: sqlite:/// or postgresql://)."""
    settings = DatabaseSettings.model_validate({"DATABASE_URL": url, "DB_STATEMENT_TIMEOUT_MS": STATEMENT_TIMEOUT_MS})
    return create_engine_from_settings(settings)


def _events(rows: Iterator[Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    sender: str | None = None
    events: list[dict[str, Any]] = []
    for row in rows:
        if row.sender_id != sender:
            if sender is not None:
                yield sender, events
            sender, events = row.sender_id, []
        try:
            event = json.loads(row.data)
        except (TypeError, ValueError):
            log.warning("skipped an unreadable tracker event (id %s)", row.id)
            continue
        if isinstance(event, dict):
            events.append(event)
    if sender is not None:
        yield sender, events


def tracker_sessions(engine: sa.Engine, *, since: float | None = None) -> Iterator[SessionRecord]:
    """Every session of every conversation that has an event at or after ``since`` (all: None).

    A conversation's events are read whole (its earlier sessions tell whether a later one is a
    return); rows come ordered by conversation, then the tracker's order (timestamp, id).
    """
    query = sa.select(EVENTS.c.id, EVENTS.c.sender_id, EVENTS.c.data).order_by(
        EVENTS.c.sender_id, EVENTS.c.timestamp, EVENTS.c.id
    )
    if since is not None:
        recent = sa.select(EVENTS.c.sender_id).where(EVENTS.c.timestamp >= since).distinct()
        query = query.where(EVENTS.c.sender_id.in_(recent))
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("events"):
            return
        rows = connection.execution_options(yield_per=2000).execute(query)
        for sender, events in _events(iter(rows)):
            yield from sessions_of(sender, events)
