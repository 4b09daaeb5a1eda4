"""The bot takes the conversation back after a handoff, and tells a customer an agent's refund decision.

The gateway resumes the paused conversation and triggers an external intent (Rasa's
``trigger_intent``) with entities: ``handoff_returned`` (``agent_name``, ``handoff_outcome``:
solved | unsolved | closed), ``handoff_expired`` and ``handoff_cancelled`` (handled by rules with
responses alone), ``refund_decided`` (``refund_decision``: approved | denied, ``booking_ref``,
``refund_amount``, ``currency``). Each reply ends with the widget's marker
``{"handoff": {"state": "ended"}}`` so that a reloaded history ends the "agent" state too.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

MAX_NAME_CHARS = 64
RESPONSES = {
    "solved": "utter_handoff_returned_solved",
    "unsolved": "utter_handoff_returned_unsolved",
    "closed": "utter_handoff_returned_closed",
}


def entity(tracker: Tracker, name: str) -> str | None:
    """The latest (external) message's entity ``name`` as a short printable string, or None."""
    for found in tracker.latest_message.get("entities") or []:
        value = found.get("value") if isinstance(found, dict) else None
        if found.get("entity") == name and isinstance(value, str | int | float) and not isinstance(value, bool):
            text = " ".join(str(value).split())[:MAX_NAME_CHARS]
            return text if text and text.isprintable() else None
    return None


class ActionHandoffReturned(Action):
    """An agent handed the conversation back: say who and how, then ask for a rating."""

    def name(self) -> str:
        return "action_handoff_returned"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        agent = entity(tracker, "agent_name") or "Our agent"
        outcome = entity(tracker, "handoff_outcome")
        outcome = outcome if outcome in RESPONSES else "solved"
        dispatcher.utter_message(response=RESPONSES[outcome], agent_name=agent)
        dispatcher.utter_message(json_message={"handoff": {"state": "ended"}})
        if outcome != "closed":
            dispatcher.utter_message(response="utter_ask_rating")
        return [SlotSet("handoff_outcome", outcome)]


class ActionRefundDecided(Action):
    """An agent decided a refund above the threshold: tell the customer in their conversation."""

    def name(self) -> str:
        return "action_refund_decided"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        decision = entity(tracker, "refund_decision")
        reference = entity(tracker, "booking_ref") or "your booking"
        variables: dict[str, Any] = {"booking_ref": reference}
        if decision == "approved":
            amount, currency = entity(tracker, "refund_amount"), entity(tracker, "currency")
            variables["refund"] = f"{amount} {currency}".strip() if amount else "the quoted refund"
            dispatcher.utter_message(response="utter_refund_approved", **variables)
        elif decision == "denied":
            dispatcher.utter_message(response="utter_refund_denied", **variables)
        return []
