"""A rescue through the action layer continues the flow the catalogue names, as Rasa events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.context import use_fallback_chain, use_toolbox
from actions.fallback import run_chain
from tandem.ratelimit import InMemoryRateLimiter
from tandem.services.fallback import FallbackChain, FallbackDecision, FallbackRequest
from tandem.tools import Toolbox


class _Rescuer:
    """A chain that rescues every turn to one intent (what a confident model would decide)."""

    def __init__(self) -> None:
        self.intent = "book_flight"

    async def decide(self, request: FallbackRequest) -> FallbackDecision:
        return FallbackDecision(kind="rescue", reason="llm_rescue", mode="llm", intent=self.intent, confidence=0.9)


@pytest.fixture
def rescuer(db: Any) -> Iterator[_Rescuer]:
    use_toolbox(Toolbox(sessions=db.sessions, settings=db.settings, limiter=InMemoryRateLimiter()))
    chain = _Rescuer()
    use_fallback_chain(cast(FallbackChain, chain))
    yield chain
    use_fallback_chain(None)
    use_toolbox(None)


def _tracker(active_form: str | None = None) -> Tracker:
    latest = {"text": "hm", "intent": {"name": "nlu_fallback", "confidence": 0.3}, "entities": []}
    slots = {"requested_slot": "origin"} if active_form else {}
    loop = {"name": active_form} if active_form else {}
    events = [{"event": "user", "text": "hm", "parse_data": latest}]
    return Tracker("conv-rescue", slots, latest, events, False, None, loop, "action_listen")


RESET = SlotSet("low_confidence_turns", 0.0)


def _flow_events(events: list[EventType]) -> list[EventType]:
    """The events that steer the dialogue: all but the analytics record of the decision, which
    must be there and say that the chain rescued the turn."""
    records = [e for e in events if e.get("name") == "fallback_decision"]
    assert len(records) == 1 and records[0]["value"]["stage"] == "rescue", events
    return [e for e in events if e.get("name") != "fallback_decision"]


@pytest.mark.parametrize(
    ("intent", "expected"),
    [
        ("book_flight", [RESET, FollowupAction("flight_booking_form")]),
        ("check_booking", [RESET, SlotSet("lookup_purpose", "check"), FollowupAction("booking_lookup_form")]),
        ("cancel_booking", [RESET, SlotSet("lookup_purpose", "cancel"), FollowupAction("booking_lookup_form")]),
        ("flight_status", [RESET, FollowupAction("flight_status_form")]),
        ("reset_password", [RESET, FollowupAction("password_reset_form")]),
        ("request_human", [RESET, FollowupAction("action_handoff")]),
    ],
)
async def test_a_rescue_continues_the_intents_flow(rescuer: _Rescuer, intent: str, expected: list[EventType]) -> None:
    rescuer.intent = intent
    dispatcher = CollectingDispatcher()
    assert _flow_events(await run_chain(dispatcher, _tracker())) == expected
    assert dispatcher.messages == []


@pytest.mark.parametrize(
    ("intent", "response"),
    [
        ("ask_capabilities", "utter_capabilities"),
        ("bot_challenge", "utter_iamabot"),
        ("greet", "utter_greet"),
        ("goodbye", "utter_goodbye"),
        ("thank", "utter_youre_welcome"),
    ],
)
async def test_a_small_talk_rescue_answers(rescuer: _Rescuer, intent: str, response: str) -> None:
    rescuer.intent = intent
    dispatcher = CollectingDispatcher()
    assert _flow_events(await run_chain(dispatcher, _tracker())) == [RESET]
    assert [m["response"] for m in dispatcher.messages] == [response]


async def test_inside_a_form_only_a_person_changes_the_flow(rescuer: _Rescuer) -> None:
    dispatcher = CollectingDispatcher()
    assert _flow_events(await run_chain(dispatcher, _tracker("flight_booking_form"))) == [RESET]  # the form goes on
    rescuer.intent = "request_human"
    assert _flow_events(await run_chain(dispatcher, _tracker("flight_booking_form"))) == [
        RESET,
        FollowupAction("action_handoff"),
    ]
    rescuer.intent = "affirm"  # not in the catalogue: nothing happens
    assert _flow_events(await run_chain(dispatcher, _tracker())) == [RESET]
    assert dispatcher.messages == []
