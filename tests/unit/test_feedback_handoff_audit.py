"""Ratings, handoff tickets and audit masking."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from tandem.clock import utc_now
from tandem.db.models import AuditLog, Rating, Ticket
from tandem.errors import Invalid
from tandem.ratelimit import InMemoryRateLimiter
from tandem.services import audit
from tandem.services.feedback import record_rating
from tandem.services.handoff import MAX_TRANSCRIPT_EVENTS, create_handoff

if TYPE_CHECKING:
    from tests.conftest import Db


def test_ratings_are_stored_and_validated(db: Db) -> None:
    with db.sessions.begin() as s:
        rating_id = record_rating(s, conversation_id="c1", rating=5, now=utc_now())
    with db.sessions() as s:
        assert s.get_one(Rating, rating_id).rating == 5
    for bad in (0, 6, True, 4.5, "5"):
        with pytest.raises(Invalid) as err, db.sessions.begin() as s:
            record_rating(s, conversation_id="c1", rating=bad, now=utc_now())  # type: ignore[arg-type]
        assert err.value.reason == "rating"


def test_handoff_ticket_keeps_transcript_slots_and_summary(db: Db) -> None:
    transcript = [{"event": "user", "text": f"message {i}"} for i in range(MAX_TRANSCRIPT_EVENTS + 5)]
    with db.sessions.begin() as s:
        ticket_id = create_handoff(
            s,
            conversation_id="c2",
            reason="user asked for a human",
            transcript=transcript,
            slots={"booking_ref": "AB12CD"},
            summary="Wants to change a name.",
            now=utc_now(),
            settings=db.settings.business,
            limiter=InMemoryRateLimiter(),
        ).ticket_id
    with db.sessions() as s:
        ticket = s.get_one(Ticket, ticket_id)
        assert (ticket.kind, ticket.status, ticket.conversation_id) == ("handoff", "queued", "c2")
        assert ticket.slots == {"booking_ref": "AB12CD"} and ticket.summary == "Wants to change a name."
        assert len(ticket.transcript) == MAX_TRANSCRIPT_EVENTS
        assert ticket.transcript[-1]["text"] == f"message {MAX_TRANSCRIPT_EVENTS + 4}"
    with pytest.raises(Invalid), db.sessions.begin() as s:
        create_handoff(
            s,
            conversation_id="c2",
            reason=" ",
            transcript=[],
            slots={},
            summary="",
            now=utc_now(),
            settings=db.settings.business,
            limiter=InMemoryRateLimiter(),
        )


def test_mask_arguments_hides_personal_data() -> None:
    masked = audit.mask_arguments(
        {
            "email": "john.smith@example.com",
            "last_name": "Smith",
            "token": "secret",
            "slots": {"contact": "a@b.co", "lastname": "Tanaka", "note": "mail me at yuki@example.org please"},
            "date": date(2030, 1, 2),
            "total": Decimal("10.50"),
            "passengers": 2,
        }
    )
    assert masked["email"] == "j***@e***.com" and masked["last_name"] == "S***" and masked["token"] == "***"
    assert masked["slots"] == {"contact": "a***@b***.co", "lastname": "T***", "note": "mail me at y***@e***.org please"}
    assert (masked["date"], masked["total"], masked["passengers"]) == ("2030-01-02", "10.50", 2)
    text = repr(masked)
    for secret in ("john.smith", "Smith", "Tanaka", "yuki@", "secret"):
        assert secret not in text


def test_audit_record_writes_masked_row(db: Db) -> None:
    with db.sessions.begin() as s:
        row_id = audit.record(
            s,
            actor="conv-9",
            role="customer",
            tool="get_booking",
            arguments={"reference": "AB12CD", "last_name": "Smith"},
            outcome="NotFound",
            duration_ms=12,
            at=utc_now(),
        )
    with db.sessions() as s:
        row = s.get_one(AuditLog, row_id)
        assert (row.actor, row.tool, row.outcome, row.duration_ms) == ("conv-9", "get_booking", "NotFound", 12)
        assert row.arguments == {"reference": "AB12CD", "last_name": "S***"}
        assert s.scalars(select(AuditLog)).all() == [row]
