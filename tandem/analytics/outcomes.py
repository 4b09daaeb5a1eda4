"""What the actions record for analytics: slots that never influence the dialogue.

Rasa keeps every ``SlotSet`` in the tracker and publishes it on the event stream, so a value an
action sets here is seen by the KPI report (tracker store) and by the analytics consumer
(RabbitMQ) alike, without either reading NLU labels or the bot's wording. The slots are declared
in ``domain.yml`` with ``influence_conversation: false``:

- :data:`TASK_OUTCOME_SLOT` (text): one code of :data:`TASK_OUTCOMES` per thing the bot did for
  the customer, set by the action that did it;
- :data:`HANDOFF_REASON_SLOT` (text): why a ticket was opened (``user_request``,
  ``lookup_failed``, ``bot_could_not_help``);
- :data:`FALLBACK_SLOT` (any): the fallback chain's decision of the turn, as codes and numbers
  (:func:`fallback_slot_value`; never text);
- :data:`TOOL_CALLS_SLOT` (any): the tool calls of one action call, as ``{"tool", "outcome",
  "ms"}`` (added by the action server, :mod:`tandem.analytics.toolcalls`);
- ``rating`` (float): the customer's 1-5 rating (already a slot of the feedback form).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

TASK_OUTCOME_SLOT: Final = "task_outcome"
HANDOFF_REASON_SLOT: Final = "handoff_reason"
FALLBACK_SLOT: Final = "fallback_decision"
TOOL_CALLS_SLOT: Final = "tool_calls"
RATING_SLOT: Final = "rating"
ANALYTICS_SLOTS: Final = frozenset(
    {TASK_OUTCOME_SLOT, HANDOFF_REASON_SLOT, FALLBACK_SLOT, TOOL_CALLS_SLOT, RATING_SLOT}
)

# The response that asks for a rating (the rule after a goodbye, the hand-back of a ticket).
RATING_QUESTION: Final = "utter_ask_rating"

# Outcome codes → whether the customer got what they came for. A refusal, a clarification, a
# handoff, a declined or failed attempt is not a success.
TASK_OUTCOMES: Final[dict[str, bool]] = {
    "booking_created": True,  # a booking held for payment
    "booking_shown": True,  # a verified booking's details
    "booking_cancelled": True,  # cancelled and refunded
    "approval_requested": True,  # a cancellation sent to a person for approval
    "flight_status_answered": True,
    "reset_sent": True,  # a password-reset link requested
    "faq_answered": True,  # the response selector's answer
    "knowledge_answered": True,  # a grounded answer from the knowledge base (the fallback chain)
    "flights_listed": False,  # options shown: a step, not yet the task
    "no_flights": False,
    "booking_declined": False,  # the customer did not confirm the summary
    "cancellation_kept": False,  # the customer kept the booking after the quote
    "cancellation_refused": False,  # the booking cannot be cancelled (departed, already cancelled)
    "not_found": False,  # no booking / flight matched what the customer gave
    "lookup_locked": False,  # too many failed lookups
    "sold_out": False,
    "clarified": False,  # the chain asked which topic was meant
    "refused": False,  # out of scope, or the guard refused
    "degraded": False,  # the model was unavailable: retrieval-only or a note
    "handoff": False,  # a ticket was opened (or found open)
    "handoff_limited": False,  # a ticket was refused by the per-client limit
}

# The chain's decision kinds that stand for an outcome; a rescue continues a flow that records its
# own, an in-form answer is a step, an offer of a human is followed by the handoff's own.
_DECISION_OUTCOMES = {
    "answer": "knowledge_answered",
    "clarify": "clarified",
    "refuse": "refused",
    "degraded": "degraded",
}


def is_success(outcome: str) -> bool:
    """Whether ``outcome`` (a code of :data:`TASK_OUTCOMES`) means the task was done."""
    return TASK_OUTCOMES.get(outcome, False)


def outcome_of_decision(kind: str) -> str | None:
    """The task outcome a fallback decision stands for, or None (rescue, form_answer, handoff)."""
    return _DECISION_OUTCOMES.get(kind)


def fallback_slot_value(
    *,
    kind: str,
    reason: str,
    mode: str,
    cached: bool,
    prompt_tokens: int,
    completion_tokens: int,
    model_seconds: float,
    cost: Decimal,
) -> dict[str, Any]:
    """The :data:`FALLBACK_SLOT` value of one decision: codes and numbers only (JSON-safe).

    ``model`` says whether the model was asked (tokens were spent); ``cached`` whether the answer
    came from the answer cache instead. ``cost`` is a decimal string (money is never a float).
    """
    return {
        "stage": kind,
        "reason": reason[:64],
        "mode": mode,
        "cached": bool(cached),
        "model": prompt_tokens > 0 or completion_tokens > 0,
        "prompt_tokens": int(prompt_tokens),
        "completion_tokens": int(completion_tokens),
        "model_ms": round(model_seconds * 1000),
        "cost": str(cost),
    }
