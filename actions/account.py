"""Account help: password reset with a neutral reply whatever the e-mail."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem.errors import Invalid, RateLimited
from tandem.normalize import parse_email

from .common import ToolFailed, call_tool, caller_of, first_value, outcome
from .context import settings, toolbox


class ValidatePasswordResetForm(FormValidationAction):
    def name(self) -> str:
        return "validate_password_reset_form"

    def validate_email(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        try:
            return {"email": parse_email(str(first_value(value) or ""))}
        except Invalid:
            dispatcher.utter_message(response="utter_invalid_email")
            return {"email": None}


class ActionRequestPasswordReset(Action):
    """Asks for a reset link. The reply never tells whether the address has an account."""

    def name(self) -> str:
        return "action_request_password_reset"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset: list[EventType] = [SlotSet("email", None)]
        try:
            await call_tool(
                dispatcher, toolbox().request_password_reset(caller_of(tracker), email=tracker.get_slot("email"))
            )
        except ToolFailed:
            return reset
        except RateLimited:
            dispatcher.utter_message(response="utter_password_reset_rate_limited")
            return reset
        except Invalid:
            # Same words as success: an invalid address must not be distinguishable either.
            pass
        dispatcher.utter_message(
            response="utter_password_reset_sent", minutes=settings().business.password_reset_ttl_minutes
        )
        return [*reset, outcome("reset_sent")]
