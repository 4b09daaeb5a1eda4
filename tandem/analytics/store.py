"""The analytics tables (migration 0006): Rasa events received once, sessions rebuilt from them.

The consumer hands each batch of broker messages to :func:`store_events` (one transaction:
events inserted with ``ON CONFLICT DO NOTHING`` on their key, so a redelivered message changes
nothing), then :func:`rebuild_sessions` recomputes the sessions of the conversations that got new
events with the same function the tracker-store report uses
(:func:`tandem.analytics.sessions.sessions_of`), and :func:`stored_sessions` reads them back for
the KPI report. Only what analytics reads is kept (:func:`reduced_event`): no message text, no
entity values, no other slots' values (names, e-mails and references stay in the tracker store).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from tandem.analytics.outcomes import ANALYTICS_SLOTS
from tandem.analytics.sessions import SessionRecord, sessions_of
from tandem.conversation.turns import as_number
from tandem.db.models import AnalyticsEvent, AnalyticsSession
from tandem.services.common import require_aware

MAX_SENDER_CHARS = 255
MAX_TYPE_CHARS = 64
_KEPT_METADATA = ("channel", "correlation_id", "is_external", "utter_action")


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A newly stored event: its conversation and its reduced data."""

    sender_id: str
    data: dict[str, Any]


