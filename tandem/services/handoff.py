"""Human handoff: a ticket an agent picks up, with everything needed to continue.

One open handoff per conversation (issue 10, finding 6): asking again returns the ticket that is
already open (or assigned), refreshed with the latest transcript, so "human please" typed five
times is one ticket for the agents, and the customer hears the same ticket number. New tickets
are also limited per client key and per conversation per hour (``HANDOFF_LIMIT_PER_CLIENT``,
``HANDOFF_LIMIT_PER_CONVERSATION``): a script opening new conversations cannot flood the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tandem.db.models import Ticket
from tandem.errors import Invalid, RateLimited
from tandem.ratelimit import RateLimiter
from tandem.services.common import require_aware, serialize_on
from tandem.settings import BusinessSettings

MAX_TRANSCRIPT_EVENTS = 200
OPEN_STATUSES = ("open", "assigned")
LIMIT_WINDOW_SECONDS = 3600


@dataclass(frozen=True)
class HandoffTicket:
    """The conversation's handoff ticket; ``created`` is False when it was already open."""

    ticket_id: int
    created: bool


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
) -> HandoffTicket:
    """The conversation's open ``handoff`` ticket, or a new one.

    Only the last :data:`MAX_TRANSCRIPT_EVENTS` transcript entries are kept: an agent reads the
    recent conversation, and the row stays small. ``reason`` must be 1..200 characters. A new
    ticket beyond the hourly limits is ``RateLimited``; returning the open one is never limited.
    ``channel`` (``website``, ``slack`` ...) is stored on a new ticket; an open ticket found again
    keeps the channel it was opened on (or takes this one when it had none).
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
        status="open",
        transcript=kept,
        slots=slots,
        summary=summary,
        booking_reference=None,
        created_at=now,
        channel=_channel(channel),
    )
    session.add(ticket)
    session.flush()
    return HandoffTicket(ticket_id=ticket.id, created=True)


def _channel(channel: str | None) -> str | None:
    """The ticket column's form of a channel name (at most 32 characters; empty is unknown)."""
    return channel[:32] if channel else None
