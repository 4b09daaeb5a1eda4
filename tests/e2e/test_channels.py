"""Sample conversations 1, 3, 7 and 9 of DOMAIN.md on Slack and on Telegram, end to end: the fake
platform posts signed events / secret-bearing updates to the real gateway, which runs each turn
through the real Rasa server and action server, and the fake platform receives the replies,
buttons included; clicking a button continues the flow."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, Protocol

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tandem.clock import utc_now
from tandem.gateway import create_app
from tandem.services import agents
from tandem.settings import load_gateway_settings
from tests.fakes.slack_api import SLACK_TOKEN, FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.stack import Stack, sample_1_text

pytestmark = pytest.mark.e2e

SIGNING_SECRET = "e2e-slack-signing-secret-0123456789"
TELEGRAM_SECRET = "e2e-telegram-webhook-secret_0123456789"
_ids = itertools.count(1)


class Customer(Protocol):
    channel_name: str

    async def say(self, text: str) -> list[dict[str, Any]]: ...

    async def click(self, replies: list[dict[str, Any]], title: str) -> list[dict[str, Any]]: ...


def reply_text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text", "")) for r in replies)


@pytest.fixture
async def gateway(stack: Stack, slack_base_url: str, telegram_base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_gateway_settings(
        _env_file=None,
        DATABASE_URL=stack.database_url,
        REDIS_URL=None,
        GATEWAY_SECRET="e2e-gateway-secret-" + "k7m2p9" * 5,
        RASA_URL=stack.rasa_url,
        RASA_API_TOKEN=stack.token,
        RASA_TIMEOUT_SECONDS=50,
        GATEWAY_RATE_LIMIT_SESSION="1000/minute",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_BOT_TOKEN=SLACK_TOKEN,
        SLACK_API_BASE_URL=slack_base_url,
        TELEGRAM_BOT_TOKEN=FakeTelegram.token,
        TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
        TELEGRAM_API_BASE_URL=telegram_base_url,
    )
    app = create_app(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client
        await app.state.doors.aclose()
        await app.state.gateway.http.aclose()


async def settle(client: httpx.AsyncClient) -> None:
    assert await client.app.state.doors.lanes.drain(90.0)  # type: ignore[attr-defined]


class SlackCustomer:
    """A person in a Slack DM with the bot."""

    channel_name = "slack"

    def __init__(self, client: httpx.AsyncClient, api: FakeSlack) -> None:
        self.client, self.api = client, api
        self.user = f"U{next(_ids):08d}"
        self.channel = f"D{next(_ids):08d}"

    async def _post(self, path: str, raw: bytes, content_type: str) -> None:
        stamp = str(int(time.time()))
        digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={digest}",
        }
        response = await self.client.post(path, content=raw, headers=headers)
        assert response.status_code == 200, response.text

    async def _replies(self, before: int) -> list[dict[str, Any]]:
        await settle(self.client)
        return [p for p in self.api.posted[before:] if p["channel"] == self.channel]

    async def say(self, text: str) -> list[dict[str, Any]]:
        before, n = len(self.api.posted), next(_ids)
        event = {"type": "message", "channel_type": "im", "channel": self.channel, "user": self.user, "text": text}
        body = {"type": "event_callback", "team_id": "T1", "event_id": f"Ev{n}", "event": {**event, "ts": f"{n}.0001"}}
        await self._post("/channels/slack/events", json.dumps(body).encode(), "application/json")
        return await self._replies(before)

    async def click(self, replies: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
        for post in replies:
            for block in post.get("blocks", []):
                for element in block.get("elements", []) if block["type"] == "actions" else []:
                    if element["text"]["text"].startswith(title):
                        return await self._click(post, element)
        raise AssertionError(f"no button {title!r} in {replies}")

    async def _click(self, post: dict[str, Any], element: dict[str, Any]) -> list[dict[str, Any]]:
        before = len(self.api.posted)
        payload = {
            "type": "block_actions",
            "team": {"id": "T1"},
            "user": {"id": self.user},
            "channel": {"id": self.channel},
            "container": {"type": "message", "message_ts": post["ts"], "channel_id": self.channel},
            "message": {"ts": post["ts"], "blocks": post["blocks"]},
            "actions": [element],
        }
        raw = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        await self._post("/channels/slack/interactivity", raw, "application/x-www-form-urlencoded")
        return await self._replies(before)


class TelegramCustomer:
    """A person in a private chat with the bot."""

    channel_name = "telegram"

    def __init__(self, client: httpx.AsyncClient, api: FakeTelegram) -> None:
        self.client, self.api = client, api
        self.chat = 10_000 + next(_ids)

    async def _post(self, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
        response = await self.client.post(
            "/channels/telegram/webhook", content=json.dumps(body).encode(), headers=headers
        )
        assert response.status_code == 200, response.text

    async def _replies(self, before: int) -> list[dict[str, Any]]:
        await settle(self.client)
        return [s for s in self.api.sent[before:] if s["chat_id"] == self.chat]

    def _person(self) -> dict[str, Any]:
        return {"id": self.chat, "is_bot": False, "first_name": "Ann"}

    async def say(self, text: str) -> list[dict[str, Any]]:
        before, n = len(self.api.sent), next(_ids)
        chat = {"id": self.chat, "type": "private"}
        message = {"message_id": n, "date": int(time.time()), "chat": chat, "from": self._person(), "text": text}
        await self._post({"update_id": n, "message": message})
        return await self._replies(before)

    async def click(self, replies: list[dict[str, Any]], title: str) -> list[dict[str, Any]]:
        for sent in replies:
            for row in (sent.get("reply_markup") or {}).get("inline_keyboard", []):
                if row[0]["text"].startswith(title):
                    before, n = len(self.api.sent), next(_ids)
                    chat = {"id": self.chat, "type": "private"}
                    query = {
                        "id": f"cq{n}",
                        "from": self._person(),
                        "data": row[0]["callback_data"],
                        "message": {"message_id": sent["message_id"], "date": 1, "chat": chat},
                    }
                    await self._post({"update_id": n, "callback_query": query})
                    return [r for r in await self._replies(before) if not r["text"].startswith("You chose")]
        raise AssertionError(f"no button {title!r} in {replies}")


@pytest.fixture(params=["slack", "telegram"])
def customer(
    request: pytest.FixtureRequest, gateway: httpx.AsyncClient, slack_api: FakeSlack, telegram_api: FakeTelegram
) -> Customer:
    if request.param == "slack":
        return SlackCustomer(gateway, slack_api)
    return TelegramCustomer(gateway, telegram_api)


async def test_1_book_a_flight_with_buttons(customer: Customer, stack: Stack) -> None:
    replies = await customer.say(sample_1_text())
    assert "Which cabin" in reply_text(replies), replies
    replies = await customer.click(replies, "Economy")
    assert re.search(r"AN\d+", reply_text(replies) + json.dumps(replies)), replies
    replies = await customer.click(replies, "AN")  # the first flight offered
    assert "last name" in reply_text(replies), replies
    assert "e-mail" in reply_text(await customer.say("Smith"))
    # An address of its own: the other e2e and browser tests hold seats for jane.smith@example.com, and
    # open holds are limited per e-mail (BOOKING_MAX_HOLDS_PER_EMAIL, 3).
    replies = await customer.say(f"{customer.channel_name}.smith@example.com")
    assert "Please confirm" in reply_text(replies), replies
    replies = await customer.say("yes")
    match = re.search(r"booking reference is \W*([A-Z0-9]{6})", reply_text(replies))
    assert match, replies
    with create_engine(stack.database_url).connect() as db:
        status = db.execute(
            text("SELECT status, passengers, cabin FROM bookings WHERE reference = :r"), {"r": match.group(1)}
        ).one()
        # The audit row of the booking says which door the customer came through.
        channels = db.execute(text("SELECT channel FROM audit_log WHERE tool = 'create_booking'")).scalars().all()
    assert tuple(status) == ("held", 2, "economy")
    assert customer.channel_name in channels


async def test_3_check_a_booking(customer: Customer) -> None:
    replies = await customer.say("What's the status of booking AB12CD?")
    assert "last name" in reply_text(replies), replies
    reply = reply_text(await customer.say("Smith"))
    assert "AB12CD" in reply and "confirmed" in reply, reply


async def test_7_long_tail_question_gets_a_grounded_answer(customer: Customer) -> None:
    reply = reply_text(await customer.say("Can I bring my surfboard?"))
    assert "surf" in reply.lower() and "Source:" in reply, reply


def _platform_texts(customer: Customer, since: int) -> list[str]:
    """What the bot (or an agent, through the gateway) posted to this customer after ``since``."""
    if isinstance(customer, SlackCustomer):
        return [str(p.get("text", "")) for p in customer.api.posted[since:] if p["channel"] == customer.channel]
    assert isinstance(customer, TelegramCustomer)
    return [str(s.get("text", "")) for s in customer.api.sent[since:] if s["chat_id"] == customer.chat]


def _sent_so_far(customer: Customer) -> int:
    return len(customer.api.posted) if isinstance(customer, SlackCustomer) else len(customer.api.sent)  # type: ignore[union-attr]


async def test_9_a_person_takes_over_and_hands_back(
    customer: Customer, gateway: httpx.AsyncClient, stack: Stack
) -> None:
    """Sample 9 on the platform: ticket, the bot pauses, an agent replies, the bot resumes."""
    engine = create_engine(stack.database_url)
    email = f"ploy-{customer.channel_name}-{next(_ids)}@andaman.example"
    with engine.begin() as connection, Session(bind=connection) as session:
        agents.add_agent(
            session,
            email=email,
            display_name="Ploy",
            password="correct horse battery staple",
            now=utc_now(),
            hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )
        session.flush()
    asked = await customer.say("I want to talk to a human")
    match = re.search(r"ticket #(\d+)", reply_text(asked))
    assert match, reply_text(asked)
    ticket_id = int(match.group(1))
    with engine.connect() as db:
        conversation, channel = db.execute(
            text("SELECT conversation_id, channel FROM tickets WHERE id = :id"), {"id": ticket_id}
        ).one()
    assert channel == customer.channel_name

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app), base_url="http://gateway.test"
    ) as agent:  # type: ignore[attr-defined]
        login = await agent.post("/agent/api/login", json={"email": email, "password": "correct horse battery staple"})
        assert login.status_code == 200, login.text
        headers = {"X-CSRF-Token": login.json()["csrf_token"]}
        since = _sent_so_far(customer)
        assert (await agent.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=headers)).status_code == 200
        sent = await agent.post(
            f"/agent/api/handoffs/{ticket_id}/messages", json={"text": "Hi, I'm Ploy. How can I help?"}, headers=headers
        )
        assert sent.json()["delivered"] is True
        assert _platform_texts(customer, since) == [
            "Ploy from our support team has joined the conversation.",
            "Ploy: Hi, I'm Ploy. How can I help?",
        ]
        # The customer's answer is the agent's: no bot reply, and Rasa never hears it.
        assert await customer.say("My bag did not arrive in Krabi") == []
        detail = (await agent.get(f"/agent/api/handoffs/{ticket_id}")).json()["handoff"]
        assert detail["transcript"][-1]["text"] == "My bag did not arrive in Krabi"
        heard = [e.get("text") for e in stack.tracker(conversation)["events"] if e.get("event") == "user"]
        assert "My bag did not arrive in Krabi" not in heard

        since = _sent_so_far(customer)
        resolved = await agent.post(f"/agent/api/handoffs/{ticket_id}/resolve", json={}, headers=headers)
        assert resolved.status_code == 200, resolved.text
        back = _platform_texts(customer, since)
        assert any("Ploy marked this as solved" in t for t in back), back
        assert any("how would you rate" in t for t in back), back

    # The bot has the conversation again.
    assert reply_text(await customer.say("Is AN204 on time today?")).startswith("AN204 from")
    engine.dispose()
