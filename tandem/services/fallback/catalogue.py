"""The one intent catalogue of the fallback chain, read by the chain, the action layer and the tests.

Per intent: the button title, the line the model's prompt shows for it (when the model may rescue
a turn to it), the deterministic flow a rescue continues (a form or action to run next and the
slots to set first, as plain data: the action layer turns them into Rasa events), or the response
a rescue answers with, and whether a clarification may offer it as a button. The response texts
themselves live in ``domain.yml``; ``tests/fallback/test_catalogue.py`` checks that every name
here exists there.

The closed set of rescuable intents has no ``affirm``/``deny``/``inform``/``choose_flight``/
``rate``/``stop``: those answer the bot's own questions (confirmations!) and must only ever come
from the user's words through Rasa's NLU. A rescue only names an intent whose flow (forms,
verification, explicit confirmation) then runs; the model never reaches a write tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "CATALOGUE",
    "HUMAN_INTENT",
    "OUT_OF_SCOPE",
    "OUT_OF_SCOPE_DESCRIPTION",
    "RESCUE_INTENTS",
    "SUGGESTIBLE",
    "Flow",
    "IntentEntry",
    "RescueIntent",
    "entry",
]

# Domain responses the chain names (the texts live in domain.yml).
RESPONSE_CLARIFY = "utter_clarify"
RESPONSE_OFFER_HUMAN = "utter_offer_human"
RESPONSE_OUT_OF_SCOPE = "utter_out_of_scope"
RESPONSE_REPHRASE = "utter_please_rephrase"
RESPONSE_EMPTY = "utter_empty_message"
RESPONSE_DEFAULT = "utter_default"
RESPONSE_DONT_KNOW = "utter_fallback_dont_know"
RESPONSE_DEGRADED = "utter_fallback_degraded"

# What the model names for anything outside the business (never rescued: refused).
OUT_OF_SCOPE = "out_of_scope"
OUT_OF_SCOPE_DESCRIPTION = "anything outside the airline's business"
HUMAN_INTENT = "request_human"


@dataclass(frozen=True, slots=True)
class Flow:
    """The deterministic flow a rescue continues: set ``slots``, then run ``followup``.

    ``interrupts_form``: whether it runs even inside an active form (only a request for a person
    does; otherwise the form keeps its slots and asks its pending question again).
    """

    followup: str
    slots: tuple[tuple[str, str], ...] = ()
    interrupts_form: bool = False


@dataclass(frozen=True, slots=True)
class IntentEntry:
    """One intent as the fallback chain knows it.

    ``description``: the prompt's line for it; None when the model may not rescue a turn to it.
    A rescuable intent has a ``flow`` or a ``response`` (what the rescue does).
    ``suggest``: offered as a button when the chain clarifies (flows a user starts).
    """

    name: str
    title: str
    description: str | None = None
    flow: Flow | None = None
    response: str | None = None
    suggest: bool = False

    @property
    def rescuable(self) -> bool:
        return self.description is not None


@dataclass(frozen=True, slots=True)
class RescueIntent:
    """An intent the model may rescue a turn to: its prompt description and its button title."""

    name: str
    description: str
    title: str


# In prompt order (the rescuable ones) and button order (the suggestible ones).
_ENTRIES: tuple[IntentEntry, ...] = (
    IntentEntry(
        "book_flight", "Book a flight", "wants to book a new flight", Flow("flight_booking_form"), suggest=True
    ),
    IntentEntry(
        "check_booking",
        "Check a booking",
        "wants the details or status of an existing booking",
        Flow("booking_lookup_form", slots=(("lookup_purpose", "check"),)),
        suggest=True,
    ),
    IntentEntry(
        "cancel_booking",
        "Cancel a booking",
        "wants to cancel an existing booking (verified and confirmed later)",
        Flow("booking_lookup_form", slots=(("lookup_purpose", "cancel"),)),
        suggest=True,
    ),
    IntentEntry(
        "flight_status",
        "Flight status",
        "asks whether a flight is on time, delayed, departed or landed",
        Flow("flight_status_form"),
        suggest=True,
    ),
    IntentEntry(
        "reset_password",
        "Reset my password",
        "cannot log in or forgot the account password",
        Flow("password_reset_form"),
        suggest=True,
    ),
    IntentEntry(
        HUMAN_INTENT,
        "Talk to an agent",
        "asks to talk to a person or an agent",
        Flow("action_handoff", interrupts_form=True),
    ),
    IntentEntry("faq", "A travel question", suggest=True),
    IntentEntry(
        "ask_capabilities",
        "What can you do?",
        "asks what the assistant can do",
        response="utter_capabilities",
        suggest=True,
    ),
    IntentEntry("bot_challenge", "Are you a bot?", "asks whether they are talking to a bot", response="utter_iamabot"),
    IntentEntry("greet", "Hello", "says hello", response="utter_greet"),
    IntentEntry("goodbye", "Goodbye", "ends the conversation", response="utter_goodbye"),
    IntentEntry("thank", "Thanks", "says thank you", response="utter_youre_welcome"),
)

CATALOGUE: Mapping[str, IntentEntry] = MappingProxyType({e.name: e for e in _ENTRIES})

# Derived views, kept for the chain's callers (tests and the injection harness import them).
RESCUE_INTENTS: tuple[RescueIntent, ...] = tuple(
    RescueIntent(e.name, e.description, e.title) for e in _ENTRIES if e.description is not None
)
SUGGESTIBLE: tuple[tuple[str, str], ...] = tuple((e.name, e.title) for e in _ENTRIES if e.suggest)


def entry(name: str) -> IntentEntry | None:
    """The catalogue's entry for intent ``name`` (None for an intent the chain does not know)."""
    return CATALOGUE.get(name)
