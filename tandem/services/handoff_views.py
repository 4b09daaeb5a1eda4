"""What the desk reads: handoff lists and details for agents, and the customer's side of a handoff.

Plain data (``as_json`` gives the documented shape, docs/handoff.md). PII in slots and
transcripts is shown to agents only: the customer's view (:func:`customer_view`) carries the
agents' messages and the handoff's state, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tandem.db.models import HandoffMessage, Ticket, TicketEvent
from tandem.errors import Invalid, NotFound
from tandem.services.handoff import ENDED_STATUSES, OPEN_STATUSES

LIST_STATUSES = ("open", *OPEN_STATUSES, *ENDED_STATUSES)
MAX_LIST = 200
# Roles of the transcript the action stored (before the handoff) as the console names them.
_BEFORE_ROLES = {"user": "customer", "bot": "bot", "agent": "agent"}


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso_epoch(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return iso(datetime.fromtimestamp(value, UTC))
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class HandoffRow:
    id: int
    status: str
    channel: str | None
    reason: str
    summary: str
    llm_summary: str | None
    created_at: datetime
    assigned_at: datetime | None
    ended_at: datetime | None
    agent_id: int | None
    agent_name: str | None
    messages: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "channel": self.channel,
            "reason": self.reason,
            "summary": self.summary,
            "llm_summary": self.llm_summary,
            "created_at": iso(self.created_at),
            "assigned_at": iso(self.assigned_at),
            "ended_at": iso(self.ended_at),
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "messages": self.messages,
        }


@dataclass(frozen=True)
class HandoffDetail:
    row: HandoffRow
    conversation_id: str
    transcript: list[dict[str, Any]]
    slots: dict[str, Any]
    note: str | None
    events: list[dict[str, Any]] = field(default_factory=list)
    address: dict[str, Any] | None = None
    desk_ref: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            **self.row.as_json(),
            "transcript": self.transcript,
            "slots": self.slots,
            "note": self.note,
            "events": self.events,
        }


def _row(ticket: Ticket, messages: int) -> HandoffRow:
    return HandoffRow(
        id=ticket.id,
        status=ticket.status,
        channel=ticket.channel,
        reason=ticket.reason,
        summary=ticket.summary,
        llm_summary=ticket.llm_summary,
        created_at=ticket.created_at,
        assigned_at=ticket.assigned_at,
        ended_at=ticket.ended_at,
        agent_id=ticket.agent_id,
        agent_name=ticket.agent_name,
        messages=messages,
    )


def list_handoffs(session: Session, *, status: str = "queued", limit: int = 50) -> list[HandoffRow]:
    """Handoffs in ``status`` (``open``: queued and assigned), oldest first when waiting, else newest first."""
    if status not in LIST_STATUSES:
        raise Invalid(f"status must be one of {', '.join(LIST_STATUSES)}", reason="status")
    limit = max(1, min(limit, MAX_LIST))
    statuses = OPEN_STATUSES if status == "open" else (status,)
    counts = (
        select(HandoffMessage.ticket_id, func.count(HandoffMessage.id).label("n"))
        .group_by(HandoffMessage.ticket_id)
        .subquery()
    )
    waiting = status in ("open", "queued", "assigned")
    order = Ticket.id.asc() if waiting else Ticket.id.desc()
    rows = session.execute(
        select(Ticket, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .where(Ticket.kind == "handoff", Ticket.status.in_(statuses))
        .order_by(order)
        .limit(limit)
    ).all()
    return [_row(ticket, int(n)) for ticket, n in rows]


def handoff_detail(session: Session, *, ticket_id: int) -> HandoffDetail:
    """One handoff with the transcript before it, every message since, the slots and the transitions."""
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.kind != "handoff":
        raise NotFound("no such handoff")
    before = [
        {
            "id": f"b{i}",
            "role": _BEFORE_ROLES.get(str(entry.get("role")), "bot"),
            "text": str(entry.get("text") or ""),
            "at": _iso_epoch(entry.get("at")),
            "agent_name": entry.get("agent_name") if isinstance(entry.get("agent_name"), str) else None,
            "phase": "before",
        }
        for i, entry in enumerate(ticket.transcript or [])
        if isinstance(entry, dict)
    ]
    since = [message_json(m, ticket.agent_name) for m in _messages(session, ticket_id)]
    events = [
        {"at": iso(e.at), "from": e.from_status, "to": e.to_status, "actor": e.actor}
        for e in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id))
    ]
    return HandoffDetail(
        row=_row(ticket, len(since)),
        conversation_id=ticket.conversation_id,
        transcript=before + since,
        slots=dict(ticket.slots or {}),
        note=ticket.note,
        events=events,
        address=ticket.address,
        desk_ref=ticket.desk_ref,
    )


def message_json(message: HandoffMessage, agent_name: str | None) -> dict[str, Any]:
    return {
        "id": message.id,
        "role": message.role,
        "text": message.text,
        "at": iso(message.created_at),
        "agent_name": agent_name if message.role == "agent" else None,
        "phase": "after",
    }


def _messages(session: Session, ticket_id: int, after: int = 0) -> list[HandoffMessage]:
    return list(
        session.scalars(
            select(HandoffMessage)
            .where(HandoffMessage.ticket_id == ticket_id, HandoffMessage.id > after)
            .order_by(HandoffMessage.id)
        )
    )


@dataclass(frozen=True)
class CustomerView:
    """The customer's side of the conversation's latest handoff: its state and the messages after ``after``."""

    ticket_id: int | None
    state: str  # "none" | "pending" | "agent_joined" | "ended"
    agent_name: str | None
    messages: list[dict[str, Any]]
    cursor: int


def customer_view(session: Session, *, conversation_id: str, after: int = 0) -> CustomerView:
    """One indexed query for the ticket and one for its new messages: cheap enough to poll."""
    ticket = session.scalars(
        select(Ticket)
        .where(Ticket.conversation_id == conversation_id, Ticket.kind == "handoff")
        .order_by(Ticket.id.desc())
        .limit(1)
    ).first()
    if ticket is None:
        return CustomerView(None, "none", None, [], after)
    state = {"queued": "pending", "assigned": "agent_joined"}.get(ticket.status, "ended")
    new = [m for m in _messages(session, ticket.id, after) if m.role != "customer"]
    cursor = max([after, *(m.id for m in new)])
    return CustomerView(ticket.id, state, ticket.agent_name, [message_json(m, ticket.agent_name) for m in new], cursor)


def conversation_messages(session: Session, *, conversation_id: str) -> list[tuple[HandoffMessage, str | None]]:
    """Every handoff message of the conversation, oldest first, with the agent name of its ticket (the history)."""
    rows = session.execute(
        select(HandoffMessage, Ticket.agent_name)
        .join(Ticket, Ticket.id == HandoffMessage.ticket_id)
        .where(Ticket.conversation_id == conversation_id)
        .order_by(HandoffMessage.id)
    ).all()
    return [(message, name) for message, name in rows]
