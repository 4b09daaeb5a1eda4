"""Handing the conversation to a person: a ticket with the transcript, slots and reason.

The ticket opened (or found open), the conversation is paused (``ConversationPaused``): from here
the gateway sends the customer's messages to the ticket, not to Rasa, and Rasa's pause is the
backstop. The reply carries the widget's marker ``{"handoff": {"state": "pending", "ticket_id"}}``,
which also tells the gateway to open the handoff on the help desk. The hand-back arrives as an
external intent (``handoff_returned``, ``handoff_expired``, ``handoff_cancelled``) after the
gateway resumed the conversation: :mod:`actions.handoff_back`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from tandem import conversation
from tandem.analytics.outcomes import HANDOFF_REASON_SLOT
from tandem.errors import RateLimited
from tandem.services.fallback.summary import SUMMARY_TURNS

from .common import ToolFailed, call_tool, caller_of, client_key, latest_intent, outcome
from .context import handoff_summarizer, toolbox
from .fallback import known_pii

logger = logging.getLogger(__name__)

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


async def llm_summary_of(tracker: Tracker) -> str | None:
    """The model's short summary of the masked transcript; None without an LLM or when it fails.

    Never raises: the ticket always has the deterministic summary. The chain (and its summariser)
    is built off the event loop when this is the process's first use of it.
    """
    try:
        summarizer = await asyncio.to_thread(handoff_summarizer)
        if summarizer is None:
            return None
        return await summarizer.summarize(
            conversation.transcript(tracker.events, limit=SUMMARY_TURNS),
            conversation_id=tracker.sender_id,
            client=client_key(tracker),
            known=known_pii(tracker),
        )
    except Exception as error:  # a summary is never worth failing the handoff
        logger.warning("handoff summary failed: %s", type(error).__name__)
        return None


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
                    llm_summary=await llm_summary_of(tracker),
                ),
            )
        except ToolFailed:
            return events
        except RateLimited:
            # Too many new tickets from this client or conversation within the hour.
            dispatcher.utter_message(response="utter_handoff_limited")
            return [*events, outcome("handoff_limited")]
        # Asking again finds the conversation's open ticket: the customer hears the same number.
        response = "utter_handoff_created" if ticket.created else "utter_handoff_existing"
        dispatcher.utter_message(response=response, ticket_id=ticket.ticket_id)
        dispatcher.utter_message(json_message={"handoff": {"state": "pending", "ticket_id": ticket.ticket_id}})
        return [*events, SlotSet(HANDOFF_REASON_SLOT, reason), outcome("handoff"), ConversationPaused()]
