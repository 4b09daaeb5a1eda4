"""Message validation: JSON shape, length, encoding, control characters and offered payloads."""

from __future__ import annotations

import json

import httpx
import pytest

from tandem.gateway.errors import GatewayError
from tandem.gateway.validation import parse_message

from .conftest import say, start_session
from .fakes import CABIN_BUTTONS, RATING_BUTTONS, FakeRasa


def code_of(body: object, max_chars: int = 1000) -> str:
    with pytest.raises(GatewayError) as caught:
        parse_message(body, max_chars=max_chars)
    return caught.value.code


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], "invalid_shape"),
        ("hello", "invalid_shape"),
        ({}, "invalid_shape"),
        ({"text": "a", "payload": "/affirm"}, "invalid_shape"),
        ({"text": 5}, "invalid_shape"),
        ({"text": None}, "invalid_shape"),
        ({"payload": ""}, "invalid_shape"),
        ({"text": "hi", "sender": "x"}, "invalid_shape"),
        ({"text": "   "}, "empty_message"),
        ({"text": "/restart"}, "reserved_prefix"),
        ({"text": ' /inform{"cabin": "business"}'}, "reserved_prefix"),
        ({"text": "a" * 1001}, "message_too_long"),
        ({"text": "hi\x00there"}, "control_characters"),
        ({"text": "bell\x07"}, "control_characters"),
        ({"text": "esc\x1b[31m"}, "control_characters"),
        ({"text": "c1\x85"}, "control_characters"),
        ({"text": "bidi \u202e override"}, "control_characters"),
        ({"text": "zero\u200bwidth"}, "control_characters"),
        ({"text": "lone \ud800 surrogate"}, "invalid_encoding"),
        ({"payload": "/affirm\x00"}, "control_characters"),
    ],
)
def test_invalid_messages_have_a_clear_code(body: object, code: str) -> None:
    assert code_of(body) == code


@pytest.mark.parametrize(
    "text",
    ["hello", "a" * 1000, "line one\nline two\ttab", "สวัสดีครับ", "👩‍✈️ ✈️ 🇹🇭", "<b>bold</b> **md**", "'; DROP TABLE x;--"],
)
def test_ordinary_text_is_accepted(text: str) -> None:
    incoming = parse_message({"text": text}, max_chars=1000)
    assert (incoming.kind, incoming.value) == ("text", text.strip())


async def test_the_length_limit_is_configurable(settings_for: object, client_for: object) -> None:
    async with client_for(settings_for(GATEWAY_MAX_MESSAGE_CHARS=10)) as client:  # type: ignore[operator]
        await start_session(client)
        assert (await say(client, text="a" * 10)).status_code == 200
        response = await say(client, text="a" * 11)
        assert response.status_code == 400
        assert response.json()["error"] == {
            "code": "message_too_long",
            "message": "The message is too long: at most 10 characters, please.",
            "retry_after": None,
        }


async def test_body_encoding_and_size_errors(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    cases = [
        (b'{"text": "caf\xe9"}', "application/json", 400, "invalid_encoding"),
        (b'{"text": "\\udc00"}', "application/json", 400, "invalid_encoding"),
        (b'{"text": ', "application/json", 400, "invalid_json"),
        (b"text=hello", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b'{"text": "hello"}', "text/plain", 415, "unsupported_media_type"),
        (json.dumps({"text": "a" * 20000}).encode(), "application/json", 413, "body_too_large"),
        (b"[" * 50000, "application/json", 413, "body_too_large"),
    ]
    for raw, content_type, status, code in cases:
        response = await client.post("/api/v1/messages", content=raw, headers={"Content-Type": content_type})
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), raw[:40]
    assert fake.requests == []


async def test_deeply_nested_json_is_a_clear_error(client: httpx.AsyncClient) -> None:
    await start_session(client)
    raw = b"[" * 5000 + b"]" * 5000
    response = await client.post("/api/v1/messages", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


async def test_only_offered_payloads_are_accepted(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    # Nothing offered yet: a forged intent is refused before it reaches Rasa.
    response = await say(client, payload='/inform{"cabin": "business"}')
    assert response.status_code == 400 and response.json()["error"]["code"] == "payload_not_offered"
    assert fake.requests == []
    turn = (await say(client, text="book a flight")).json()
    assert turn["messages"][0]["buttons"] == CABIN_BUTTONS
    assert (await say(client, payload='/inform{"cabin": "first"}')).status_code == 400
    assert (await say(client, payload="/affirm")).status_code == 400
    response = await say(client, payload='/inform{"cabin": "business"}')
    assert response.status_code == 200, response.text
    # The offer is used up: the bot's reply offered nothing, so the same button is stale now.
    assert (await say(client, payload='/inform{"cabin": "economy"}')).status_code == 400
    assert [r["body"]["message"] for r in fake.requests] == ["book a flight", '/inform{"cabin": "business"}']


async def test_offers_belong_to_one_conversation(client_for: object, settings_for: object, fake: FakeRasa) -> None:
    settings = settings_for()  # type: ignore[operator]
    async with client_for(settings) as alice, client_for(settings) as mallory:  # type: ignore[operator]
        await start_session(alice)
        await start_session(mallory)
        await say(alice, text="bye")
        assert (await say(mallory, payload=RATING_BUTTONS[4]["payload"])).status_code == 400
        assert (await say(alice, payload=RATING_BUTTONS[4]["payload"])).status_code == 200


async def test_offers_survive_a_restart_through_the_tracker(
    settings_for: object, client_for: object, fake: FakeRasa
) -> None:
    settings = settings_for()  # type: ignore[operator]
    async with client_for(settings) as before:  # type: ignore[operator]
        await start_session(before)
        await say(before, text="book")
        cookies = before.cookies
    # A new process with an empty in-memory store reads the offered buttons from Rasa's tracker.
    async with client_for(settings) as after:  # type: ignore[operator]
        after.cookies = cookies
        assert (await say(after, payload=CABIN_BUTTONS[0]["payload"])).status_code == 200
        assert fake.tracker_requests[-1]["query"]["token"]
