"""Sample conversation 9 on Slack and Telegram: "I want a human" → a ticket, the bot goes silent, an
agent replies on the platform, the bot comes back; and a refund approval announced on Slack.

Through the real gateway app (both doors on), the fake Rasa over HTTP (it pauses a conversation on
the handoff marker and counts what it receives), the fake Slack Web API and Telegram Bot API (they
record what was posted), the gateway's own SQLite database, and a second client for the agent.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tandem.clock import utc_now
from tandem.db.models import Booking, HandoffMessage, Ticket
from tandem.services.bookings import cancel_booking
from tandem.settings import BusinessSettings
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.gateway.conftest import BASE
from tests.gateway.desk_support import DeskDb, csrf, desk_db, login
from tests.gateway.fakes import RATING_BUTTONS, FakeRasa, default_script

from . import test_doors
from .test_doors import message, settle, slack_event, telegram_post, update

# The door tests' fixtures: the app with both doors on (over the fakes) and its settings.
door_settings = test_doors.door_settings
gateway = test_doors.gateway

JOINED = "Ploy from our support team has joined the conversation."
SOLVED = "Ploy marked this as solved. Is there anything else I can help you with?"
RATE = "Before you go: how would you rate this conversation?"
WITHDRAWN = "Okay, I've withdrawn the request for an agent. I'm back: how can I help?"
RATINGS = [b["title"] for b in RATING_BUTTONS]


class SlackCustomer:
    """A Slack user writing to the bot in a DM, or by @-mentions in a channel thread."""

    channel_name = "slack"

    def __init__(self, client: httpx.AsyncClient, api: FakeSlack, *, thread: bool) -> None:
        self.client, self.api, self.thread = client, api, thread
        self.channel = "C77" if thread else "D42"
        self.root: str | None = None  # the thread the bot answers in (the first mention)
        self._n = itertools.count(1)

    @property
    def address(self) -> dict[str, Any]:
        return {"channel": self.channel, "thread_ts": self.root}

    async def says(self, text: str) -> None:
        n = next(self._n)
        ts = f"1700005000.{n:06d}"
        if self.thread:
            event: dict[str, Any] = {"type": "app_mention", "text": f"<@UBOT> {text}"}
            if self.root is None:
                self.root = ts
            else:
                event["thread_ts"] = self.root
        else:
            event = {"type": "message", "channel_type": "im", "text": text}
        event.update(channel=self.channel, user="U111", ts=ts)
        body = {"type": "event_callback", "team_id": "T123", "event_id": f"EvH{n}", "event": event}
        assert (await slack_event(self.client, body)).status_code == 200
        await settle(self.client)

    def said(self) -> list[str]:
        """Every message posted to this customer, each in their channel and thread."""
        for post in self.api.posted:
            assert (post["channel"], post.get("thread_ts")) == (self.channel, self.root), post
        return [post["text"] for post in self.api.posted]

    def buttons(self, index: int) -> list[str]:
        post = self.api.posted[index]
        return [e["text"]["text"] for b in post.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]

    def platform_fails(self, failing: bool) -> None:
        self.api.fail_with = "channel_not_found" if failing else None  # HTTP 200, ok: false


class TelegramCustomer:
    """A Telegram user (77) in a private chat (501) with the bot."""

    channel_name = "telegram"
    address: dict[str, Any] = {"chat_id": 501}  # noqa: RUF012

    def __init__(self, client: httpx.AsyncClient, api: FakeTelegram) -> None:
        self.client, self.api = client, api
        self._ids = itertools.count(9000)

    async def says(self, text: str) -> None:
        assert (await telegram_post(self.client, update(next(self._ids), message=message(text)))).status_code == 200
        await settle(self.client)

    async def clicks(self, callback_data: str, message_id: int) -> str:
        query = f"cq{next(self._ids)}"
        click = update(next(self._ids), callback_query={
            "id": query, "from": {"id": 77, "is_bot": False, "first_name": "Ann"}, "data": callback_data,
            "message": {"message_id": message_id, "date": 1, "chat": {"id": 501, "type": "private"}},
        })  # fmt: skip
        assert (await telegram_post(self.client, click)).status_code == 200
        await settle(self.client)
        return query

    def said(self) -> list[str]:
        for sent in self.api.sent:
            assert sent["chat_id"] == 501, sent
        return [sent["text"] for sent in self.api.sent]

    def buttons(self, index: int) -> list[str]:
        markup = self.api.sent[index].get("reply_markup") or {"inline_keyboard": []}
        return [button["text"] for row in markup["inline_keyboard"] for button in row]

    def platform_fails(self, failing: bool) -> None:
        # 429 with a retry_after beyond the client's longest wait: refused at once, not retried.
        self.api.rate_limit(1 if failing else 0, retry_after=60)


Customer = SlackCustomer | TelegramCustomer


@dataclass
class Console:
    """A logged-in agent console (its own client and cookie on the same app)."""

    client: httpx.AsyncClient
    token: str

    async def post(self, path: str, **body: Any) -> httpx.Response:
        return await self.client.post(f"/agent/api/{path}", json=body or None, headers=csrf(self.token))

    async def transcript_since(self, ticket_id: int) -> list[tuple[str, str]]:
        detail = (await self.client.get(f"/agent/api/handoffs/{ticket_id}")).json()["handoff"]
        return [(m["role"], m["text"]) for m in detail["transcript"] if m["phase"] == "after"]


@pytest.fixture
def db(door_settings: Any, fake: FakeRasa) -> DeskDb:
    database = desk_db(door_settings())  # the same database file as the gateway's (one per test)
    database.add_agent()
    return database


@pytest.fixture
async def console(gateway: httpx.AsyncClient, db: DeskDb) -> AsyncIterator[Console]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app), base_url=BASE) as client:  # type: ignore[attr-defined]
        yield Console(client, await login(client))


@pytest.fixture(params=["slack_dm", "slack_thread", "telegram"])
def customer(
    request: pytest.FixtureRequest,
    gateway: httpx.AsyncClient,
    slack_api: FakeSlack,
    telegram_api: FakeTelegram,
    fake: FakeRasa,
    db: DeskDb,
) -> Customer:
    person: Customer = (
        TelegramCustomer(gateway, telegram_api)
        if request.param == "telegram"
        else SlackCustomer(gateway, slack_api, thread=request.param == "slack_thread")
    )
    fake.on_handoff = db.opener(person.channel_name)
    return person


def ticket(db: DeskDb, ticket_id: int) -> Ticket:
    with db.sessions() as session:
        return session.get_one(Ticket, ticket_id)


def handoff_messages(db: DeskDb, ticket_id: int) -> list[tuple[str, str]]:
    with db.sessions() as session:
        rows = session.execute(
            select(HandoffMessage.role, HandoffMessage.text)
            .where(HandoffMessage.ticket_id == ticket_id)
            .order_by(HandoffMessage.id)
        ).all()
    return [(role, text) for role, text in rows]


async def hand_over(customer: Customer, fake: FakeRasa, db: DeskDb) -> tuple[str, int]:
    """The customer asks for a human: the conversation id and the ticket the fake Rasa opened."""
    await customer.says("human")
    conversation = str(fake.requests[-1]["body"]["sender"])
    with db.sessions() as session:
        [ticket_id] = session.scalars(select(Ticket.id).where(Ticket.conversation_id == conversation)).all()
    return conversation, ticket_id


async def test_conversation_9_human_handoff_on_the_platform(
    customer: Customer, console: Console, fake: FakeRasa, db: DeskDb
) -> None:
    conversation, ticket_id = await hand_over(customer, fake, db)
    # The bot's text is posted; its marker is not rendered. The ticket knows where the customer is.
    assert customer.said() == [f"I've passed your conversation to our support team (ticket #{ticket_id})."]
    row = ticket(db, ticket_id)
    assert (row.status, row.channel, row.address) == ("queued", customer.channel_name, customer.address)

    # Queued: the message goes to the ticket, not to Rasa, and nothing is posted back.
    await customer.says("Are you there?")
    assert handoff_messages(db, ticket_id) == [("customer", "Are you there?")]
    assert len(customer.said()) == 1

    claimed = await console.post(f"handoffs/{ticket_id}/claim")
    assert claimed.status_code == 200, claimed.text
    assert customer.said()[1:] == [JOINED]

    # Assigned: the same, now for the agent.
    await customer.says("My bag did not arrive")
    assert handoff_messages(db, ticket_id)[-1] == ("customer", "My bag did not arrive")
    assert len(customer.said()) == 2

    for text in ["Hi, I'm Ploy. Let me look.", "Found it: bag & tag <B7>"]:
        sent = await console.post(f"handoffs/{ticket_id}/messages", text=text)
        assert sent.status_code == 201, sent.text
        assert sent.json()["delivered"] is True
    # In order, labelled, escaped for the platform's markup.
    assert customer.said()[2:] == ["Ploy: Hi, I'm Ploy. Let me look.", "Ploy: Found it: bag &amp; tag &lt;B7&gt;"]

    # The platform refuses: not delivered, but kept on the ticket.
    customer.platform_fails(True)
    refused = await console.post(f"handoffs/{ticket_id}/messages", text="Are you still with me?")
    customer.platform_fails(False)
    assert refused.status_code == 201, refused.text
    assert refused.json()["delivered"] is False
    assert len(customer.said()) == 4
    assert await console.transcript_since(ticket_id) == [
        ("customer", "Are you there?"),
        ("customer", "My bag did not arrive"),
        ("agent", "Hi, I'm Ploy. Let me look."),
        ("agent", "Found it: bag & tag <B7>"),
        ("agent", "Are you still with me?"),
    ]
    assert fake.messages_to(conversation) == ["human"]  # nothing reached Rasa while a person had it

    # Resolved: the bot says so on the platform, with the rating buttons.
    resolved = await console.post(f"handoffs/{ticket_id}/resolve")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["bot_messages"] == 3
    assert fake.resumed == [conversation]
    assert fake.triggers == [
        {
            "sender": conversation,
            "name": "handoff_returned",
            "entities": {"agent_name": "Ploy", "handoff_outcome": "solved"},
        }
    ]
    assert customer.said()[4:] == [SOLVED, RATE]
    assert (customer.buttons(4), customer.buttons(5)) == ([], RATINGS)

    # The bot has the conversation again.
    await customer.says("book a flight")
    assert fake.messages_to(conversation) == ["human", "book a flight"]
    assert customer.said()[6:] == ["Which cabin would you like?"]
    assert len(handoff_messages(db, ticket_id)) == 5


async def test_cancel_typed_while_queued_gives_the_conversation_back_to_the_bot(
    customer: Customer, fake: FakeRasa, db: DeskDb
) -> None:
    conversation, ticket_id = await hand_over(customer, fake, db)
    await customer.says("cancel")
    assert ticket(db, ticket_id).status == "cancelled"
    assert fake.resumed == [conversation] and [t["name"] for t in fake.triggers] == ["handoff_cancelled"]
    assert set(customer.said()[1:]) == {WITHDRAWN}  # posted: see the next test for how often
    assert handoff_messages(db, ticket_id) == []
    await customer.says("book a flight")
    assert fake.messages_to(conversation) == ["human", "book a flight"]
    assert customer.said()[-1] == "Which cabin would you like?"


async def test_the_bot_s_answer_to_cancel_is_posted_once(customer: Customer, fake: FakeRasa, db: DeskDb) -> None:
    await hand_over(customer, fake, db)
    await customer.says("cancel")
    assert customer.said()[1:] == [WITHDRAWN]


async def test_telegram_the_hand_back_rating_buttons_work(
    gateway: httpx.AsyncClient, console: Console, fake: FakeRasa, db: DeskDb, telegram_api: FakeTelegram
) -> None:
    fake.on_handoff = db.opener("telegram")
    customer = TelegramCustomer(gateway, telegram_api)
    conversation, ticket_id = await hand_over(customer, fake, db)
    assert (await console.post(f"handoffs/{ticket_id}/claim")).status_code == 200
    assert (await console.post(f"handoffs/{ticket_id}/resolve")).status_code == 200
    assert customer.said()[-2:] == [SOLVED, RATE]
    rating = telegram_api.sent[-1]
    five = rating["reply_markup"]["inline_keyboard"][4][0]
    assert five["text"] == "5" and not five["callback_data"].startswith("/")  # an opaque id

    query = await customer.clicks(five["callback_data"], rating["message_id"])
    assert query in {a["callback_query_id"] for a in telegram_api.answers}
    assert fake.messages_to(conversation) == ["human", '/rate{"rating": 5}']
    assert customer.said()[-2:] == ["You chose: 5", 'Got /rate{"rating": 5}']
    assert telegram_api.keyboards[(501, rating["message_id"])] is None  # the keyboard is gone


async def test_a_refund_approval_is_announced_and_decided_on_slack(
    gateway: httpx.AsyncClient, console: Console, fake: FakeRasa, db: DeskDb, slack_api: FakeSlack
) -> None:
    customer = SlackCustomer(gateway, slack_api, thread=False)
    await customer.says("hello")
    conversation = str(fake.requests[-1]["body"]["sender"])
    # What the bot's cancel_booking tool does for a refund above the threshold.
    with db.sessions.begin() as session:
        pending = cancel_booking(
            session,
            reference="XK93PQ",
            last_name="Tanaka",
            settings=BusinessSettings(_env_file=None),  # type: ignore[call-arg]
            now=utc_now(),
            conversation_id=conversation,
            channel="slack",
        )
    assert pending.status == "pending_approval" and pending.ticket_id is not None
    approval_id = pending.ticket_id
    announced: list[dict[str, Any]] = [
        {"text": "Your refund needs an agent's approval; I'll tell you here."},
        {"custom": {"approval": {"state": "pending", "ticket_id": approval_id}}},
    ]
    fake.script = lambda text: announced if text == "cancel XK93PQ" else default_script(text)
    await customer.says("cancel XK93PQ")
    assert customer.said()[1:] == ["Your refund needs an agent's approval; I'll tell you here."]  # not the marker
    assert ticket(db, approval_id).address == {"channel": "D42", "thread_ts": None}

    approved = await console.post(f"approvals/{approval_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["notified"] is True
    assert approved.json()["approval"]["status"] == "approved"
    assert fake.triggers == [
        {
            "sender": conversation,
            "name": "refund_decided",
            "entities": {
                "refund_decision": "approved",
                "booking_ref": "XK93PQ",
                "refund_amount": f"{pending.refund_amount:.2f}",
                "currency": pending.currency,
            },
        }
    ]
    assert customer.said()[2:] == ["Refund approved for XK93PQ."]
    with db.sessions() as session:
        booking = session.scalars(select(Booking).where(Booking.reference == "XK93PQ")).one()
        assert (booking.status, booking.refund_amount) == ("cancelled", pending.refund_amount)
