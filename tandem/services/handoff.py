"""Human handoff: a ticket an agent picks up, and the state machine it goes through.

One open handoff per conversation (issue 10, finding 6): asking again returns the ticket that is
already open (or assigned), refreshed with the latest transcript, so "human please" typed five
times is one ticket for the agents, and the customer hears the same ticket number. New tickets
are also limited per client key and per conversation per hour (``HANDOFF_LIMIT_PER_CLIENT``,
``HANDOFF_LIMIT_PER_CONVERSATION``): a script opening new conversations cannot flood the queue.

The states (issue 13)::

    queued ──claim──► assigned ──resolve──► resolved   (the bot has the conversation again)
      │                  └──────close─────► closed
      ├──timeout──► expired   (no agent in HANDOFF_QUEUE_TIMEOUT; kept for an e-mail follow-up)
      ├──customer─► cancelled (the customer went back to the bot)
      └──close────► closed

Every transition is one conditional ``UPDATE`` on the status read (two agents claiming at once:
one wins, the other gets ``Conflict``) and one ``ticket_events`` row (who, from, to, when). While
a ticket is open the conversation belongs to a person: :func:`open_handoff` is what the gateway
asks before it sends a customer's message to Rasa. Views for the desk are in
:mod:`tandem.services.handoff_views`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tandem.db.models import HandoffMessage, Ticket, TicketEvent
from tandem.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from tandem.ratelimit import RateLimiter
from tandem.services.common import require_aware, rowcount, serialize_on
from tandem.settings import BusinessSettings

MAX_TRANSCRIPT_EVENTS = 200
OPEN_STATUSES = ("queued", "assigned")
ENDED_STATUSES = ("resolved", "closed", "expired", "cancelled")
LIMIT_WINDOW_SECONDS = 3600
MAX_MESSAGE_CHARS = 4000
MAX_NOTE_CHARS = 1000
MAX_AGENT_NAME_CHARS = 64

# What may follow what; anything else is a Conflict naming the ticket's status.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"assigned", "expired", "cancelled", "closed"}),
    "assigned": frozenset({"resolved", "closed"}),
}


@dataclass(frozen=True)
class HandoffTicket:
    """The conversation's handoff ticket; ``created`` is False when it was already open."""

    ticket_id: int
    created: bool


@dataclass(frozen=True)
class Actor:
    """Who changes a ticket: an agent of the console (``agent_id``), a help desk's agent (by name
    only), the customer, or the system (the queue timeout)."""

    kind: str  # "agent" | "desk" | "customer" | "system"
    agent_id: int | None = None
    name: str | None = None
    role: str | None = None  # "agent" | "admin" for console agents
    desk: str | None = None  # "chatwoot" for kind "desk"

    @property
    def label(self) -> str:
        """The ``ticket_events.actor`` value: ``agent:<id>``, ``chatwoot``, ``customer``, ``system``."""
        if self.kind == "agent":
            return f"agent:{self.agent_id}"
        if self.kind == "desk":
            return self.desk or "desk"
        return self.kind


CUSTOMER = Actor("customer")
SYSTEM = Actor("system")


@dataclass(frozen=True)
class OpenHandoff:
    """A conversation's open handoff, as the gateway needs it on every message."""

    ticket_id: int
    status: str
    channel: str | None
    agent_name: str | None
    created_at: datetime
    address: dict[str, Any] | None
    desk_ref: str | None


@dataclass(frozen=True)
class Transition:
    """What a transition did: the ticket as it is now (for delivery and hand-back)."""

    ticket_id: int
    conversation_id: str
    from_status: str
    to_status: str
    channel: str | None
    agent_name: str | None
    address: dict[str, Any] | None
    desk_ref: str | None
    note: str | None = None


