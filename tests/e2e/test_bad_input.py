"""Bad input over the REST channel: a sensible reply every time, no 500, nothing written wrongly."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.stack import Stack, new_sender, texts

pytestmark = pytest.mark.e2e

BAD_INPUTS = {
    "empty": "",
    "blank": "   \n\t ",
    "huge": "I want to book a flight " + "a" * 10_000,
    "control characters": "hel\x00lo\x07 \x1b[31mred\x1b[0m",
    "emoji": "✈️🌴🙏😀",
    "thai": "สวัสดีครับ ผมอยากจองตั๋วเครื่องบินไปภูเก็ต",
    "sql": "'; DROP TABLE bookings; -- AB12CD",
    "html": "<script>alert('x')</script>",
    "json-looking": '/inform{"passengers": -5, "cabin": "first"}',
}


def counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    with engine.connect() as db:
        return {t: db.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in ("bookings", "flights")}


@pytest.mark.parametrize("message", list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_gets_a_reply(stack: Stack, message: str) -> None:
    before = counts(stack.database_url)
    replies = stack.say(new_sender(), message)
    assert texts(replies).strip(), f"no reply to {message[:40]!r}"
    assert "Traceback" not in texts(replies)
    assert counts(stack.database_url) == before


def test_bad_values_inside_a_form_are_refused_and_the_form_goes_on(stack: Stack) -> None:
    me = new_sender()
    stack.say(me, "book a flight from bangkok to phuket")
    reply = texts(stack.say(me, "yesterday"))
    assert "in the past" in reply, reply
    stack.say(me, "tomorrow")
    reply = texts(stack.say(me, '/inform{"passengers": "-5"}'))
    assert "between 1 and 9" in reply, reply
    slots = stack.slots(me)
    assert slots["passengers"] is None and slots["departure_date"] is not None
