"""The conversation model (tandem.conversation) on trackers recorded from the real stack.

``fixtures/trackers/*.json`` are Rasa 3.6.21 trackers (``GET /conversations/<id>/tracker``) of two
conversations held over the gateway's channel with the gateway's metadata: a booking search with a
button click, two fallbacks and a request for a person (``booking_handoff``), and a greeting and
three turns the NLU could not handle (``fallbacks``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tandem.conversation import (
    Button,
    channel_name,
    consecutive_fallbacks,
    handoff_summary,
    last_session,
    offered_payloads,
    previous_bot_action,
    session_outcome,
    transcript,
    turns,
)
from tandem.conversation.history import history
from tandem.llm import Turn

FIXTURES = Path(__file__).parent / "fixtures" / "trackers"


def tracker(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8")))


@pytest.fixture
def booking() -> list[dict[str, Any]]:
    return list(tracker("booking_handoff")["events"])


@pytest.fixture
def fallbacks() -> list[dict[str, Any]]:
    return list(tracker("fallbacks")["events"])


def until_user(events: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The events up to and including the user message ``text``: the tracker an action sees then."""
    index = next(i for i, e in enumerate(events) if e.get("event") == "user" and e.get("text") == text)
    return events[: index + 1]


def test_turns_of_a_recorded_conversation(booking: list[dict[str, Any]]) -> None:
    conversation = turns(booking)
    assert [t.role for t in conversation] == ["user", "bot"] * 6
    first = conversation[0]
    assert (first.text, first.intent, first.channel, first.correlation_id) == ("hi", "greet", "website", "turn00bookin")
    assert first.confidence is not None and 0 < first.confidence <= 1
    assert first.timestamp == booking[first.index]["timestamp"]
    assert booking[first.index]["event"] == "user"
    ask_cabin = conversation[3]
    assert ask_cabin.text == "Which cabin would you like?"
    assert ask_cabin.buttons == (
        Button("Economy", '/inform{"cabin": "economy"}'),
        Button("Business", '/inform{"cabin": "business"}'),
    )
    assert ask_cabin.intent is None and ask_cabin.channel is None and ask_cabin.image is None
    click = conversation[4]
    assert click.payload == click.text == '/inform{"cabin": "economy"}'
    assert click.intent == "inform"
    assert conversation[0].payload is None


def test_agent_messages_image_and_custom_payloads() -> None:
    events = [
        {
            "event": "bot",
            "text": "Ploy here, let me look.",
            "timestamp": 5.0,
            "data": {"custom": {"agent_name": "Ploy"}},
        },
        {"event": "bot", "text": "Also me", "metadata": {"agent_name": "Krit"}},
        {"event": "bot", "text": None, "data": {"image": "https://example.com/a.png", "custom": "x"}},
        {"event": "bot", "text": None, "data": {"buttons": [{"payload": "/deny"}, {"title": "no payload"}, "junk"]}},
        {"event": "bot", "text": None, "data": {"custom": {"agent_name": "x" * 65}}},
        {"event": "bot"},
        "not an event",
    ]
    conversation = turns(events)
    assert [(t.role, t.agent_name) for t in conversation] == [
        ("agent", "Ploy"),
        ("agent", "Krit"),
        ("bot", None),
        ("bot", None),
        ("bot", None),  # an implausible name does not make an agent
        ("bot", None),
    ]
    assert conversation[2].image == "https://example.com/a.png" and conversation[2].custom == {"value": "x"}
    assert conversation[3].buttons == (Button("/deny", "/deny"),)
    assert [t.has_content for t in conversation] == [True, True, True, True, True, False]
    assert transcript(events) == [
        {"role": "agent", "text": "Ploy here, let me look.", "at": 5.0},
        {"role": "agent", "text": "Also me", "at": None},
    ]


@pytest.mark.parametrize(
    ("metadata", "input_channel", "expected"),
    [
        ({"channel": "website"}, "gateway", "website"),  # the gateway's metadata names the real channel
        (None, "cmdline", "shell"),  # rasa shell
        ({}, "rest", "rest"),
        ({"channel": "Slack"}, None, "slack"),
        (None, "telegram", "telegram"),
        ({"channel": "x" * 33}, "cmdline", "shell"),  # an implausible value is ignored
        ({"channel": 7}, None, None),
        (None, None, None),
        ("not a dict", "", None),
    ],
)
def test_channel_names(metadata: Any, input_channel: Any, expected: str | None) -> None:
    assert channel_name(metadata, input_channel) == expected


def test_the_channel_of_a_user_turn_comes_from_its_event() -> None:
    shell = turns([{"event": "user", "text": "hi", "input_channel": "cmdline", "metadata": {}}])
    assert shell[0].channel == "shell" and shell[0].correlation_id is None


def test_offered_payloads_are_those_since_the_last_user_message(booking: list[dict[str, Any]]) -> None:
    assert offered_payloads(turns(until_user(booking, "hi"))) == set()
    before_click = until_user(booking, '/inform{"cabin": "economy"}')[:-1]
    assert offered_payloads(turns(before_click)) == {'/inform{"cabin": "economy"}', '/inform{"cabin": "business"}'}
    before_human = until_user(booking, "I want to talk to a human")[:-1]
    assert offered_payloads(turns(before_human)) == {"/request_human", "/deny"}
    assert offered_payloads(turns(booking)) == set()  # the handoff's reply has no buttons