def event_key(sender_id: str, event: Mapping[str, Any]) -> str:
    """The event's identity: SHA-256 of the conversation id and the event's canonical JSON."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{sender_id}\n{canonical}".encode()).hexdigest()


def _metadata(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {}
    return {k: raw[k] for k in _KEPT_METADATA if isinstance(raw.get(k), str | bool)}


def reduced_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """What analytics keeps of a Rasa event: its kind, time and codes, never text or personal data."""
    kind = event.get("event")
    kept: dict[str, Any] = {"event": kind, "timestamp": event.get("timestamp")}
    if kind == "user":
        parse_data = event.get("parse_data")
        intent = parse_data.get("intent") if isinstance(parse_data, Mapping) else None
        if isinstance(intent, Mapping):
            kept["parse_data"] = {"intent": {"name": intent.get("name"), "confidence": intent.get("confidence")}}
        kept["input_channel"] = event.get("input_channel")
        kept["metadata"] = _metadata(event.get("metadata"))
    elif kind == "bot":
        kept["metadata"] = _metadata(event.get("metadata"))
    elif kind == "action":
        kept["name"] = event.get("name")
        kept["policy"] = event.get("policy")
        kept["confidence"] = event.get("confidence")
    elif kind == "slot":
        kept["name"] = event.get("name")
        kept["value"] = event.get("value") if event.get("name") in ANALYTICS_SLOTS else None
    elif kind == "active_loop":
        kept["name"] = event.get("name")
    return kept


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(AnalyticsEvent)


def is_rasa_event(message: Mapping[str, Any]) -> bool:
    """Whether a broker message is a Rasa event analytics can store: a non-empty ``sender_id`` and
    ``event``, and a numeric ``timestamp`` (the consumer drops anything else before storing)."""
    sender, kind = message.get("sender_id"), message.get("event")
    return (
        isinstance(sender, str)
        and bool(sender)
        and isinstance(kind, str)
        and bool(kind)
        and as_number(message.get("timestamp")) is not None
    )


def store_events(session: Session, messages: Iterable[Mapping[str, Any]], *, now: datetime) -> list[StoredEvent]:
    """Insert the broker messages (``{"sender_id", "event", ...}``) not stored yet, in ``session``'s
    transaction; returns the new ones (a redelivered message is not among them).

    A message that is not :func:`is_rasa_event` raises ``ValueError`` before anything is written
    (the consumer drops such messages first).
    """
    require_aware(now)
    rows: dict[str, dict[str, Any]] = {}
    for message in messages:
        if not is_rasa_event(message):
            raise ValueError("not a Rasa event: sender_id, event and a numeric timestamp are required")
        sender, kind, stamp = message["sender_id"], message["event"], message["timestamp"]
        event = {k: v for k, v in message.items() if k != "sender_id"}
        key = event_key(sender, event)
        rows[key] = {
            "event_key": key,
            "sender_id": sender[:MAX_SENDER_CHARS],
            "type_name": kind[:MAX_TYPE_CHARS],
            "timestamp": float(stamp),
            "data": reduced_event(event),
            "received_at": now,
        }
    if not rows:
        return []
    statement = _insert(session).values(list(rows.values())).on_conflict_do_nothing(index_elements=["event_key"])
    new_keys = set(session.scalars(statement.returning(AnalyticsEvent.event_key)))
    return [StoredEvent(row["sender_id"], row["data"]) for key, row in rows.items() if key in new_keys]


def previous_user_timestamp(session: Session, sender: str, before: float) -> float | None:
    """When the conversation's last user message before ``before`` arrived (a turn's start)."""
    return session.scalar(
        sa.select(sa.func.max(AnalyticsEvent.timestamp)).where(
            AnalyticsEvent.sender_id == sender,
            AnalyticsEvent.type_name == "user",
            AnalyticsEvent.timestamp <= before,
        )
    )


def _row(record: SessionRecord, now: datetime) -> dict[str, Any]:
    values = asdict(record)
    values["llm_cost"] = str(record.llm_cost)
    values["outcomes"] = list(record.outcomes)
    values["turn_latencies_ms"] = list(record.turn_latencies_ms)
    values["success"] = record.success
    values["updated_at"] = now
    return values


def rebuild_sessions(session: Session, senders: Iterable[str], *, now: datetime) -> dict[str, list[SessionRecord]]:
    """Recompute the session rows of ``senders`` from their stored events; returns them by sender."""
    require_aware(now)
    written: dict[str, list[SessionRecord]] = {}
    for sender in sorted(set(senders)):
        events = session.scalars(
            sa.select(AnalyticsEvent.data)
            .where(AnalyticsEvent.sender_id == sender)
            .order_by(AnalyticsEvent.timestamp, AnalyticsEvent.id)
        ).all()
        records = sessions_of(sender, events)
        session.execute(sa.delete(AnalyticsSession).where(AnalyticsSession.sender_id == sender))
        if records:
            session.execute(sa.insert(AnalyticsSession), [_row(r, now) for r in records])
        written[sender] = records
    return written


def all_senders(session: Session) -> list[str]:
    """Every conversation with stored events (``analytics rebuild``)."""
    return list(session.scalars(sa.select(AnalyticsEvent.sender_id).distinct()))


def _record(row: AnalyticsSession) -> SessionRecord:
    return SessionRecord(
        sender_id=row.sender_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        channel=row.channel,
        user_turns=row.user_turns,
        engaged=row.engaged,
        fallback_turns=row.fallback_turns,
        fallback_stages=dict(row.fallback_stages),
        outcomes=tuple(row.outcomes),
        handoff_reason=row.handoff_reason,
        rating=row.rating,
        rating_asked=row.rating_asked,
        tool_calls=row.tool_calls,
        tool_failures=row.tool_failures,
        error_turns=row.error_turns,
        llm_prompt_tokens=row.llm_prompt_tokens,
        llm_completion_tokens=row.llm_completion_tokens,
        llm_cost=Decimal(row.llm_cost),
        llm_answers=row.llm_answers,
        llm_cache_hits=row.llm_cache_hits,
        turn_latencies_ms=tuple(row.turn_latencies_ms),
        first_response_ms=row.first_response_ms,
        next_started_at=row.next_started_at,
    )


def stored_sessions(session: Session, *, since: float | None = None) -> Sequence[SessionRecord]:
    """The session rows (started at or after ``since``), as records, oldest first."""
    query = sa.select(AnalyticsSession).order_by(AnalyticsSession.started_at, AnalyticsSession.id)
    if since is not None:
        query = query.where(AnalyticsSession.started_at >= since)
    return [_record(row) for row in session.scalars(query)]
