"""Human handoff: a ticket an agent picks up, with everything needed to continue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tandem.db.models import Ticket
from tandem.errors import Invalid
from tandem.services.common import require_aware

MAX_TRANSCRIPT_EVENTS = 200


def create_handoff(
    session: Session,
    *,
    conversation_id: str,
    reason: str,
    transcript: list[dict[str, Any]],
    slots: dict[str, Any],
    summary: str,
    now: datetime,
) -> int:
    """Open a ``handoff`` ticket; returns its id.

    Only the last :data:`MAX_TRANSCRIPT_EVENTS` transcript entries are kept: an agent reads the
    recent conversation, and the row stays small. ``reason`` must be 1..200 characters.
    """
    require_aware(now)
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise Invalid("reason must be 1 to 200 characters", reason="reason")
    ticket = Ticket(
        conversation_id=conversation_id,
        kind="handoff",
        reason=reason,
        status="open",
        transcript=transcript[-MAX_TRANSCRIPT_EVENTS:],
        slots=slots,
        summary=summary,
        booking_reference=None,
        created_at=now,
    )
    session.add(ticket)
    session.flush()
    return ticket.id
