"""Handing the conversation to a person: a ticket with the transcript, slots and reason."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem import conversation
from tandem.errors import RateLimited

from .common import ToolFailed, call_tool, caller_of, latest_intent
from .context import toolbox

TRANSCRIPT_TURNS = conversation.TRANSCRIPT_TURNS


def transcript(tracker: Tracker) -> list[dict[str, Any]]:
    """The last turns as ``{"role", "text", "at"}``: what an agent reads first."""
    return conversation.transcript(tracker.events, limit=TRANSCRIPT_TURNS)


def handoff_reason(tracker: Tracker) -> str:
    if latest_intent(tracker) == "request_human":
        return "user_request"
    if tracker.get_slot("lookup_locked"):
        return "lookup_failed"
    return "bot_could_not_help"


def summary_of(tracker: Tracker, reason: str) -> str:
    return conversation.handoff_summary(tracker.events, reason=reason, active_form=tracker.active_loop.get("name"))


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reason = handoff_reason(tracker)
        slots = {k: v for k, v in tracker.current_slot_values().items() if v is not None and k != "flight_options"}
        events: list[EventType] = [SlotSet("requested_slot", None)]
        if tracker.active_loop.get("name"):
            events.insert(0, ActiveLoop(None))
        try:
            ticket = await call_tool(
                dispatcher,
                toolbox().create_handoff(
                    caller_of(tracker),
                    reason=reason,
                    transcript=transcript(tracker),
                    slots=slots,
                    summary=summary_of(tracker, reason),
                ),
            )
        except ToolFailed:
            return events
        except RateLimited:
            # Too many new tickets from this client or conversation within the hour.
            dispatcher.utter_message(response="utter_handoff_limited")
            return events
        # Asking again finds the conversation's open ticket: the customer hears the same number.
        response = "utter_handoff_created" if ticket.created else "utter_handoff_existing"
        dispatcher.utter_message(response=response, ticket_id=ticket.ticket_id)
        return events
