"""The Slack and Telegram doors of the gateway, end to end against the fakes: the real app, a fake
Rasa over HTTP, and the fake Slack Web API and Telegram Bot API (which enforce the platforms' limits
and record what they receive)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tandem.gateway import create_app
from tandem.settings import load_gateway_settings
from tests.fakes.slack_api import SLACK_TOKEN, FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.gateway.conftest import BASE
from tests.gateway.fakes import FakeRasa

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TELEGRAM_SECRET = "telegram-webhook-secret_0123456789"
TELEGRAM_TOKEN = FakeTelegram.token


def signed(body: bytes, *, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def dm(text: str, *, ts: str = "1700000000.000100", event_id: str = "Ev1", user: str = "U111") -> dict[str, Any]:
    return {
        "type": "event_callback",
        "team_id": "T123",
        "event_id": event_id,
        "event": {"type": "message", "channel_type": "im", "channel": "D42", "user": user, "text": text, "ts": ts},
    }


@pytest.fixture
def door_settings(settings_for: Callable[..., Any], slack_base_url: str, telegram_base_url: str) -> Callable[..., Any]:
    def make(**overrides: Any) -> Any:
        values = {
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_BASE_URL": slack_base_url,
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "TELEGRAM_API_BASE_URL": telegram_base_url,
            "RASA_TIMEOUT_SECONDS": 5.0,
        }
        values.update(overrides)
        return settings_for(**values)

    return make


@pytest.fixture
async def gateway(door_settings: Callable[..., Any]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(door_settings())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
        await app.state.doors.aclose()
        await app.state.gateway.http.aclose()
        await app.state.gateway.infra.aclose()


async def settle(client: httpx.AsyncClient) -> None:
    """Wait for the background turns (the platforms were answered before they ran)."""
    assert await client.app.state.doors.lanes.drain(10.0)  # type: ignore[attr-defined]


async def slack_event(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    raw = json.dumps(body).encode()
    return await client.post(
        "/channels/slack/events", content=raw, headers={"Content-Type": "application/json", **signed(raw), **headers}
    )


async def slack_click(client: httpx.AsyncClient, *, value: str, ts: str, user: str = "U111") -> httpx.Response:
    payload = {
        "type": "block_actions",
        "team": {"id": "T123"},
        "user": {"id": user},
        "channel": {"id": "D42"},
        "container": {"type": "message", "message_ts": ts, "channel_id": "D42"},
        "message": {"ts": ts, "blocks": []},
        "actions": [{"type": "button", "action_id": "b0", "value": value, "text": {"type": "plain_text", "text": "x"}}],
    }
    raw = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed(raw)}
    return await client.post("/channels/slack/interactivity", content=raw, headers=headers)


# ---------------------------------------------------------------- Slack


async def test_slack_refuses_unsigned_stale_and_forged_requests(gateway: httpx.AsyncClient, fake: FakeRasa) -> None:
    raw = json.dumps(dm("hello")).encode()
    plain = {"Content-Type": "application/json"}
    assert (await gateway.post("/channels/slack/events", content=raw, headers=plain)).status_code == 401
    stale = signed(raw, at=time.time() - 600)
    assert (await gateway.post("/channels/slack/events", content=raw, headers={**plain, **stale})).status_code == 401
    forged = signed(raw, secret="not-the-signing-secret")
    response = await gateway.post("/channels/slack/events", content=raw, headers={**plain, **forged})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
    # Signed, then changed: the signature is over the raw bytes.
    tampered = json.dumps(dm("hello!")).encode()
    assert (
        await gateway.post("/channels/slack/events", content=tampered, headers={**plain, **signed(raw)})
    ).status_code == 401
    await settle(gateway)
    assert fake.requests == []


async def test_slack_url_verification(gateway: httpx.AsyncClient) -> None:
    response = await slack_event(
        gateway, {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    )
    assert response.status_code == 200 and response.json()["challenge"].startswith("3eZbrw1")


async def test_a_slack_dm_runs_one_turn_and_the_reply_is_posted(
    gateway: httpx.AsyncClient, fake: FakeRasa, slack_api: FakeSlack
) -> None:
    response = await slack_event(gateway, dm("hello there"))
    assert response.status_code == 200
    await settle(gateway)
    [turn] = fake.requests
    body = turn["body"]
    assert body["message"] == "hello there" and body["metadata"]["channel"] == "slack"
    # The conversation id is a keyed hash, never the platform's ids.
    assert body["sender"].startswith("slack-") and not {"T123", "D42", "U111"} & set(body["sender"].split("-"))
    assert "U111" not in body["metadata"]["client"]
    [posted] = slack_api.posted
    assert posted["channel"] == "D42" and "11 characters" in posted["text"]


@pytest.mark.parametrize("reason", ["http_timeout", "http_error", "too_many_requests", "unknown_error"])
async def test_slack_retries_of_any_reason_run_no_second_turn(
    gateway: httpx.AsyncClient, fake: FakeRasa, slack_api: FakeSlack, reason: str
) -> None:
    event = dm("hello", event_id=f"Ev-{reason}", ts=f"1700000001.{len(reason):06d}")
    assert (await slack_event(gateway, event)).status_code == 200
    retry = await slack_event(gateway, event, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": reason})
    assert retry.status_code == 200
    await settle(gateway)
    assert len(fake.requests) == 1 and len(slack_api.posted) == 1


async def test_a_mention_and_its_message_twin_are_one_turn(gateway: httpx.AsyncClient, fake: FakeRasa) -> None:
    ts = "1700000002.000200"
    base = {"channel": "C77", "user": "U222", "text": "<@UBOT> where is my booking", "ts": ts}
    mention = {"type": "event_callback", "team_id": "T123", "event_id": "EvA", "event": {"type": "app_mention", **base}}
    twin = {
        "type": "event_callback",
        "team_id": "T123",
        "event_id": "EvB",
        "event": {"type": "message", "channel_type": "channel", **base},
    }
    assert (await slack_event(gateway, mention)).status_code == 200
    assert (await slack_event(gateway, twin)).status_code == 200
    await settle(gateway)
    assert [r["body"]["message"] for r in fake.requests] == ["where is my booking"]


async def test_slack_bot_messages_and_edits_are_ignored(gateway: httpx.AsyncClient, fake: FakeRasa) -> None:
    bot = dm("I am a bot")
    bot["event"]["bot_id"] = "B1"
    edit = dm("edited", event_id="Ev9")
    edit["event"]["subtype"] = "message_changed"
    for event in (bot, edit):
        assert (await slack_event(gateway, event)).status_code == 200
    await settle(gateway)
    assert fake.requests == []


async def test_slack_buttons_a_click_continues_and_only_offered_payloads_count(
    gateway: httpx.AsyncClient, fake: FakeRasa, slack_api: FakeSlack
) -> None:
    await slack_event(gateway, dm("book a flight"))
    await settle(gateway)
    [offer] = slack_api.posted
    actions = [b for b in offer["blocks"] if b["type"] == "actions"]
    values = [e["value"] for b in actions for e in b["elements"]]
    assert values and all(v.startswith("/") for v in values)
    [(_, ts)] = slack_api.messages
    assert (await slack_click(gateway, value="/forged_payload", ts=ts)).status_code == 200
    await settle(gateway)
    assert len(fake.requests) == 1  # not offered: no turn
    # A click on an offered button (first click on that message): buttons replaced, the turn runs.
    assert (await slack_click(gateway, value=values[0], ts=ts)).status_code == 200
    assert (await slack_click(gateway, value=values[1], ts=ts)).status_code == 200  # second click: ignored
    await settle(gateway)
    assert [r["body"]["message"] for r in fake.requests] == ["book a flight", values[0]]
    assert len(slack_api.updates) == 1 and "You chose" in slack_api.updates[0]["text"]


async def test_a_slow_turn_is_still_acknowledged_at_once(
    gateway: httpx.AsyncClient, fake: FakeRasa, slack_api: FakeSlack
) -> None:
    fake.mode, fake.delay = "slow", 2.0
    started = time.perf_counter()
    assert (await slack_event(gateway, dm("hello slowly", event_id="EvSlow"))).status_code == 200
    assert time.perf_counter() - started < 1.0  # Slack wants an answer within 3 s
    await settle(gateway)
    assert len(slack_api.posted) == 1


async def test_rasa_down_gives_an_apology_not_silence(
    gateway: httpx.AsyncClient, fake: FakeRasa, slack_api: FakeSlack
) -> None:
    fake.mode = "unavailable"
    await slack_event(gateway, dm("hello?", event_id="EvDown"))
    await settle(gateway)
    [posted] = slack_api.posted
    assert "try again" in posted["text"] and "bad gateway" not in posted["text"]


async def test_a_too_long_message_gets_a_clear_answer(
    gateway: httpx.AsyncClient, fake: FakeRasa, slack_api: FakeSlack
) -> None:
    await slack_event(gateway, dm("x" * 1500, event_id="EvLong"))
    await settle(gateway)
    assert fake.requests == []
    assert "too long" in slack_api.posted[0]["text"]


# ---------------------------------------------------------------- Telegram


def update(update_id: int, **content: Any) -> dict[str, Any]:
    return {"update_id": update_id, **content}


def message(text: str | None = None, *, chat: int = 501, sender: int = 77, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": 10,
        "date": int(time.time()),
        "chat": {"id": chat, "type": "private"},
        "from": {"id": sender, "is_bot": False, "first_name": "Ann"},
        **extra,
    }
    if text is not None:
        body["text"] = text
    return body


async def telegram_post(
    client: httpx.AsyncClient, body: dict[str, Any], *, secret: str | None = TELEGRAM_SECRET
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return await client.post("/channels/telegram/webhook", content=json.dumps(body).encode(), headers=headers)


async def test_telegram_needs_the_secret_token(gateway: httpx.AsyncClient, fake: FakeRasa) -> None:
    for secret in (None, "", "wrong-secret-wrong-secret"):
        response = await telegram_post(gateway, update(1, message=message("hi")), secret=secret)
        assert response.status_code == 401
    await settle(gateway)
    assert fake.requests == []


async def test_a_telegram_message_runs_once_per_update_id(
    gateway: httpx.AsyncClient, fake: FakeRasa, telegram_api: FakeTelegram
) -> None:
    body = update(100, message=message("hello bot"))
    assert (await telegram_post(gateway, body)).status_code == 200
    assert (await telegram_post(gateway, body)).status_code == 200  # redelivered
    await settle(gateway)
    [turn] = fake.requests
    assert turn["body"]["metadata"]["channel"] == "telegram" and turn["body"]["sender"].startswith("telegram-")
    assert "501" not in turn["body"]["sender"]
    [sent] = telegram_api.sent
    assert sent["chat_id"] == 501 and "9 characters" in sent["text"]


async def test_odd_telegram_updates_get_200_and_never_a_turn(
    gateway: httpx.AsyncClient, fake: FakeRasa, telegram_api: FakeTelegram
) -> None:
    blocked = update(
        200,
        my_chat_member={
            "chat": {"id": 501, "type": "private"},
            "from": {"id": 77},
            "date": 1,
            "old_chat_member": {"status": "member"},
            "new_chat_member": {"status": "kicked"},
        },
    )
    edited = update(201, edited_message=message("changed"))
    sticker = update(202, message=message(None, sticker={"file_id": "x", "emoji": "🙂"}))
    for body in (blocked, edited, sticker, {"update_id": "not a number"}, {"nonsense": True}):
        assert (await telegram_post(gateway, body)).status_code == 200
    bad_json = await gateway.post(
        "/channels/telegram/webhook",
        content=b"\xff\xfe{not json",
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 200
    await settle(gateway)
    assert fake.requests == []
    # The person who sent a sticker is told what works (once).
    assert [s["chat_id"] for s in telegram_api.sent] == [501] and "text" in telegram_api.sent[0]["text"]


async def test_telegram_buttons_callback_flow(
    gateway: httpx.AsyncClient, fake: FakeRasa, telegram_api: FakeTelegram
) -> None:
    await telegram_post(gateway, update(300, message=message("book a flight")))
    await settle(gateway)
    [offer] = telegram_api.sent
    keyboard = offer["reply_markup"]["inline_keyboard"]
    ids = [row[0]["callback_data"] for row in keyboard]
    assert ids and all(len(i.encode()) <= 64 and not i.startswith("/") for i in ids)  # opaque, short
    [(_, sent_id)] = [key for key, markup in telegram_api.keyboards.items() if markup]  # the message with the keyboard

    def click(update_id: int, data: str, *, sender: int = 77) -> dict[str, Any]:
        return update(update_id, callback_query={
            "id": f"cq{update_id}", "from": {"id": sender, "is_bot": False, "first_name": "Ann"}, "data": data,
            "message": {"message_id": sent_id, "date": 1, "chat": {"id": 501, "type": "private"}},
        })  # fmt: skip

    # A forged id and someone else's click are answered but run nothing.
    await telegram_post(gateway, click(301, "forged-id"))
    await telegram_post(gateway, click(302, ids[0], sender=78))
    await settle(gateway)
    assert len(fake.requests) == 1
    await telegram_post(gateway, click(303, ids[0]))
    await settle(gateway)
    payload = fake.requests[-1]["body"]["message"]
    assert payload.startswith("/") and len(fake.requests) == 2
    assert {a["callback_query_id"] for a in telegram_api.answers} >= {"cq301", "cq302", "cq303"}
    assert telegram_api.edits and "reply_markup" not in telegram_api.edits[-1]  # keyboard removed
    assert any("You chose" in s["text"] for s in telegram_api.sent)


# ---------------------------------------------------------------- configuration


def test_a_half_configured_channel_stops_the_gateway(settings_for: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="half-configured"):
        settings_for(SLACK_SIGNING_SECRET="x" * 32)
    with pytest.raises(ValueError, match="half-configured"):
        settings_for(TELEGRAM_BOT_TOKEN="123:abc")
    with pytest.raises(ValueError, match="GATEWAY_SECRET"):
        load_gateway_settings(_env_file=None, SLACK_SIGNING_SECRET="x" * 32, SLACK_BOT_TOKEN="xoxb-1")


async def test_doors_are_closed_when_not_configured(settings_for: Callable[..., Any], client_for: Any) -> None:
    async with client_for(settings_for()) as client:
        assert (await client.post("/channels/slack/events", content=b"{}")).status_code == 404
        assert (await client.post("/channels/telegram/webhook", content=b"{}")).status_code == 404