def create_handoff(
    session: Session,
    *,
    conversation_id: str,
    reason: str,
    transcript: list[dict[str, Any]],
    slots: dict[str, Any],
    summary: str,
    now: datetime,
    settings: BusinessSettings,
    limiter: RateLimiter,
    client: str | None = None,
    channel: str | None = None,
    llm_summary: str | None = None,
) -> HandoffTicket:
    """The conversation's open ``handoff`` ticket, or a new one (``queued``).

    Only the last :data:`MAX_TRANSCRIPT_EVENTS` transcript entries are kept: an agent reads the
    recent conversation, and the row stays small. ``reason`` must be 1..200 characters. A new
    ticket beyond the hourly limits is ``RateLimited``; returning the open one is never limited.
    ``channel`` (``website``, ``slack`` ...) is stored on a new ticket; an open ticket found again
    keeps the channel it was opened on (or takes this one when it had none). ``llm_summary`` is
    the model's short summary of the masked transcript, when an LLM is configured.
    """
    require_aware(now)
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise Invalid("reason must be 1 to 200 characters", reason="reason")
    kept = transcript[-MAX_TRANSCRIPT_EVENTS:]
    # Two requests of one conversation at once must not both find none and both insert.
    serialize_on(session, f"handoff:{conversation_id}")
    existing = session.scalars(
        select(Ticket)
        .where(Ticket.conversation_id == conversation_id, Ticket.kind == "handoff", Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.id)
        .limit(1)
    ).first()
    if existing is not None:
        existing.transcript, existing.slots, existing.summary = kept, slots, summary
        existing.llm_summary = llm_summary or existing.llm_summary
        existing.channel = existing.channel or _channel(channel)
        session.flush()
        return HandoffTicket(ticket_id=existing.id, created=False)

    allowed = limiter.hit(
        f"handoff:conv:{conversation_id}",
        limit=settings.handoff_limit_per_conversation,
        window_seconds=LIMIT_WINDOW_SECONDS,
    )
    if allowed and client:
        allowed = limiter.hit(
            f"handoff:client:{client}", limit=settings.handoff_limit_per_client, window_seconds=LIMIT_WINDOW_SECONDS
        )
    if not allowed:
        raise RateLimited("too many handoff tickets", retry_after_seconds=LIMIT_WINDOW_SECONDS)
    ticket = Ticket(
        conversation_id=conversation_id,
        kind="handoff",
        reason=reason,
        status="queued",
        transcript=kept,
        slots=slots,
        summary=summary,
        llm_summary=llm_summary,
        booking_reference=None,
        created_at=now,
        channel=_channel(channel),
    )
    session.add(ticket)
    session.flush()
    record_event(session, ticket_id=ticket.id, from_status=None, to_status="queued", actor=CUSTOMER, now=now)
    return HandoffTicket(ticket_id=ticket.id, created=True)


