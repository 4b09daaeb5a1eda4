"""Refund approvals: an agent decides a cancellation whose refund is above the threshold.

:func:`tandem.services.bookings.cancel_booking` leaves such a booking ``cancellation_pending`` with
the quoted refund recorded on it and opens a ``refund_approval`` ticket (``queued``). Approving
cancels the booking with that refund and puts its seats back on sale; denying keeps the booking
(``confirmed``, no refund). Both are one conditional update on the ticket and on the booking (two
agents deciding at once: one wins, the other gets ``Conflict``) and one ``ticket_events`` row.
The caller tells the customer (:class:`Decision` has what that needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tandem.db.models import Booking, Ticket
from tandem.errors import Conflict, Invalid, NotFound
from tandem.services.bookings import release_seats
from tandem.services.common import require_aware, rowcount
from tandem.services.handoff import Actor, record_event
from tandem.services.handoff_views import iso

APPROVAL_STATUSES = ("queued", "approved", "denied")


@dataclass(frozen=True)
class ApprovalRow:
    id: int
    status: str
    booking_reference: str | None
    refund: Decimal | None
    currency: str | None
    channel: str | None
    summary: str
    created_at: datetime
    decided_at: datetime | None
    agent_name: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "booking_reference": self.booking_reference,
            "refund": f"{self.refund:.2f}" if self.refund is not None else None,
            "currency": self.currency,
            "channel": self.channel,
            "summary": self.summary,
            "created_at": iso(self.created_at),
            "decided_at": iso(self.decided_at),
            "agent_name": self.agent_name,
        }


@dataclass(frozen=True)
class Decision:
    """An agent's decision, with where to tell the customer."""

    approval: ApprovalRow
    approved: bool
    conversation_id: str
    address: dict[str, Any] | None


def _quoted(ticket: Ticket, booking: Booking | None) -> Decimal | None:
    """The refund that was quoted: on the booking while pending or once approved, on the ticket after a denial."""
    if booking is not None and booking.refund_amount is not None:
        return booking.refund_amount
    quoted = (ticket.slots or {}).get("refund_amount")
    try:
        return Decimal(str(quoted)) if quoted is not None else None
    except ArithmeticError:
        return None


def _row(ticket: Ticket, booking: Booking | None) -> ApprovalRow:
    return ApprovalRow(
        id=ticket.id,
        status=ticket.status,
        booking_reference=ticket.booking_reference,
        refund=_quoted(ticket, booking),
        currency=booking.currency if booking is not None else None,
        channel=ticket.channel,
        summary=ticket.summary,
        created_at=ticket.created_at,
        decided_at=ticket.ended_at,
        agent_name=ticket.agent_name,
    )


def list_approvals(session: Session, *, status: str = "queued", limit: int = 50) -> list[ApprovalRow]:
    """Refund approvals in ``status``: waiting ones oldest first, decided ones newest first."""
    if status not in APPROVAL_STATUSES:
        raise Invalid(f"status must be one of {', '.join(APPROVAL_STATUSES)}", reason="status")
    order = Ticket.id.asc() if status == "queued" else Ticket.id.desc()
    rows = session.execute(
        select(Ticket, Booking)
        .outerjoin(Booking, Booking.reference == Ticket.booking_reference)
        .where(Ticket.kind == "refund_approval", Ticket.status == status)
        .order_by(order)
        .limit(max(1, min(limit, 200)))
    ).all()
    return [_row(ticket, booking) for ticket, booking in rows]


def decide_refund(session: Session, *, ticket_id: int, approve: bool, actor: Actor, now: datetime) -> Decision:
    """Approve (cancel with the quoted refund) or deny (keep the booking) a pending refund.

    ``Conflict`` (reason ``already_decided``) when the ticket was decided, or the booking is no
    longer waiting for approval.
    """
    require_aware(now)
    ticket = session.get(Ticket, ticket_id)
    if ticket is None or ticket.kind != "refund_approval":
        raise NotFound("no such approval")
    to = "approved" if approve else "denied"
    changed = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket_id, Ticket.status == "queued")
        .values(status=to, ended_at=now, agent_id=actor.agent_id, agent_name=(actor.name or "")[:64] or None)
        .execution_options(synchronize_session=False)
    )
    if rowcount(changed) != 1:
        raise Conflict("the refund was decided already", reason="already_decided")
    booking = session.scalars(
        select(Booking).where(Booking.reference == ticket.booking_reference).with_for_update()
    ).first()
    if booking is None or booking.status != "cancellation_pending":
        raise Conflict("the booking is not waiting for a refund decision", reason="already_decided")
    if approve:
        booking.status, booking.cancelled_at = "cancelled", now
        release_seats(session, booking)
    else:
        booking.status, booking.refund_amount = "confirmed", None
    session.flush()
    record_event(session, ticket_id=ticket_id, from_status="queued", to_status=to, actor=actor, now=now)
    session.refresh(ticket)
    return Decision(_row(ticket, booking), approve, ticket.conversation_id, ticket.address)
