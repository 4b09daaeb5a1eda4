"""Rating the conversation (CSAT)."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem.errors import Invalid
from tandem.normalize import parse_rating

from .common import ToolFailed, call_tool, caller_of, first_value
from .context import toolbox


class ActionRecordRating(Action):
    def name(self) -> str:
        return "action_record_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        value = first_value(tracker.get_slot("rating")) or tracker.latest_message.get("text") or ""
        try:
            rating = parse_rating(value)
        except Invalid:
            dispatcher.utter_message(response="utter_rating_invalid")
            return [SlotSet("rating", None)]
        try:
            await call_tool(dispatcher, toolbox().record_rating(caller_of(tracker), rating=rating))
        except ToolFailed:
            return [SlotSet("rating", None)]
        dispatcher.utter_message(response="utter_rating_thanks")
        return [SlotSet("rating", float(rating))]
