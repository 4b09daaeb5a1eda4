"""What every capability's actions share: the caller, formatting and error responses."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from tandem import conversation
from tandem.analytics.outcomes import TASK_OUTCOME_SLOT, TASK_OUTCOMES
from tandem.conversation.metadata import clean_metadata
from tandem.errors import Forbidden, Unavailable
from tandem.tools import Caller

from .context import airline_zone

logger = logging.getLogger(__name__)

T = TypeVar("T")


def outcome(code: str) -> SlotSet:
    """The ``task_outcome`` event of what this action did for the customer (tandem/analytics/outcomes.py)."""
    if code not in TASK_OUTCOMES:
        raise ValueError(f"unknown task outcome {code!r}")
    return SlotSet(TASK_OUTCOME_SLOT, code)


class ToolFailed(Exception):
    """A tool call failed and the user has already been told so."""


def message_metadata(tracker: Tracker) -> dict[str, str]:
    """The gateway's metadata of the latest message (:mod:`tandem.conversation.metadata`)."""
    return clean_metadata(tracker.latest_message.get("metadata"))


def client_key(tracker: Tracker) -> str | None:
    """The opaque key of the client (browser, chat account) behind the latest message, if known."""
    return message_metadata(tracker).get("client")


def caller_of(tracker: Tracker) -> Caller:
    """Who is calling the tools: the conversation's customer, the client key when the gateway
    sent one (limits per client: open holds, lookup failures, handoff tickets), the channel of the
    latest message (the gateway's metadata, else Rasa's input channel: ``rasa shell`` is
    ``shell``) and the turn's correlation id (audit rows, tickets and log lines carry them)."""
    metadata = message_metadata(tracker)
    return Caller(
        conversation_id=tracker.sender_id,
        role="customer",
        client=metadata.get("client"),
        channel=conversation.channel_name(metadata, tracker.get_latest_input_channel()),
        correlation_id=metadata.get("correlation_id"),
    )


async def call_tool(dispatcher: CollectingDispatcher, call: Awaitable[T]) -> T:
    """Await a tool call; an unavailable dependency becomes a polite response.

    Errors the caller can act on (``NotFound``, ``Invalid``, ``Conflict``, ``RateLimited``)
    propagate so the action can choose the response; infrastructure failures do not reach
    the user as text.
    """
    try:
        return await call
    except (Unavailable, Forbidden) as error:
        logger.warning("tool call failed: %s", type(error).__name__)
        dispatcher.utter_message(response="utter_service_unavailable")
        raise ToolFailed from error


def money(amount: Decimal, currency: str) -> str:
    """``THB 2,450.00`` (amounts are Decimal, never float)."""
    return f"{currency} {amount:,.2f}"


def local_time(moment: datetime) -> str:
    """A time of day in the airline's time zone: ``08:30``."""
    return moment.astimezone(airline_zone()).strftime("%H:%M")


def local_datetime(moment: datetime) -> str:
    """``Mon 25 Jan 2027, 08:30`` in the airline's time zone."""
    return moment.astimezone(airline_zone()).strftime("%a %d %b %Y, %H:%M")


def long_date(day: date) -> str:
    """``Monday 25 January 2027``."""
    return day.strftime("%A %d %B %Y").replace(" 0", " ")


def first_value(value: Any) -> Any:
    """A slot filled from several entities holds a list; the first one counts."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def previous_bot_action(tracker: Tracker) -> str | None:
    """The last action the bot ran before the latest user message (bookkeeping skipped)."""
    return conversation.previous_bot_action(tracker.events)


def confirmed_after(tracker: Tracker, question_action: str) -> bool:
    """Whether the latest message is a "yes" to the question that ``question_action`` asked
    right before it: the only way a write tool (booking, cancellation) may run."""
    return latest_intent(tracker) == "affirm" and previous_bot_action(tracker) == question_action


MAX_NAME_WORDS_OUT_OF_SCOPE = 3


def plausible_name_turn(tracker: Tracker) -> bool:
    """Whether the latest message can be a last name: a short answer, even if the NLU called it
    out of scope (unknown surnames often are), but not an out-of-scope sentence."""
    text = tracker.latest_message.get("text") or ""
    return latest_intent(tracker) != "out_of_scope" or len(text.split()) <= MAX_NAME_WORDS_OUT_OF_SCOPE
