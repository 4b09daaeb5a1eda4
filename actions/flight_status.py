"""Flight status: scheduled, delayed, departed, landed or cancelled."""

from __future__ import annotations

from datetime import date
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem.errors import Invalid, NotFound
from tandem.normalize import parse_flight_number, parse_travel_date

from .booking import city_name, today_local
from .common import ToolFailed, call_tool, caller_of, first_value, local_time, long_date, outcome
from .context import settings, toolbox

# Customers ask about yesterday's flight too ("did AN204 land yesterday?").
STATUS_DAYS_BACK = 2
STATUS_DAYS_AHEAD = 30


class ValidateFlightStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_flight_status_form"

    def validate_flight_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            return {
                "flight_number": parse_flight_number(
                    str(first_value(value) or ""), prefix=settings().brand.flight_prefix
                )
            }
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_flight_number")
            return {"flight_number": None}


def _status_day(text: Any) -> date:
    today = today_local()
    if not text:
        return today
    try:
        return parse_travel_date(
            str(first_value(text)), today=today, window_days=STATUS_DAYS_AHEAD, days_back=STATUS_DAYS_BACK
        )
    except Invalid:
        return today


class ActionFlightStatus(Action):
    def name(self) -> str:
        return "action_flight_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset: list[EventType] = [SlotSet("flight_number", None), SlotSet("flight_date", None)]
        number = tracker.get_slot("flight_number")
        day = _status_day(tracker.get_slot("flight_date"))
        try:
            info = await call_tool(
                dispatcher, toolbox().flight_status(caller_of(tracker), flight_number=number, date=day)
            )
        except ToolFailed:
            return reset
        except (NotFound, Invalid):
            dispatcher.utter_message(response="utter_flight_not_found", flight_number=number, date=long_date(day))
            return [*reset, outcome("not_found")]
        dispatcher.utter_message(
            response=f"utter_flight_status_{info.status}",
            flight_number=info.flight_number,
            origin=city_name(info.origin),
            destination=city_name(info.destination),
            date=long_date(day),
            departure=local_time(info.estimated_departure_local or info.scheduled_departure_local),
            arrival=local_time(info.estimated_arrival_local or info.scheduled_arrival_local),
            scheduled_departure=local_time(info.scheduled_departure_local),
            delay_minutes=info.delay_minutes,
        )
        return [*reset, outcome("flight_status_answered")]