def record_event(
    session: Session,
    *,
    ticket_id: int,
    from_status: str | None,
    to_status: str,
    actor: Actor,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """One ``ticket_events`` row: the audit trail of a ticket (codes only, never message text)."""
    session.add(
        TicketEvent(
            ticket_id=ticket_id,
            at=now,
            from_status=from_status,
            to_status=to_status,
            actor=actor.label[:64],
            detail=detail or {},
        )
    )


def open_handoff(session: Session, *, conversation_id: str) -> OpenHandoff | None:
    """The conversation's queued or assigned handoff, or None when the bot has the conversation."""
    ticket = session.scalars(
        select(Ticket)
        .where(Ticket.conversation_id == conversation_id, Ticket.kind == "handoff", Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.id.desc())
        .limit(1)
    ).first()
    if ticket is None:
        return None
    return OpenHandoff(
        ticket.id, ticket.status, ticket.channel, ticket.agent_name, ticket.created_at, ticket.address, ticket.desk_ref
    )


def open_handoff_by_desk_ref(session: Session, *, desk_ref: str) -> OpenHandoff | None:
    """The open handoff a help desk knows by ``desk_ref`` (its own conversation id), or None."""
    conversation = session.scalars(
        select(Ticket.conversation_id).where(Ticket.desk_ref == desk_ref[:64], Ticket.kind == "handoff")
    ).first()
    found = open_handoff(session, conversation_id=conversation) if conversation else None
    return found if found is not None and found.desk_ref == desk_ref[:64] else None


def set_address(
    session: Session, *, ticket_id: int, conversation_id: str, address: dict[str, Any] | None, desk_ref: str | None
) -> bool:
    """Record where a platform customer is answered and the help desk's id; only for that conversation's ticket."""
    values: dict[str, Any] = {}
    if address is not None:
        values["address"] = address
    if desk_ref is not None:
        values["desk_ref"] = desk_ref[:64]
    if not values:
        return False
    changed = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.conversation_id == conversation_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(changed) == 1


def claim(session: Session, *, ticket_id: int, actor: Actor, now: datetime) -> Transition:
    """``queued`` → ``assigned`` to ``actor`` (a console agent, or a help desk's agent by name).

    A ticket someone else claimed first, or one that ended, is a ``Conflict`` (reason
    ``already_assigned`` or ``ticket_<status>``).
    """
    name = _agent_name(actor)
    return _move(
        session,
        ticket_id=ticket_id,
        to="assigned",
        actor=actor,
        now=now,
        values={"agent_id": actor.agent_id, "agent_name": name, "assigned_at": now},
    )


def resolve(session: Session, *, ticket_id: int, actor: Actor, now: datetime, note: str | None = None) -> Transition:
    """``assigned`` → ``resolved``: the conversation goes back to the bot. Only the assignee or an admin."""
    note = _note(note)
    _check_assignee(session, ticket_id, actor)
    return _move(
        session, ticket_id=ticket_id, to="resolved", actor=actor, now=now, values={"ended_at": now, "note": note}
    )


def close(session: Session, *, ticket_id: int, actor: Actor, now: datetime, note: str | None = None) -> Transition:
    """``queued``/``assigned`` → ``closed``: ended by the desk without a hand-back message."""
    note = _note(note)
    _check_assignee(session, ticket_id, actor)
    return _move(
        session, ticket_id=ticket_id, to="closed", actor=actor, now=now, values={"ended_at": now, "note": note}
    )


def cancel(session: Session, *, conversation_id: str, now: datetime) -> Transition | None:
    """The customer went back to the bot while queued: ``queued`` → ``cancelled`` (None: nothing queued)."""
    found = open_handoff(session, conversation_id=conversation_id)
    if found is None or found.status != "queued":
        return None
    try:
        return _move(
            session, ticket_id=found.ticket_id, to="cancelled", actor=CUSTOMER, now=now, values={"ended_at": now}
        )
    except Conflict:
        return None  # claimed meanwhile: the agent has it now


def expire_due(session: Session, *, now: datetime, timeout_seconds: int, limit: int = 100) -> list[Transition]:
    """Every ``queued`` handoff older than ``timeout_seconds`` → ``expired`` (at most ``limit`` per call)."""
    require_aware(now)
    due = session.scalars(
        select(Ticket.id)
        .where(
            Ticket.kind == "handoff",
            Ticket.status == "queued",
            Ticket.created_at <= now - timedelta(seconds=timeout_seconds),
        )
        .order_by(Ticket.id)
        .limit(limit)
    ).all()
    expired: list[Transition] = []
    for ticket_id in due:
        try:
            expired.append(
                _move(session, ticket_id=ticket_id, to="expired", actor=SYSTEM, now=now, values={"ended_at": now})
            )
        except Conflict:
            continue  # claimed or cancelled meanwhile
    return expired


def add_message(
    session: Session,
    *,
    ticket_id: int,
    actor: Actor,
    text: str,
    now: datetime,
    external_id: str | None = None,
) -> int | None:
    """Store a message of an open handoff; its id (None: a help desk's message already stored).

    A customer may write while the ticket is queued or assigned; an agent only once assigned, and
    only the assignee (or an admin); a help desk's agent to a ticket of that desk.
    """
    require_aware(now)
    text = text.strip()
    if not text or len(text) > MAX_MESSAGE_CHARS:
        raise Invalid(f"a message must be 1 to {MAX_MESSAGE_CHARS} characters", reason="text")
    ticket = _ticket(session, ticket_id)
    if ticket.status not in OPEN_STATUSES:
        raise Conflict(f"the handoff is {ticket.status}", reason=f"ticket_{ticket.status}")
    if actor.kind in ("agent", "desk"):
        if ticket.status != "assigned":
            raise Conflict("claim the handoff before replying", reason="not_assigned")
        _check_assignee(session, ticket_id, actor)
    if external_id is not None:
        seen = session.scalars(select(HandoffMessage.id).where(HandoffMessage.external_id == external_id[:64])).first()
        if seen is not None:
            return None
    role = "customer" if actor.kind == "customer" else ("system" if actor.kind == "system" else "agent")
    message = HandoffMessage(
        ticket_id=ticket_id,
        role=role,
        agent_id=actor.agent_id,
        text=text,
        created_at=now,
        external_id=external_id[:64] if external_id else None,
    )
    session.add(message)
    session.flush()
    return message.id


def _move(
    session: Session, *, ticket_id: int, to: str, actor: Actor, now: datetime, values: dict[str, Any]
) -> Transition:
    require_aware(now)
    ticket = _ticket(session, ticket_id)
    before = ticket.status
    if to not in TRANSITIONS.get(before, frozenset()):
        reason = "already_assigned" if before == "assigned" and to == "assigned" else f"ticket_{before}"
        raise Conflict(f"the handoff is {before}", reason=reason)
    # Conditional on the status read: of two concurrent moves, one changes the row.
    changed = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == before)
        .values(status=to, **values)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Conflict(
            "the handoff was changed meanwhile", reason="already_assigned" if to == "assigned" else "changed"
        )
    session.expire(ticket)
    record_event(
        session,
        ticket_id=ticket_id,
        from_status=before,
        to_status=to,
        actor=actor,
        now=now,
        detail={"note": True} if values.get("note") else None,
    )
    return Transition(
        ticket_id=ticket.id,
        conversation_id=ticket.conversation_id,
        from_status=before,
        to_status=to,
        channel=ticket.channel,
        agent_name=ticket.agent_name,
        address=ticket.address,
        desk_ref=ticket.desk_ref,
        note=ticket.note,
    )


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.kind != "handoff":
        raise NotFound("no such handoff")
    return ticket


def _check_assignee(session: Session, ticket_id: int, actor: Actor) -> None:
    """An agent acts only on a ticket assigned to them (an admin on any); a desk on its own tickets."""
    ticket = _ticket(session, ticket_id)
    if actor.kind == "agent" and actor.role != "admin" and ticket.agent_id not in (None, actor.agent_id):
        raise Forbidden("the handoff is assigned to another agent")
    if actor.kind == "desk" and ticket.agent_id is not None:
        raise Forbidden("the handoff is assigned to a console agent")


def _agent_name(actor: Actor) -> str:
    name = (actor.name or "").strip()
    if not name:
        raise Invalid("an agent needs a display name", reason="agent_name")
    return name[:MAX_AGENT_NAME_CHARS]


def _note(note: str | None) -> str | None:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE_CHARS:
        raise Invalid(f"a note must be at most {MAX_NOTE_CHARS} characters", reason="note")
    return note


def _channel(channel: str | None) -> str | None:
    """The ticket column's form of a channel name (at most 32 characters; empty is unknown)."""
    return channel[:32] if channel else None
