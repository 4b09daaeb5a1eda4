"""The sample conversations of DOMAIN.md held over Rasa's REST channel against the real
servers, checking the replies and the tracker's slots."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.stack import Stack, buttons, new_sender, sample_1_text, sample_day, texts

pytestmark = pytest.mark.e2e


def test_hello_gets_a_greeting(stack: Stack) -> None:
    replies = stack.say(new_sender(), "hello")
    assert "Andaman Air assistant" in texts(replies)


def test_1_book_a_flight_with_everything_in_one_sentence(stack: Stack) -> None:
    me = new_sender()
    replies = stack.say(me, sample_1_text())
    assert "Which cabin" in texts(replies), texts(replies)
    slots = stack.slots(me)
    assert (slots["origin"], slots["destination"], slots["passengers"]) == ("BKK", "HKT", 2.0)
    assert slots["departure_date"] == sample_day().isoformat()

    replies = stack.say(me, '/inform{"cabin": "economy"}')
    options = buttons(replies)
    assert 1 <= len(options) <= 3, texts(replies)
    assert all(b["title"].startswith("AN") and b["payload"].startswith("/choose_flight") for b in options)

    replies = stack.say(me, options[0]["payload"])
    assert "last name" in texts(replies)
    assert "e-mail" in texts(stack.say(me, "Smith"))
    replies = stack.say(me, "jane.smith@example.com")
    summary = texts(replies)
    assert "Please confirm" in summary and "Smith" in summary and "jane.smith@example.com" in summary

    replies = stack.say(me, "/affirm")
    match = re.search(r"booking reference is ([A-Z0-9]{6})", texts(replies))
    assert match, texts(replies)
    engine = create_engine(stack.database_url)
    with engine.connect() as db:
        row = db.execute(
            text("SELECT status, passengers, cabin, last_name FROM bookings WHERE reference = :r"),
            {"r": match.group(1)},
        ).one()
    assert tuple(row) == ("held", 2, "economy", "Smith")
    # The booking slots are cleared so the next booking starts afresh.
    assert stack.slots(me)["origin"] is None


def test_2_form_survives_a_faq_digression(stack: Stack) -> None:
    me = new_sender()
    replies = stack.say(me, "I want to fly to Chiang Mai")
    assert "flying from" in texts(replies)
    assert stack.slots(me)["destination"] == "CNX"
    assert "date" in texts(stack.say(me, "Bangkok"))
    replies = stack.say(me, "how much luggage can I bring?")
    reply = texts(replies)
    assert "kg" in reply, reply  # the FAQ answer
    assert "what date" in reply.lower(), reply  # the pending question again
    assert "How many passengers" in texts(stack.say(me, "next friday"))
    assert "Which cabin" in texts(stack.say(me, "just me"))
    slots = stack.slots(me)
    assert (slots["origin"], slots["destination"], slots["passengers"]) == ("BKK", "CNX", 1.0)
    assert buttons(stack.say(me, "business"))


def test_3_check_a_booking(stack: Stack) -> None:
    me = new_sender()
    replies = stack.say(me, "What's the status of booking AB12CD?")
    assert "last name" in texts(replies)
    assert stack.slots(me)["booking_ref"] == "AB12CD"
    reply = texts(stack.say(me, "Smith"))
    assert "Booking AB12CD" in reply and "Status: confirmed" in reply, reply


def test_3_wrong_last_name_reveals_nothing_and_locks_after_three_tries(stack: Stack) -> None:
    # ZR7TWM, not AB12CD: the lock-out now outlives the conversation (LOOKUP_LOCKOUT_MINUTES),
    # and the other conversations of this run still open AB12CD.
    me = new_sender()
    stack.say(me, "check my booking ZR7TWM")
    assert "couldn't find" in texts(stack.say(me, "Jones"))
    stack.say(me, "ZR7TWM")
    assert "couldn't find" in texts(stack.say(me, "Brown"))
    stack.say(me, "ZR7TWM")
    reply = texts(stack.say(me, "Green"))
    assert "stopped trying" in reply and "agents" in reply, reply


def test_4_cancel_a_booking_with_refund(stack: Stack) -> None:
    me = new_sender()
    assert "reference" in texts(stack.say(me, "Cancel my booking"))
    assert "last name" in texts(stack.say(me, "AB12CD"))
    reply = texts(stack.say(me, "smith"))
    assert "refund of THB" in reply and "Do you want to cancel" in reply, reply
    reply = texts(stack.say(me, "yes"))
    assert "is cancelled" in reply, reply
    engine = create_engine(stack.database_url)
    with engine.connect() as db:
        assert db.execute(text("SELECT status FROM bookings WHERE reference = 'AB12CD'")).scalar_one() == "cancelled"


def test_4_large_refund_goes_to_an_agent(stack: Stack) -> None:
    me = new_sender()
    stack.say(me, "I need to cancel booking XK93PQ")
    reply = texts(stack.say(me, "Tanaka"))
    assert "checked by one of our agents" in reply, reply
    reply = texts(stack.say(me, "yes please"))
    assert "ticket #" in reply, reply
    engine = create_engine(stack.database_url)
    with engine.connect() as db:
        assert (
            db.execute(text("SELECT status FROM bookings WHERE reference = 'XK93PQ'")).scalar_one()
            == "cancellation_pending"
        )
        assert db.execute(text("SELECT count(*) FROM tickets WHERE booking_reference = 'XK93PQ'")).scalar_one() == 1


def test_5_flight_status(stack: Stack) -> None:
    me = new_sender()
    reply = texts(stack.say(me, "Is AN204 on time today?"))
    assert reply.startswith("AN204 from"), reply
    assert stack.slots(me)["flight_number"] is None  # cleared for the next question


def test_6_password_reset_is_neutral(stack: Stack) -> None:
    known, unknown = new_sender(), new_sender()
    assert "e-mail" in texts(stack.say(known, "I forgot my password"))
    reply_known = texts(stack.say(known, "jane.smith@example.com"))
    stack.say(unknown, "can't log in to my account")
    reply_unknown = texts(stack.say(unknown, "nobody-here@example.org"))
    assert reply_known == reply_unknown
    assert "If an account exists" in reply_known


def test_8_out_of_scope_is_refused_politely(stack: Stack) -> None:
    reply = texts(stack.say(new_sender(), "Write me a poem about cats"))
    assert "can't help with that" in reply and "book flights" in reply, reply


def test_10_two_fallbacks_in_a_row_offer_a_human(stack: Stack) -> None:
    me = new_sender()
    first = stack.say(me, "blorp zzkt wibble")
    assert texts(first)
    second = stack.say(me, "qwv plonk frazzle")
    assert "talk to one of our agents" in texts(second), texts(second)
    assert any(b["payload"] == "/request_human" for b in buttons(second))


# What RasaClient.resume sends: the pause lifted, then a listen (as after any bot turn).
RESUME = [{"event": "resume"}, {"event": "action", "name": "action_listen"}]


def _external(stack: Stack, sender: str, path: str, body: Any) -> Any:
    """What the gateway's desk calls on Rasa's HTTP API: resume (tracker events) and trigger_intent."""
    response = httpx.post(
        f"{stack.rasa_url}/conversations/{sender}/{path}", params={"token": stack.token}, json=body, timeout=60
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_9_asking_for_a_human_pauses_the_bot_until_the_hand_back(stack: Stack) -> None:
    me = new_sender()
    stack.say(me, "hi")
    replies = stack.say(me, "I want to talk to a human")
    assert "ticket #" in texts(replies), texts(replies)
    [marker] = [r["custom"]["handoff"] for r in replies if isinstance(r.get("custom"), dict)]
    assert marker["state"] == "pending" and isinstance(marker["ticket_id"], int)
    assert stack.tracker(me)["paused"] is True
    # The backstop: a message that reaches Rasa anyway gets no bot reply while paused.
    assert stack.say(me, "hello? is anyone there?") == []
    # The hand-back, as the desk does it: resume, then the external intent.
    _external(stack, me, "tracker/events", RESUME)
    back = _external(
        stack,
        me,
        "trigger_intent",
        {"name": "handoff_returned", "entities": {"agent_name": "Ploy", "handoff_outcome": "solved"}},
    )["messages"]
    said = texts(back)
    assert "Ploy marked this as solved" in said and "how would you rate" in said, said
    assert {"handoff": {"state": "ended"}} in [m.get("custom") for m in back]
    assert stack.slots(me)["handoff_outcome"] == "solved"
    # The next message is the bot's again.
    assert texts(stack.say(me, "Is AN204 on time today?")).startswith("AN204 from")


def test_9_cancelled_and_expired_hand_backs_and_the_refund_notice(stack: Stack) -> None:
    for intent, expected in [
        ("handoff_cancelled", "withdrawn the request"),
        ("handoff_expired", "follow up by e-mail"),
    ]:
        me = new_sender()
        stack.say(me, "I want to talk to a human")
        _external(stack, me, "tracker/events", RESUME)
        said = texts(_external(stack, me, "trigger_intent", {"name": intent, "entities": {}})["messages"])
        assert expected in said, said
    me = new_sender()
    stack.say(me, "hi")
    entities = {"refund_decision": "approved", "booking_ref": "XK93PQ", "refund_amount": "4250.00", "currency": "THB"}
    said = texts(_external(stack, me, "trigger_intent", {"name": "refund_decided", "entities": entities})["messages"])
    assert "approved the cancellation of booking XK93PQ" in said and "4250.00 THB" in said, said


def test_stop_inside_a_form_after_confirmation(stack: Stack) -> None:
    me = new_sender()
    stack.say(me, "book a flight to Krabi")
    assert "stop" in texts(stack.say(me, "never mind"))
    assert "stopped" in texts(stack.say(me, "yes"))
    tracker = stack.tracker(me)
    assert tracker["active_loop"] == {} or not tracker["active_loop"].get("name")
    assert tracker["slots"]["destination"] is None


def test_7_long_tail_question_gets_a_grounded_answer_without_an_llm(stack: Stack) -> None:
    reply = texts(stack.say(new_sender(), "Can I bring my surfboard?"))
    assert "surf" in reply.lower() and "Source:" in reply, reply


def test_the_served_tracker_store_is_ours_and_durable(stack: Stack) -> None:
    """endpoints.yml loads tandem_rasa.tracker_store by class path; Rasa falls back to an in-memory
    store (a warning only) when such a class cannot be loaded: the rows must be in the database."""
    me = new_sender()
    stack.say(me, "hi")
    stack.say(me, "Is AN204 on time today?")
    engine = create_engine(stack.env["TRACKER_DB_URL"])
    with engine.connect() as db:
        rows = db.execute(text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": me}).scalar_one()
        assert rows == len(stack.tracker(me)["events"]) > 4
        assert db.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
    engine.dispose()
