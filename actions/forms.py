"""Leaving a form: after the user confirmed `stop`, the form ends and its slots are cleared."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from .booking import reset_booking
from .lookup import reset_lookup

FORM_SLOTS: dict[str, list[str]] = {
    "password_reset_form": ["email"],
    "flight_status_form": ["flight_number", "flight_date"],
}


class ActionStopForm(Action):
    def name(self) -> str:
        return "action_stop_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form = tracker.active_loop.get("name")
        events: list[EventType] = [ActiveLoop(None), SlotSet("requested_slot", None)]
        if form in ("flight_booking_form", "booking_contact_form"):
            events += reset_booking()
        elif form == "booking_lookup_form":
            events += reset_lookup()
        else:
            events += [SlotSet(slot, None) for slot in FORM_SLOTS.get(str(form), [])]
        dispatcher.utter_message(response="utter_stopped")
        return events
