"""Booking a flight: the flight form, the search, the choice, the contact form and the hold."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem.airports import HUBS, airport_by_code
from tandem.errors import Conflict, Invalid
from tandem.normalize import (
    parse_cabin,
    parse_city,
    parse_email,
    parse_flight_number,
    parse_last_name,
    parse_option,
    parse_passengers,
    parse_route,
    parse_travel_date,
)

from .common import (
    ToolFailed,
    call_tool,
    caller_of,
    confirmed_after,
    first_value,
    latest_intent,
    local_datetime,
    local_time,
    long_date,
    money,
    outcome,
    plausible_name_turn,
)
from .context import airline_zone, settings, toolbox

BOOKING_SLOTS = (
    "origin",
    "destination",
    "departure_date",
    "passengers",
    "cabin",
    "flight_options",
    "flight_id",
    "flight_selected",
    "last_name",
    "email",
)


def reset_booking() -> list[EventType]:
    return [SlotSet(slot, None) for slot in BOOKING_SLOTS]


def city_name(code: str | None) -> str:
    airport = airport_by_code(code or "")
    return airport.city if airport else str(code)


def today_local() -> date:
    return datetime.now(airline_zone()).date()


class ValidateFlightBookingForm(FormValidationAction):
    """Normalises the flight form's slots: airport codes, an ISO date, 1-9 passengers, a cabin."""

    def name(self) -> str:
        return "validate_flight_booking_form"

    # Explicit cues ("from A to B", "A to B") beat the roles the entity model guessed for two cities.
    async def extract_origin(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._route_slot(tracker, 0, "origin")

    async def extract_destination(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._route_slot(tracker, 1, "destination")

    @staticmethod
    def _route_slot(tracker: Tracker, index: int, slot: str) -> dict[str, Any]:
        if latest_intent(tracker) not in ("book_flight", "inform"):
            return {}
        code = parse_route(tracker.latest_message.get("text") or "")[index]
        if code is None or code == tracker.get_slot(slot):
            return {}
        return {slot: code}

    def validate_origin(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._validate_city("origin", "destination", value, dispatcher, tracker)

    def validate_destination(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        return self._validate_city("destination", "origin", value, dispatcher, tracker)

    @staticmethod
    def _validate_city(
        slot: str, other: str, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
    ) -> dict[str, Any]:
        text = str(first_value(value) or "")
        try:
            code = parse_city(text)
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_city", city=text[:60])
            return {slot: None}
        other_code = tracker.get_slot(other)
        if other_code and other_code == code:
            dispatcher.utter_message(response="utter_same_origin_destination")
            return {slot: None}
        if other_code and (code in HUBS) == (other_code in HUBS):
            origin, destination = (code, other_code) if slot == "origin" else (other_code, code)
            dispatcher.utter_message(
                response="utter_no_route", origin=city_name(origin), destination=city_name(destination)
            )
            return {slot: None}
        return {slot: code}

    def validate_departure_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        window = settings().business.schedule_days - 1
        today = today_local()
        try:
            day = parse_travel_date(str(first_value(value) or ""), today=today, window_days=window)
        except Invalid as error:
            if error.reason == "past":
                dispatcher.utter_message(response="utter_invalid_date_past")
            elif error.reason == "beyond_window":
                last = today.fromordinal(today.toordinal() + window)
                dispatcher.utter_message(response="utter_invalid_date_window", last_date=long_date(last))
            else:
                dispatcher.utter_message(response="utter_invalid_date")
            return {"departure_date": None}
        return {"departure_date": day.isoformat()}

    def validate_passengers(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            count = parse_passengers(first_value(value) or "", max_passengers=settings().business.max_passengers)
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_passengers")
            return {"passengers": None}
        return {"passengers": float(count)}

    def validate_cabin(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            return {"cabin": parse_cabin(str(first_value(value) or ""))}
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_cabin")
            return {"cabin": None}


def _option_buttons(options: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [
        {
            "title": f"{o['flight_number']} · {o['departure_time']}–{o['arrival_time']} · {o['total']}",
            "payload": "/choose_flight" + json.dumps({"flight_id": str(o["flight_id"])}),
        }
        for o in options
    ]


class ActionSearchFlights(Action):
    """Searches flights for the filled form and offers up to N of them as buttons."""

    def name(self) -> str:
        return "action_search_flights"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        origin, destination = tracker.get_slot("origin"), tracker.get_slot("destination")
        cabin = tracker.get_slot("cabin")
        passengers = int(tracker.get_slot("passengers") or 1)
        day = date.fromisoformat(tracker.get_slot("departure_date"))
        names = {
            "origin": city_name(origin),
            "destination": city_name(destination),
            "date": long_date(day),
            "passengers": passengers,
            "cabin": str(cabin).title(),
        }
        try:
            result = await call_tool(
                dispatcher,
                toolbox().search_flights(
                    caller_of(tracker),
                    origin=origin,
                    destination=destination,
                    date=day,
                    passengers=passengers,
                    cabin=cabin,
                    limit=settings().business.search_max_options,
                ),
            )
        except ToolFailed:
            return []
        except Invalid:
            dispatcher.utter_message(response="utter_no_route", **names)
            return [SlotSet("destination", None), SlotSet("flight_options", None), outcome("no_flights")]
        if not result.options:
            if result.nearest_dates:
                buttons = [
                    {"title": long_date(d), "payload": "/book_flight" + json.dumps({"date": d.isoformat()})}
                    for d in result.nearest_dates[:3]
                ]
                dispatcher.utter_message(
                    response="utter_no_flights_nearest",
                    buttons=buttons,
                    dates=", ".join(long_date(d) for d in result.nearest_dates[:3]),
                    **names,
                )
            else:
                dispatcher.utter_message(response="utter_no_flights", **names)
            return [SlotSet("departure_date", None), SlotSet("flight_options", None), outcome("no_flights")]
        currency = settings().business.currency
        options = [
            {
                "flight_id": option.flight_id,
                "flight_number": option.flight_number,
                "departure": local_datetime(option.departure_local),
                "departure_time": local_time(option.departure_local),
                "arrival_time": local_time(option.arrival_local),
                "total": money(option.total_price, currency),
                "total_amount": str(option.total_price),
            }
            for option in result.options
        ]
        dispatcher.utter_message(response="utter_flight_options", buttons=_option_buttons(options), **names)
        return [SlotSet("flight_options", options), SlotSet("flight_selected", None), outcome("flights_listed")]


class ActionChooseFlight(Action):
    """Takes the user's pick among the offered flights (button, ordinal or flight number)."""

    def name(self) -> str:
        return "action_choose_flight"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        options: list[dict[str, Any]] = tracker.get_slot("flight_options") or []
        chosen = self._pick(tracker, options)
        if chosen is None:
            dispatcher.utter_message(response="utter_flight_choice_invalid", buttons=_option_buttons(options))
            return [SlotSet("flight_selected", False)]
        return [
            SlotSet("flight_id", str(chosen["flight_id"])),
            SlotSet("flight_selected", True),
            SlotSet("last_name", None),
            SlotSet("email", None),
        ]

    @staticmethod
    def _pick(tracker: Tracker, options: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not options:
            return None
        # A button sends the flight id; only ids we offered are accepted (payloads can be forged).
        flight_id = next(tracker.get_latest_entity_values("flight_id"), None) or tracker.get_slot("flight_id")
        for option in options:
            if flight_id is not None and str(option["flight_id"]) == str(flight_id):
                return option
        number = next(tracker.get_latest_entity_values("flight_number"), None)
        if number:
            try:
                wanted = parse_flight_number(str(number), prefix=settings().brand.flight_prefix)
            except Invalid:
                wanted = ""
            for option in options:
                if option["flight_number"] == wanted:
                    return option
        text = " ".join(
            [str(v) for v in tracker.get_latest_entity_values("option")] + [tracker.latest_message.get("text") or ""]
        ).lower()
        if "cheap" in text:
            return min(options, key=lambda o: Decimal(o["total_amount"]))
        if "earl" in text or "morning" in text:
            return min(options, key=lambda o: o["departure_time"])
        if "late" in text or "evening" in text or "night" in text:
            return max(options, key=lambda o: o["departure_time"])
        try:
            return options[parse_option(text, count=len(options))]
        except Invalid:
            return None


class ValidateBookingContactForm(FormValidationAction):
    """The lead passenger's last name and a contact e-mail for the booking."""

    def name(self) -> str:
        return "validate_booking_contact_form"

    def validate_last_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not plausible_name_turn(tracker):
            dispatcher.utter_message(response="utter_invalid_last_name")
            return {"last_name": None}
        try:
            return {"last_name": parse_last_name(str(value or ""))}
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_last_name")
            return {"last_name": None}

    def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            return {"email": parse_email(str(first_value(value) or ""))}
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_email")
            return {"email": None}


def _chosen_option(tracker: Tracker) -> dict[str, Any] | None:
    flight_id = tracker.get_slot("flight_id")
    for option in tracker.get_slot("flight_options") or []:
        if str(option["flight_id"]) == str(flight_id):
            return dict(option)
    return None


class ActionBookingSummary(Action):
    """Summarises the booking and asks for an explicit confirmation."""

    def name(self) -> str:
        return "action_booking_summary"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        option = _chosen_option(tracker)
        if option is None:
            dispatcher.utter_message(response="utter_booking_incomplete")
            return reset_booking()
        dispatcher.utter_message(
            response="utter_booking_summary",
            flight_number=option["flight_number"],
            origin=city_name(tracker.get_slot("origin")),
            destination=city_name(tracker.get_slot("destination")),
            departure=option["departure"],
            passengers=int(tracker.get_slot("passengers") or 1),
            cabin=str(tracker.get_slot("cabin")).title(),
            last_name=tracker.get_slot("last_name"),
            email=tracker.get_slot("email"),
            total=option["total"],
        )
        return []


class ActionCreateBooking(Action):
    """Holds the seats. Runs only right after the summary was confirmed by the user."""

    def name(self) -> str:
        return "action_create_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        option = _chosen_option(tracker)
        if option is None or not confirmed_after(tracker, "action_booking_summary"):
            dispatcher.utter_message(response="utter_booking_incomplete")
            return reset_booking()
        try:
            created = await call_tool(
                dispatcher,
                toolbox().create_booking(
                    caller_of(tracker),
                    flight_id=int(option["flight_id"]),
                    passengers=int(tracker.get_slot("passengers") or 1),
                    cabin=tracker.get_slot("cabin"),
                    last_name=tracker.get_slot("last_name"),
                    email=tracker.get_slot("email"),
                ),
            )
        except ToolFailed:
            return []
        except Conflict as error:
            # The offered options stay: the user may pick another flight or stop.
            if error.reason == "too_many_holds":
                dispatcher.utter_message(
                    response="utter_booking_hold_limit", hold_minutes=settings().business.hold_minutes
                )
            elif error.reason == "hold_share":
                dispatcher.utter_message(response="utter_booking_hold_share")
            else:
                dispatcher.utter_message(response="utter_booking_sold_out")
            return [SlotSet("flight_id", None), SlotSet("flight_selected", None), outcome("sold_out")]
        dispatcher.utter_message(
            response="utter_booking_created",
            reference=created.reference,
            total=money(created.total_amount, created.currency),
            hold_minutes=settings().business.hold_minutes,
            payment_link=created.payment_link,
        )
        return [*reset_booking(), outcome("booking_created")]


class ActionDeclineBooking(Action):
    """The user said no at the summary: nothing is booked."""

    def name(self) -> str:
        return "action_decline_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_booking_not_confirmed")
        return [*reset_booking(), outcome("booking_declined")]
