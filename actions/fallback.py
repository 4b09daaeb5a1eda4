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

from tandem.services.fallback import FallbackDecision, FallbackRequest, Turn

from .common import client_key, is_bot_decision
from .context import fallback_chain, settings

FALLBACK_ACTION = "action_fallback"
HISTORY_EVENTS = 30
# Slots and entities whose values identify a person or a booking: the chain masks them in
# everything it sends or logs (the model never needs them; see FallbackRequest.known_pii).
IDENTIFYING_SLOTS = ("last_name", "first_name", "email", "booking_ref", "phone")

# What a rescued intent continues with: the same flow its rules start.
RESCUE_FLOWS: dict[str, list[EventType]] = {
    "book_flight": [FollowupAction("flight_booking_form")],
    "check_booking": [SlotSet("lookup_purpose", "check"), FollowupAction("booking_lookup_form")],
    "cancel_booking": [SlotSet("lookup_purpose", "cancel"), FollowupAction("booking_lookup_form")],
    "flight_status": [FollowupAction("flight_status_form")],
    "reset_password": [FollowupAction("password_reset_form")],
    "request_human": [FollowupAction("action_handoff")],
}
RESCUE_RESPONSES: dict[str, str] = {
    "ask_capabilities": "utter_capabilities",
    "bot_challenge": "utter_iamabot",
    "greet": "utter_greet",
    "goodbye": "utter_goodbye",
    "thank": "utter_youre_welcome",
}


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many user turns in a row, this one included, ended in the fallback."""
    first_action_after_user: list[str | None] = []
    for event in tracker.events:
        if event.get("event") == "user":
            first_action_after_user.append(None)
        elif (
            event.get("event") == "action"
            and first_action_after_user
            and first_action_after_user[-1] is None
            and is_bot_decision(event.get("name"))
        ):
            first_action_after_user[-1] = event.get("name")
    count = 0
    for index, action in enumerate(reversed(first_action_after_user)):
        if index == 0 and action is None:
            count += 1  # the current turn: this action is running now
        elif action == FALLBACK_ACTION:
            count += 1
        else:
            break
    return count


def history(tracker: Tracker) -> list[Turn]:
    """The turns before the current message (the chain masks PII and keeps a sliding window)."""
    turns: list[Turn] = []
    events = list(tracker.events)[-HISTORY_EVENTS:]
    # The current user message is the request's text, not history.
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=len(events))
    for event in events[:last_user]:
        if event.get("event") == "user" and event.get("text"):
            turns.append(Turn("user", str(event["text"])))
        elif event.get("event") == "bot" and event.get("text"):
            turns.append(Turn("assistant", str(event["text"])))
    return turns


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


def send(dispatcher: CollectingDispatcher, decision: FallbackDecision) -> None:
    for message in decision.messages:
        buttons: list[dict[str, Any]] = [{"title": b.title, "payload": b.payload} for b in message.buttons]
        dispatcher.utter_message(response=message.response, text=message.text, buttons=buttons or None)


async def run_chain(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
    """Ask the fallback chain about the latest message; send its messages; continue a rescue."""
    request = request_of(tracker)
    decision = await fallback_chain().decide(request)
    send(dispatcher, decision)
    low = request.low_confidence_turns + 1 if decision.low_confidence else 0
    events: list[EventType] = [SlotSet("low_confidence_turns", float(low))]
    if decision.kind == "rescue" and decision.intent:
        # Inside a form only a request for a person changes the flow; the form keeps its slots.
        if decision.intent in RESCUE_FLOWS and (not request.active_form or decision.intent == "request_human"):
            events += RESCUE_FLOWS[decision.intent]
        elif decision.intent in RESCUE_RESPONSES:
            dispatcher.utter_message(response=RESCUE_RESPONSES[decision.intent])
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
        if utter_action and float(selected.get("confidence") or 0.0) >= settings().faq_min_confidence:
            dispatcher.utter_message(response=utter_action)
            return []
        return await run_chain(dispatcher, tracker)
