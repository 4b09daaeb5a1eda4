"""Customer satisfaction: 1-5 ratings of a conversation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from tandem.db.models import Rating
from tandem.errors import Invalid
from tandem.services.common import require_aware


def record_rating(session: Session, *, conversation_id: str, rating: int, now: datetime) -> int:
    """Store a rating (integer 1..5, else ``Invalid(reason="rating")``); returns its id."""
    require_aware(now)
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise Invalid("rating must be an integer from 1 to 5", reason="rating")
    row = Rating(conversation_id=conversation_id, rating=rating, created_at=now)
    session.add(row)
    session.flush()
    return row.id
