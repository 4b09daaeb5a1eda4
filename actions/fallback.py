"""The interim fallback: clarify with the two most likely intents, offer a human, never silence.

Used for ``nlu_fallback``, ``out_of_scope`` and Rasa's core fallback. Two fallbacks in a row
offer a person.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from .common import latest_intent

FALLBACK_ACTION = "action_fallback"
OFFER_HUMAN_AFTER = 2

# Button titles for the intents a clarification may suggest (only flows a user starts).
SUGGESTIBLE_INTENTS: dict[str, str] = {
    "book_flight": "Book a flight",
    "check_booking": "Check a booking",
    "cancel_booking": "Cancel a booking",
    "flight_status": "Flight status",
    "reset_password": "Reset my password",
    "faq": "A travel question",
    "request_human": "Talk to an agent",
    "ask_capabilities": "What can you do?",
}


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many user turns in a row, this one included, ended in the fallback."""
    first_action_after_user: list[str | None] = []
    for event in tracker.events:
        if event.get("event") == "user":
            first_action_after_user.append(None)
        elif event.get("event") == "action" and first_action_after_user and first_action_after_user[-1] is None:
            name = event.get("name")
            if name not in ("action_listen", "action_extract_slots") and not str(name).startswith("validate_"):
                first_action_after_user[-1] = name
    count = 0
    for index, action in enumerate(reversed(first_action_after_user)):
        if index == 0 and action is None:
            count += 1  # the current turn: this action is running now
        elif action == FALLBACK_ACTION:
            count += 1
        else:
            break
    return count


def suggestions(tracker: Tracker, limit: int = 2) -> list[dict[str, Any]]:
    ranking = tracker.latest_message.get("intent_ranking") or []
    buttons = []
    for entry in ranking:
        name = entry.get("name")
        if name in SUGGESTIBLE_INTENTS and name != "request_human":
            buttons.append({"title": SUGGESTIBLE_INTENTS[name], "payload": f"/{name}"})
        if len(buttons) == limit:
            break
    return buttons


class ActionFallback(Action):
    def name(self) -> str:
        return FALLBACK_ACTION

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        text = (tracker.latest_message.get("text") or "").strip()
        if not text:
            dispatcher.utter_message(response="utter_empty_message")
            return []
        if consecutive_fallbacks(tracker) >= OFFER_HUMAN_AFTER:
            dispatcher.utter_message(response="utter_offer_human")
            return []
        if latest_intent(tracker) == "out_of_scope":
            dispatcher.utter_message(response="utter_out_of_scope")
            return []
        buttons = suggestions(tracker)
        if buttons:
            buttons.append({"title": SUGGESTIBLE_INTENTS["request_human"], "payload": "/request_human"})
            dispatcher.utter_message(response="utter_clarify", buttons=buttons)
        else:
            dispatcher.utter_message(response="utter_please_rephrase")
        return []
