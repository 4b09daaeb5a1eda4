"""Checking and cancelling a booking: the lookup form (reference + last name) and the refund."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem.errors import Conflict, Invalid, NotFound, RateLimited
from tandem.normalize import parse_booking_ref, parse_last_name

from .common import (
    ToolFailed,
    call_tool,
    caller_of,
    confirmed_after,
    first_value,
    local_datetime,
    money,
    outcome,
    plausible_name_turn,
)
from .context import settings, toolbox

MAX_LOOKUP_FAILURES = 3


def reset_lookup() -> list[EventType]:
    return [
        SlotSet("booking_ref", None),
        SlotSet("last_name", None),
        SlotSet("lookup_failures", 0.0),
        SlotSet("lookup_locked", False),
        SlotSet("cancellation_quote", None),
    ]


class ValidateBookingLookupForm(FormValidationAction):
    """Reference and last name; verified together, with a limit on failed attempts."""

    def name(self) -> str:
        return "validate_booking_lookup_form"

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        # After too many failed attempts the form ends; the submit action explains why.
        if tracker.get_slot("lookup_locked"):
            return []
        return domain_slots

    def validate_booking_ref(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            return {
                "booking_ref": parse_booking_ref(
                    str(first_value(value) or ""), flight_prefix=settings().brand.flight_prefix
                )
            }
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_booking_ref")
            return {"booking_ref": None}

    async def validate_last_name(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if not plausible_name_turn(tracker):
            dispatcher.utter_message(response="utter_invalid_last_name")
            return {"last_name": None}
        try:
            last_name = parse_last_name(str(value or ""))
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_last_name")
            return {"last_name": None}
        reference = tracker.get_slot("booking_ref")
        if not reference:
            return {"last_name": last_name}
        try:
            await call_tool(
                dispatcher, toolbox().get_booking(caller_of(tracker), reference=reference, last_name=last_name)
            )
        except ToolFailed:
            return {"last_name": None, "booking_ref": None}
        except RateLimited:
            # Too many failures for this reference, client or conversation, in any conversation
            # (counted in the database): the form ends and the submit action says why.
            return {"last_name": None, "booking_ref": None, "lookup_locked": True}
        except NotFound:
            failures = int(tracker.get_slot("lookup_failures") or 0) + 1
            if failures >= MAX_LOOKUP_FAILURES:
                return {
                    "last_name": None,
                    "booking_ref": None,
                    "lookup_failures": float(failures),
                    "lookup_locked": True,
                }
            dispatcher.utter_message(response="utter_booking_not_found")
            return {"last_name": None, "booking_ref": None, "lookup_failures": float(failures)}
        return {"last_name": last_name}


def _locked(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    if tracker.get_slot("lookup_locked"):
        _say_locked(dispatcher)
        return True
    return False


def _say_locked(dispatcher: CollectingDispatcher) -> None:
    """The same words whether the reference exists or not (the lock-out does not know either)."""
    dispatcher.utter_message(response="utter_lookup_locked")
    dispatcher.utter_message(response="utter_offer_human")


class ActionGetBooking(Action):
    """Shows a verified booking."""

    def name(self) -> str:
        return "action_get_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if _locked(dispatcher, tracker):
            return [*reset_lookup(), outcome("lookup_locked")]
        try:
            booking = await call_tool(
                dispatcher,
                toolbox().get_booking(
                    caller_of(tracker),
                    reference=tracker.get_slot("booking_ref"),
                    last_name=tracker.get_slot("last_name"),
                ),
            )
        except ToolFailed:
            return []
        except RateLimited:
            _say_locked(dispatcher)
            return [*reset_lookup(), outcome("lookup_locked")]
        except (NotFound, Invalid):
            dispatcher.utter_message(response="utter_booking_not_found")
            return [*reset_lookup(), outcome("not_found")]
        dispatcher.utter_message(
            response="utter_booking_details",
            reference=booking.reference,
            flight_number=booking.flight_number,
            origin=booking.origin,
            destination=booking.destination,
            departure=local_datetime(booking.departure_local),
            passengers=booking.passengers,
            cabin=booking.cabin.title(),
            status=booking.status.replace("_", " "),
        )
        # The verified reference and name stay, so "cancel it" can follow without asking again.
        return [outcome("booking_shown")]


class ActionQuoteCancellation(Action):
    """Computes the refund of a verified booking and asks for confirmation."""

    def name(self) -> str:
        return "action_quote_cancellation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        if _locked(dispatcher, tracker):
            return [*reset_lookup(), outcome("lookup_locked")]
        reference = tracker.get_slot("booking_ref")
        try:
            quote = await call_tool(
                dispatcher,
                toolbox().quote_cancellation(
                    caller_of(tracker), reference=reference, last_name=tracker.get_slot("last_name")
                ),
            )
        except ToolFailed:
            return []
        except Conflict as error:
            dispatcher.utter_message(
                response="utter_cancellation_not_allowed", reference=reference, reason=_conflict_reason(error)
            )
            return [*reset_lookup(), outcome("cancellation_refused")]
        except RateLimited:
            _say_locked(dispatcher)
            return [*reset_lookup(), outcome("lookup_locked")]
        except (NotFound, Invalid):
            dispatcher.utter_message(response="utter_booking_not_found")
            return [*reset_lookup(), outcome("not_found")]
        response = "utter_cancellation_quote_approval" if quote.needs_approval else "utter_cancellation_quote"
        dispatcher.utter_message(
            response=response,
            reference=reference,
            flight_number=quote.flight_number,
            departure=local_datetime(quote.departure_local),
            refund=money(quote.refund_amount, settings().business.currency),
        )
        return [SlotSet("cancellation_quote", {"reference": reference, "refund": str(quote.refund_amount)})]


def _conflict_reason(error: Conflict) -> str:
    reasons = {
        "already_cancelled": "it is already cancelled",
        "cancellation_pending": "its cancellation is already waiting for approval",
        "departed": "the flight has already departed",
    }
    return reasons.get(error.reason, "its current status does not allow it")


class ActionCancelBooking(Action):
    """Cancels after the user confirmed the quoted refund; large refunds go to an agent."""

    def name(self) -> str:
        return "action_cancel_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        quote = tracker.get_slot("cancellation_quote")
        reference = tracker.get_slot("booking_ref")
        confirmed = confirmed_after(tracker, "action_quote_cancellation")
        if not quote or not confirmed or quote.get("reference") != reference:
            dispatcher.utter_message(response="utter_cancellation_kept")
            return [*reset_lookup(), outcome("cancellation_kept")]
        try:
            result = await call_tool(
                dispatcher,
                toolbox().cancel_booking(
                    caller_of(tracker), reference=reference, last_name=tracker.get_slot("last_name")
                ),
            )
        except ToolFailed:
            return []
        except Conflict as error:
            dispatcher.utter_message(
                response="utter_cancellation_not_allowed", reference=reference, reason=_conflict_reason(error)
            )
            return [*reset_lookup(), outcome("cancellation_refused")]
        except RateLimited:
            _say_locked(dispatcher)
            return [*reset_lookup(), outcome("lookup_locked")]
        except (NotFound, Invalid):
            dispatcher.utter_message(response="utter_booking_not_found")
            return [*reset_lookup(), outcome("not_found")]
        refund = money(result.refund_amount, settings().business.currency)
        if result.status == "pending_approval":
            dispatcher.utter_message(
                response="utter_cancellation_pending_approval",
                reference=reference,
                refund=refund,
                ticket_id=result.ticket_id,
            )
            # The gateway records where this customer is answered when an agent decides.
            dispatcher.utter_message(json_message={"approval": {"state": "pending", "ticket_id": result.ticket_id}})
            return [*reset_lookup(), outcome("approval_requested")]
        dispatcher.utter_message(response="utter_cancellation_done", reference=reference, refund=refund)
        return [*reset_lookup(), outcome("booking_cancelled")]


class ActionKeepBooking(Action):
    """The user decided not to cancel."""

    def name(self) -> str:
        return "action_keep_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        dispatcher.utter_message(response="utter_cancellation_kept")
        return [SlotSet("cancellation_quote", None), outcome("cancellation_kept")]
