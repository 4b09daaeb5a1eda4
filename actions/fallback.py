"""The fallback chain's Rasa side: for ``nlu_fallback``, ``out_of_scope`` and Rasa's core fallback.

The decision is made by :class:`tandem.services.fallback.FallbackChain` (guard → in-form repair →
intent rescue → grounded answer → escalation). This action only turns the tracker into a request
and the decision into messages and events. A rescue continues the deterministic flow of the
rescued intent: forms still ask, verify and confirm; the model never triggers a write.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem import conversation
from tandem.analytics.outcomes import FALLBACK_SLOT, fallback_slot_value, outcome_of_decision
from tandem.conversation.history import history as conversation_history
from tandem.services.fallback import FallbackDecision, FallbackRequest, Flow, Turn
from tandem.services.fallback.catalogue import entry as intent_entry

from .common import client_key, outcome
from .context import decision_recorder, fallback_chain, settings

FALLBACK_ACTION = "action_fallback"
HISTORY_EVENTS = 30
# Slots and entities whose values identify a person or a booking: the chain masks them in
# everything it sends or logs (the model never needs them; see FallbackRequest.known_pii).
IDENTIFYING_SLOTS = ("last_name", "first_name", "email", "booking_ref", "phone")


def rescue_events(flow: Flow) -> list[EventType]:
    """A rescued intent's flow (from the catalogue) as Rasa events: its slots, then its form or
    action, the same flow its rules start."""
    return [*(SlotSet(name, value) for name, value in flow.slots), FollowupAction(flow.followup)]


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many user turns in a row, this one included, ended in the fallback."""
    return conversation.consecutive_fallbacks(tracker.events, FALLBACK_ACTION)


def history(tracker: Tracker) -> list[Turn]:
    """The turns before the current message (the chain masks PII and keeps a sliding window)."""
    return conversation_history(list(tracker.events), window=HISTORY_EVENTS)


def known_pii(tracker: Tracker) -> list[tuple[str, str]]:
    """The identifying values the conversation holds: its slots, and this turn's entities (the
    NLU may have extracted a surname that no slot holds yet)."""
    pairs: list[tuple[str, str]] = []
    for name in IDENTIFYING_SLOTS:
        value = tracker.get_slot(name)
        if isinstance(value, str) and value.strip():
            pairs.append((name, value.strip()))
    for entity in tracker.latest_message.get("entities") or []:
        name, value = entity.get("entity"), entity.get("value")
        if name in IDENTIFYING_SLOTS and isinstance(value, str) and value.strip():
            pairs.append((name, value.strip()))
    return list(dict.fromkeys(pairs))


def request_of(tracker: Tracker) -> FallbackRequest:
    ranking = tracker.latest_message.get("intent_ranking") or []
    return FallbackRequest(
        conversation_id=tracker.sender_id,
        text=tracker.latest_message.get("text") or "",
        history=history(tracker),
        active_form=tracker.active_loop.get("name"),
        requested_slot=tracker.get_slot("requested_slot"),
        intent_ranking=[(str(e.get("name")), float(e.get("confidence") or 0.0)) for e in ranking],
        consecutive_fallbacks=consecutive_fallbacks(tracker),
        low_confidence_turns=int(tracker.get_slot("low_confidence_turns") or 0),
        known_pii=known_pii(tracker),
        client_key=client_key(tracker),
    )


def analytics_events(decision: FallbackDecision) -> list[EventType]:
    """The decision for analytics: its codes and numbers, and the task outcome it stands for."""
    value = fallback_slot_value(
        kind=decision.kind,
        reason=decision.reason,
        mode=decision.mode,
        cached=decision.cached,
        prompt_tokens=decision.prompt_tokens,
        completion_tokens=decision.completion_tokens,
        model_seconds=decision.model_seconds,
        cost=decision.cost,
    )
    code = outcome_of_decision(decision.kind)
    return [SlotSet(FALLBACK_SLOT, value), *([outcome(code)] if code else [])]


def send(dispatcher: CollectingDispatcher, decision: FallbackDecision) -> None:
    for message in decision.messages:
        buttons: list[dict[str, Any]] = [{"title": b.title, "payload": b.payload} for b in message.buttons]
        dispatcher.utter_message(response=message.response, text=message.text, buttons=buttons or None)


async def run_chain(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Ask the fallback chain about the latest message; send its messages; continue a rescue."""
    request = request_of(tracker)
    decision = await fallback_chain().decide(request)
    await decision_recorder()(request, decision)  # durable, never fails the turn
    send(dispatcher, decision)
    low = request.low_confidence_turns + 1 if decision.low_confidence else 0
    events: list[EventType] = [SlotSet("low_confidence_turns", float(low)), *analytics_events(decision)]
    rescued = intent_entry(decision.intent) if decision.kind == "rescue" and decision.intent else None
    if rescued is not None:
        # Inside a form only a request for a person changes the flow; the form keeps its slots.
        if rescued.flow is not None and (not request.active_form or rescued.flow.interrupts_form):
            events += rescue_events(rescued.flow)
        elif rescued.response is not None:
            dispatcher.utter_message(response=rescued.response)
    return events


class ActionFallback(Action):
    """For ``nlu_fallback``, ``out_of_scope`` and Rasa's core fallback."""

    def name(self) -> str:
        return FALLBACK_ACTION

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        return await run_chain(dispatcher, tracker)


class ActionAnswerFaq(Action):
    """A FAQ question: the selected answer when the response selector is sure, else the chain.

    The intent classifier may be sure that a question is *a* FAQ ("can I bring my surfboard?")
    while the selector is unsure *which* one; answering with the closest topic (pets) would be
    wrong, so the chain answers from the knowledge base instead.
    """

    def name(self) -> str:
        return "action_answer_faq"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        selected = ((tracker.latest_message.get("response_selector") or {}).get("faq") or {}).get("response") or {}
        utter_action = selected.get("utter_action")
        if utter_action and float(selected.get("confidence") or 0.0) >= settings().fallback.faq_min_confidence:
            dispatcher.utter_message(response=utter_action)
            return [outcome("faq_answered")]
        return await run_chain(dispatcher, tracker)
