"""One conversation's Rasa events → one :class:`SessionRecord` per Rasa session, without Rasa.

The same function reads the tracker store's events (the KPI report) and the events the analytics
consumer received from RabbitMQ, so both paths give the same records for the same conversation.

Definitions (README: Analytics):

- a *session* runs from a ``session_started`` event to the next (Rasa starts one after
  ``session_expiration_time`` of silence and on ``/restart``); sessions without a user message
  are not sessions for analytics (a tracker fetched, a restart nobody followed);
- a *user turn* is a message somebody typed or clicked (external intents are not);
- a turn's *decision* is the first action the dialogue chose after it (bookkeeping skipped);
- *engaged*: at least one user turn decided by something other than small talk
  (:data:`SMALL_TALK`: greeting, goodbye, thanks, rating) — Copilot Studio's "engaged session";
- *fallback turn*: the fallback chain decided during the turn (a ``fallback_decision`` slot);
  its *stage* is the decision's kind (answer, clarify, refuse, rescue, form_answer, handoff,
  degraded);
- *turn latency*: from the user event to the ``action_listen`` that ends the turn, in Rasa's
  own timestamps (Rasa re-stamps every event an action returns when it applies it, so the order
  of timestamps is the order of the tracker);
- *first response*: from the first user turn to the first bot message after it;
- *error turn*: a user turn during which a tool call failed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from tandem.analytics.metrics import tool_failed
from tandem.analytics.outcomes import (
    FALLBACK_SLOT,
    HANDOFF_REASON_SLOT,
    RATING_QUESTION,
    RATING_SLOT,
    TASK_OUTCOME_SLOT,
    TASK_OUTCOMES,
    TOOL_CALLS_SLOT,
    is_success,
)
from tandem.conversation.turns import as_number, channel_name, is_external
from tandem.conversation.walks import is_bot_decision

# Decisions that do not make a session engaged.
SMALL_TALK = frozenset(
    {
        "utter_greet",
        "utter_goodbye",
        "utter_youre_welcome",
        "utter_ask_rating",
        "action_record_rating",
        "action_restart",
        "action_session_start",
    }
)
MAX_CODE_CHARS = 64


@dataclass(frozen=True)
class SessionRecord:
    """What analytics keeps of one Rasa session: codes, counts and timings, never text."""

    sender_id: str
    started_at: float
    ended_at: float
    channel: str | None = None
    user_turns: int = 0
    engaged: bool = False
    fallback_turns: int = 0
    fallback_stages: dict[str, int] = field(default_factory=dict)
    outcomes: tuple[str, ...] = ()
    handoff_reason: str | None = None  # None: no ticket was opened
    rating: int | None = None
    rating_asked: bool = False
    tool_calls: int = 0
    tool_failures: int = 0
    error_turns: int = 0
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    llm_cost: Decimal = Decimal(0)
    llm_answers: int = 0  # decisions that needed a model answer (from the model or the cache)
    llm_cache_hits: int = 0
    turn_latencies_ms: tuple[int, ...] = ()
    first_response_ms: int | None = None
    next_started_at: float | None = None  # the conversation's next session, if there is one

    @property
    def success(self) -> bool:
        return any(is_success(outcome) for outcome in self.outcomes)

    @property
    def handoff(self) -> bool:
        return self.handoff_reason is not None

    def ended(self, *, now: float, idle_seconds: float) -> bool:
        """Over: a later session began, or nothing happened for ``idle_seconds``."""
        return self.next_started_at is not None or now - self.ended_at >= idle_seconds


def _code(value: Any) -> str | None:
    return value[:MAX_CODE_CHARS] if isinstance(value, str) and value else None


def _decimal(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return amount if amount.is_finite() and amount >= 0 else Decimal(0)


def _int(value: Any) -> int:
    number = as_number(value)
    return max(int(number), 0) if number is not None else 0


@dataclass
class _Turn:
    at: float
    decision: str | None = None
    latency_ms: int | None = None
    first_bot_at: float | None = None
    fallback: bool = False
    error: bool = False


@dataclass
class _Session:
    sender_id: str
    started_at: float | None = None
    ended_at: float | None = None
    channel: str | None = None
    turns: list[_Turn] = field(default_factory=list)
    current: _Turn | None = None
    stages: dict[str, int] = field(default_factory=dict)
    outcomes: list[str] = field(default_factory=list)
    handoff_reason: str | None = None
    pending_reason: str | None = None
    rating: int | None = None
    rating_asked: bool = False
    tool_calls: int = 0
    tool_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    answers: int = 0
    cache_hits: int = 0

    def stamp(self, at: float | None) -> None:
        if at is None:
            return
        self.started_at = at if self.started_at is None else self.started_at
        self.ended_at = at if self.ended_at is None else max(self.ended_at, at)

    def user(self, event: Mapping[str, Any], at: float | None) -> None:
        if is_external(event):
            self.current = None  # nobody typed it: the hand-back of a ticket, a refund decision
            return
        if self.channel is None:
            self.channel = channel_name(event.get("metadata"), event.get("input_channel"))
        self.current = _Turn(at=at if at is not None else self.ended_at or 0.0)
        self.turns.append(self.current)

    def action(self, name: Any, at: float | None) -> None:
        turn = self.current
        if turn is None:
            return
        if name == "action_listen":
            if at is not None and turn.latency_ms is None:
                turn.latency_ms = max(round((at - turn.at) * 1000), 0)
            self.current = None
        elif turn.decision is None and is_bot_decision(name):
            turn.decision = str(name)

    def bot(self, event: Mapping[str, Any], at: float | None) -> None:
        metadata = event.get("metadata")
        if isinstance(metadata, Mapping) and metadata.get("utter_action") == RATING_QUESTION:
            self.rating_asked = True
        if self.current is not None and self.current.first_bot_at is None and at is not None:
            self.current.first_bot_at = at

    def slot(self, name: Any, value: Any) -> None:
        if name == TASK_OUTCOME_SLOT and (code := _code(value)) in TASK_OUTCOMES:
            self.outcomes.append(code)
            if code == "handoff":
                self.handoff_reason = self.pending_reason or "unknown"
        elif name == HANDOFF_REASON_SLOT and (code := _code(value)):
            self.pending_reason = code
            if self.handoff_reason is not None:
                self.handoff_reason = code
        elif name == RATING_SLOT and (number := as_number(value)) is not None and 1 <= number <= 5:
            self.rating = int(number)
        elif name == FALLBACK_SLOT and isinstance(value, Mapping):
            self._fallback(value)
        elif name == TOOL_CALLS_SLOT and isinstance(value, list):
            for call in value:
                if isinstance(call, Mapping) and isinstance(call.get("outcome"), str):
                    self.tool_calls += 1
                    if tool_failed(call["outcome"]):
                        self.tool_failures += 1
                        if self.current is not None:
                            self.current.error = True

    def _fallback(self, value: Mapping[str, Any]) -> None:
        stage = _code(value.get("stage")) or "unknown"
        if self.current is not None and not self.current.fallback:
            self.current.fallback = True
            self.stages[stage] = self.stages.get(stage, 0) + 1
        self.prompt_tokens += _int(value.get("prompt_tokens"))
        self.completion_tokens += _int(value.get("completion_tokens"))
        self.cost += _decimal(value.get("cost", 0))
        cached = value.get("cached") is True
        if cached or value.get("model") is True:
            self.answers += 1
            self.cache_hits += int(cached)

    def record(self) -> SessionRecord | None:
        if not self.turns or self.started_at is None or self.ended_at is None:
            return None
        first = self.turns[0]
        return SessionRecord(
            sender_id=self.sender_id,
            started_at=self.started_at,
            ended_at=self.ended_at,
            channel=self.channel,
            user_turns=len(self.turns),
            engaged=any(t.decision is not None and t.decision not in SMALL_TALK for t in self.turns),
            fallback_turns=sum(1 for t in self.turns if t.fallback),
            fallback_stages=dict(sorted(self.stages.items())),
            outcomes=tuple(self.outcomes),
            handoff_reason=self.handoff_reason,
            rating=self.rating,
            rating_asked=self.rating_asked or self.rating is not None,
            tool_calls=self.tool_calls,
            tool_failures=self.tool_failures,
            error_turns=sum(1 for t in self.turns if t.error),
            llm_prompt_tokens=self.prompt_tokens,
            llm_completion_tokens=self.completion_tokens,
            llm_cost=self.cost,
            llm_answers=self.answers,
            llm_cache_hits=self.cache_hits,
            turn_latencies_ms=tuple(t.latency_ms for t in self.turns if t.latency_ms is not None),
            first_response_ms=(
                max(round((first.first_bot_at - first.at) * 1000), 0) if first.first_bot_at is not None else None
            ),
        )


def sessions_of(sender_id: str, events: Iterable[Any]) -> list[SessionRecord]:
    """The sessions of one conversation's events, in the tracker's order (oldest first)."""
    sessions = [_Session(sender_id)]
    for event in events:
        if not isinstance(event, Mapping):
            continue
        kind = event.get("event")
        at = as_number(event.get("timestamp"))
        starts = kind == "session_started" or (kind == "action" and event.get("name") == "action_session_start")
        if starts and sessions[-1].turns:  # Rasa runs action_session_start, then logs session_started
            sessions.append(_Session(sender_id))
        session = sessions[-1]
        session.stamp(at)
        if kind == "user":
            session.user(event, at)
        elif kind == "action":
            session.action(event.get("name"), at)
        elif kind == "bot":
            session.bot(event, at)
        elif kind == "slot":
            session.slot(event.get("name"), event.get("value"))
    records = [r for s in sessions if (r := s.record()) is not None]
    return [
        replace(record, next_started_at=records[i + 1].started_at if i + 1 < len(records) else None)
        for i, record in enumerate(records)
    ]
