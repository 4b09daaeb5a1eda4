"""Failed booking lookups, counted in the database across conversations (issue 10, finding 3).

A lookup (reference + last name) is an oracle for the last name: without a limit that outlives
the conversation a script guesses surnames from a dictionary, one new session at a time. So each
failure is stored once per scope — the booking **reference** as typed (normalised; whether it
exists plays no part, so a locked unknown reference looks exactly like a locked real one), the
gateway's **client** key (when known) and the **conversation** — and a scope with its maximum of
failures within ``LOOKUP_LOCKOUT_MINUTES`` is locked: :func:`check` refuses with ``RateLimited``
before any name is compared, until enough of those failures are older than the window.

What is stored: the scope and its subject (reference, opaque client key, conversation id) and the
time. No last name, and no hash of one. References are stored as typed, not hashed: the bookings
table holds them in clear anyway, and an unkeyed hash of a 6-character code hides nothing.
Each failure and each lock-out also writes an audit row (``lookup_failure``, ``lookup_lockout``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from tandem.db.models import LookupFailure
from tandem.errors import RateLimited
from tandem.services import audit
from tandem.services.common import normalize_reference, require_aware, serialize_on
from tandem.settings import BusinessSettings

MAX_SUBJECT = 128


@dataclass(frozen=True)
class LookupAttempt:
    """Who looks up which reference: what the failures are counted by."""

    reference: str
    conversation_id: str
    client: str | None = None
    # Where the attempt came from, for its audit rows (not counted by).
    channel: str | None = None
    correlation_id: str | None = None

    def scopes(self, settings: BusinessSettings) -> list[tuple[str, str, int]]:
        """``(scope, subject, maximum failures)`` for every scope this attempt is counted in."""
        reference = normalize_reference(self.reference)[:MAX_SUBJECT]
        scopes = [
            ("reference", reference, settings.lookup_max_failures_per_reference),
            ("conversation", self.conversation_id[:MAX_SUBJECT], settings.lookup_max_failures_per_conversation),
        ]
        if self.client:
            scopes.append(("client", self.client[:MAX_SUBJECT], settings.lookup_max_failures_per_client))
        return scopes


def check(session: Session, *, attempt: LookupAttempt, settings: BusinessSettings, now: datetime) -> None:
    """Raise ``RateLimited`` when any scope of ``attempt`` is locked; call before comparing names.

    Also serialises lookups of the same reference / client / conversation until the caller's
    transaction ends, so concurrent guesses cannot all pass the check before one is recorded.
    """
    require_aware(now)
    scopes = attempt.scopes(settings)
    serialize_on(session, *(f"lookup:{scope}:{subject}" for scope, subject, _ in scopes))
    window = timedelta(minutes=settings.lookup_lockout_minutes)
    retry_after = 0
    for scope, subject, limit in scopes:
        # The limit-th most recent failure in the window: the lock lifts when it leaves the window.
        pivot = session.scalar(
            select(LookupFailure.at)
            .where(LookupFailure.scope == scope, LookupFailure.subject == subject, LookupFailure.at > now - window)
            .order_by(LookupFailure.at.desc())
            .offset(limit - 1)
            .limit(1)
        )
        if pivot is not None:
            retry_after = max(retry_after, math.ceil((pivot + window - now).total_seconds()))
    if retry_after > 0:
        raise RateLimited("too many failed lookups; try again later", retry_after_seconds=max(1, retry_after))


def record_failure(
    session: Session, *, attempt: LookupAttempt, settings: BusinessSettings, now: datetime, role: str
) -> list[str]:
    """Count one failed lookup in every scope; returns the scopes this failure locked.

    Writes a ``lookup_failure`` audit row, and a ``lookup_lockout`` row for each scope that
    reached its maximum with this failure. Failures older than the window are deleted on the way
    (they no longer count), so the table stays small without a separate job.
    """
    require_aware(now)
    window = timedelta(minutes=settings.lookup_lockout_minutes)
    session.execute(delete(LookupFailure).where(LookupFailure.at <= now - window))
    scopes = attempt.scopes(settings)
    session.add_all([LookupFailure(scope=scope, subject=subject, at=now) for scope, subject, _ in scopes])
    session.flush()
    reference = scopes[0][1]
    client = {"client": attempt.client} if attempt.client else {}
    audit.record(
        session,
        actor=attempt.conversation_id,
        role=role,
        tool="lookup_failure",
        arguments={"reference": reference, **client},
        outcome="NotFound",
        duration_ms=0,
        at=now,
        channel=attempt.channel,
        correlation_id=attempt.correlation_id,
    )
    locked: list[str] = []
    for scope, subject, limit in scopes:
        count = session.scalar(
            select(func.count())
            .select_from(LookupFailure)
            .where(LookupFailure.scope == scope, LookupFailure.subject == subject, LookupFailure.at > now - window)
        )
        if count == limit:
            locked.append(scope)
            audit.record(
                session,
                actor=attempt.conversation_id,
                role=role,
                tool="lookup_lockout",
                arguments={
                    "scope": scope,
                    "reference": reference,
                    **client,
                    "failures": limit,
                    "window_minutes": settings.lookup_lockout_minutes,
                },
                outcome="locked",
                duration_ms=0,
                at=now,
                channel=attempt.channel,
                correlation_id=attempt.correlation_id,
            )
    return locked
