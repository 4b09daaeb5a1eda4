"""The durable record of fallback decisions: why the bot answered as it did, one row per decision.

:class:`DecisionRecord` is what is kept of a request and its decision: codes and numbers, never
the customer's text, the masked text or the bot's messages (table ``fallback_decisions``,
migration 0004). :func:`record_decision` writes one in the caller's transaction;
:class:`DecisionRecorder` is what a composition root hands the action layer: it writes in a
worker thread with a timeout and never lets a failure reach the turn (it is logged instead).
The chain itself stays free of database code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from tandem.clock import Clock, utc_now
from tandem.db.models import FallbackDecisionRecord
from tandem.services.common import require_aware

from .types import DecisionKind, FallbackDecision, FallbackRequest, Mode

log = logging.getLogger(__name__)

MAX_CODE = 64  # reason, intent and detail values are short codes; longer ones are cut


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """What is kept of one fallback decision (no text of any kind)."""

    at: datetime
    conversation_id: str
    client_key: str | None
    kind: DecisionKind
    reason: str
    mode: Mode
    intent: str | None = None
    confidence: float | None = None
    sources: tuple[str, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_latency_ms: int = 0
    cached: bool = False
    degraded: bool = False
    detail: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, request: FallbackRequest, decision: FallbackDecision, *, at: datetime) -> DecisionRecord:
        """The record of ``decision`` for ``request``: its codes, numbers and source ids only."""
        return cls(
            at=at,
            conversation_id=request.conversation_id,
            client_key=request.client_key,
            kind=decision.kind,
            reason=decision.reason,
            mode=decision.mode,
            intent=decision.intent,
            confidence=decision.confidence,
            sources=tuple(s.id for s in decision.sources),
            prompt_tokens=decision.prompt_tokens,
            completion_tokens=decision.completion_tokens,
            model_latency_ms=round(decision.model_seconds * 1000),
            cached=decision.cached,
            degraded=decision.degraded,
            detail=dict(decision.meta),
        )


def record_decision(session: Session, record: DecisionRecord) -> int:
    """Write one decision row in ``session``'s transaction; returns its id."""
    require_aware(record.at)
    row = FallbackDecisionRecord(
        at=record.at,
        conversation_id=record.conversation_id[:128],
        client_key=record.client_key[:64] if record.client_key else None,
        kind=record.kind,
        reason=record.reason[:MAX_CODE],
        mode=record.mode,
        intent=record.intent[:MAX_CODE] if record.intent else None,
        confidence=record.confidence,
        sources=list(record.sources),
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        model_latency_ms=record.model_latency_ms,
        cached=record.cached,
        degraded=record.degraded,
        detail={str(k)[:MAX_CODE]: str(v)[:MAX_CODE] for k, v in record.detail.items()},
    )
    session.add(row)
    session.flush()
    return row.id


class DecisionRecorder:
    """Records decisions durably without ever failing or stalling the turn that took them."""

    def __init__(self, sessions: sessionmaker[Session], *, timeout_seconds: float, clock: Clock = utc_now) -> None:
        self.sessions = sessions
        self.timeout_seconds = timeout_seconds
        self.clock = clock

    async def __call__(self, request: FallbackRequest, decision: FallbackDecision) -> None:
        """Write the record of ``decision`` (in a worker thread, within the timeout); log a failure."""
        record = DecisionRecord.of(request, decision, at=self.clock())

        def write() -> None:
            with self.sessions.begin() as session:
                record_decision(session, record)

        try:
            await asyncio.wait_for(asyncio.to_thread(write), timeout=self.timeout_seconds)
        except Exception as exc:  # the turn matters more than its record
            # The exception's type only: a database error's text may quote the row's values.
            log.warning("could not record the fallback decision kind=%s: %s", record.kind, type(exc).__name__)