def test_transcript_for_a_ticket(booking: list[dict[str, Any]]) -> None:
    rows = transcript(booking)
    assert rows[0] == {
        "role": "user",
        "text": "hi",
        "at": booking[[e.get("text") for e in booking].index("hi")]["timestamp"],
        "intent": "greet",
    }
    assert [r["role"] for r in rows] == ["user", "bot"] * 6
    assert all(
        set(r) == ({"role", "text", "at", "intent"} if r["role"] == "user" else {"role", "text", "at"}) for r in rows
    )
    assert rows[-1]["text"].startswith("I've passed your conversation")
    assert transcript(booking, limit=3) == rows[-3:]
    # A button click is transcribed as Rasa stored it; a user event without text still counts.
    assert rows[4]["text"] == '/inform{"cabin": "economy"}'
    assert transcript([{"event": "user"}, {"event": "bot", "data": {"buttons": [{"payload": "/x"}]}}]) == [
        {"role": "user", "text": "", "at": None, "intent": None}
    ]


def test_handoff_summary(booking: list[dict[str, Any]]) -> None:
    summary = handoff_summary(booking, reason="user_request", active_form=None)
    assert summary == "reason: user_request; topics: book_flight, inform, out_of_scope, faq; active form: none"
    assert handoff_summary([], reason="r", active_form="flight_booking_form") == (
        "reason: r; topics: none; active form: flight_booking_form"
    )


def test_history_excludes_the_current_message(booking: list[dict[str, Any]]) -> None:
    events = until_user(booking, "flibber wibble")
    turns_before = history(events)
    assert turns_before[-1] == Turn("assistant", turns(events)[-2].text or "")
    assert all(t.text != "flibber wibble" for t in turns_before)
    assert {t.role for t in turns_before} == {"user", "assistant"}
    # A window of the last 30 events: the first messages of this conversation are out of it.
    assert turns_before[0] != Turn("user", "hi")
    assert history(events, window=1000)[0] == Turn("user", "hi")
    # Without a user message in the window everything in it is history.
    assert history([{"event": "bot", "text": "Hello"}]) == [Turn("assistant", "Hello")]
    assert history([]) == []


def test_previous_bot_action_skips_bookkeeping(booking: list[dict[str, Any]]) -> None:
    # Rasa's session start is an action the bot ran (it is not bookkeeping of a turn).
    assert previous_bot_action(until_user(booking, "hi")) == "action_session_start"
    assert previous_bot_action([{"event": "action", "name": "action_listen"}, {"event": "user"}]) is None
    assert previous_bot_action(until_user(booking, '/inform{"cabin": "economy"}')) == "flight_booking_form"
    assert previous_bot_action(until_user(booking, "zork blorp quux")) == "action_search_flights"
    assert previous_bot_action(until_user(booking, "I want to talk to a human")) == "action_answer_faq"
    # Only actions before the latest user message count.
    assert previous_bot_action([{"event": "user"}, {"event": "action", "name": "utter_greet"}]) is None


def test_consecutive_fallbacks(fallbacks: list[dict[str, Any]], booking: list[dict[str, Any]]) -> None:
    # Inside the fallback action for each message: the current turn counts.
    assert consecutive_fallbacks(until_user(fallbacks, "hello")) == 1
    assert consecutive_fallbacks(until_user(fallbacks, "zork blorp quux")) == 1  # after a greeting
    assert consecutive_fallbacks(until_user(fallbacks, "flibber wibble gronk")) == 2
    decided = [e.get("name") for e in fallbacks if e.get("event") == "action"]
    assert decided.count("action_fallback") == 3
    assert consecutive_fallbacks(until_user(fallbacks, "what's the weather on mars")) == 3
    # The FAQ action's chain is not the fallback action: the count starts again.
    assert consecutive_fallbacks(until_user(booking, "I want to talk to a human")) == 1
    assert consecutive_fallbacks(until_user(booking, "I want to talk to a human"), "action_answer_faq") == 2


def test_session_outcome(booking: list[dict[str, Any]], fallbacks: list[dict[str, Any]]) -> None:
    outcome = session_outcome(booking)
    assert (outcome.user_turns, outcome.fallback_turns, outcome.handoff, outcome.channel) == (6, 1, True, "website")
    stamps = [e["timestamp"] for e in booking]
    assert (outcome.started_at, outcome.ended_at) == (min(stamps), max(stamps))
    other = session_outcome(fallbacks)
    assert (other.user_turns, other.fallback_turns, other.handoff) == (4, 3, False)
    empty = session_outcome([])
    assert (empty.user_turns, empty.fallback_turns, empty.handoff, empty.started_at, empty.channel) == (
        0,
        0,
        False,
        None,
        None,
    )


def test_last_session_cuts_at_the_latest_session_start(booking: list[dict[str, Any]]) -> None:
    restarted = [*booking, *copy.deepcopy(booking[:3]), {"event": "user", "text": "again", "timestamp": 1.0}]
    latest = last_session(restarted)
    assert latest[0]["event"] == "session_started" and len(latest) == 2
    assert session_outcome(latest).user_turns == 1
    assert last_session([{"event": "user"}]) == [{"event": "user"}]


def test_external_intents_are_not_turns() -> None:
    """Rasa's trigger_intent stores "EXTERNAL: <intent>" as a user event: nobody said it."""
    events = [
        {"event": "user", "text": "I want a human", "timestamp": 1.0, "metadata": {}},
        {"event": "bot", "text": "Passed to our team.", "timestamp": 2.0},
        {"event": "user", "text": "EXTERNAL: handoff_returned", "timestamp": 3.0, "metadata": {"is_external": True}},
        {"event": "bot", "text": "Ploy marked this as solved.", "timestamp": 3.1},
    ]
    assert [(t.role, t.text) for t in turns(events)] == [
        ("user", "I want a human"),
        ("bot", "Passed to our team."),
        ("bot", "Ploy marked this as solved."),
    ]
    assert [row["text"] for row in transcript(events)] == [
        "I want a human",
        "Passed to our team.",
        "Ploy marked this as solved.",
    ]
