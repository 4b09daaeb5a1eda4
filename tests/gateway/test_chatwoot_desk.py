"""HELPDESK=chatwoot through the whole gateway app: each handoff mirrored in the fake Chatwoot, its
agents' replies and resolutions coming back through the webhook.

The gateway talks to the fake Rasa and the fake Chatwoot API over real HTTP; the fake Rasa's
``on_handoff`` hook opens the ticket in the gateway's database as ``action_handoff`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tandem.db.models import HandoffMessage, Ticket, TicketEvent
from tandem.gateway.chatwoot_routes import WEBHOOK_PATH
from tandem.gateway.helpdesk.chatwoot import ChatwootDesk, contact_name, ended_note
from tandem.settings import GatewayAppSettings
from tests.fakes.chatwoot_api import ACCOUNT_ID, CHATWOOT_TOKEN, INBOX_ID, FakeChatwoot
from tests.fakes.chatwoot_fixtures import (  # noqa: F401 (fixtures)
    _chatwoot_server,
    chatwoot_api,
    chatwoot_base_url,
    message_created_payload,
    status_changed_payload,
)

from .conftest import say, start_session
from .desk_support import DeskDb, desk_db
from .fakes import FakeRasa

WEBHOOK_SECRET = "cw-desk-webhook-secret-0123456789"
WEBHOOK = WEBHOOK_PATH.format(secret=WEBHOOK_SECRET)
# Message ids of the agent's replies in these payloads: far above the fake's own (from 1001).
AGENT_MESSAGE_ID = 990_001


@pytest.fixture
def settings(
    settings_for: Callable[..., GatewayAppSettings],
    chatwoot_base_url: str,  # noqa: F811 (a fixture)
) -> GatewayAppSettings:
    return settings_for(
        HELPDESK="chatwoot",
        CHATWOOT_BASE_URL=chatwoot_base_url,
        CHATWOOT_API_TOKEN=CHATWOOT_TOKEN,
        CHATWOOT_ACCOUNT_ID=ACCOUNT_ID,
        CHATWOOT_INBOX_ID=INBOX_ID,
        CHATWOOT_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )


@pytest.fixture
def db(settings: GatewayAppSettings, fake: FakeRasa) -> DeskDb:
    database = desk_db(settings)
    fake.on_handoff = database.opener()
    return database


@pytest.fixture
async def customer(
    settings: GatewayAppSettings,
    client_for: Any,
    db: DeskDb,
    chatwoot_api: FakeChatwoot,  # noqa: F811 (a fixture)
) -> httpx.AsyncClient:
    client: httpx.AsyncClient = client_for(settings)
    assert isinstance(client.app.state.desk.helpdesk, ChatwootDesk)  # type: ignore[attr-defined]
    await start_session(client)
    return client


async def hand_over(customer: httpx.AsyncClient, fake: FakeRasa, db: DeskDb) -> tuple[str, int, int]:
    """The customer asks for a person: (the conversation, the ticket, Chatwoot's conversation id)."""
    response = await say(customer, text="human")
    assert response.status_code == 200, response.text
    assert response.json()["messages"][-1]["custom"]["handoff"]["state"] == "pending"
    conversation = str(fake.requests[-1]["body"]["sender"])
    with db.sessions() as session:
        [ticket] = session.scalars(select(Ticket).where(Ticket.kind == "handoff", Ticket.status == "queued")).all()
    assert ticket.desk_ref is not None and ticket.desk_ref.isdigit(), "the handoff was not opened in Chatwoot"
    return conversation, ticket.id, int(ticket.desk_ref)


async def poll(customer: httpx.AsyncClient, after: int = 0) -> dict[str, Any]:
    response = await customer.get("/api/v1/handoff", params={"after": after})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def webhook(customer: httpx.AsyncClient, payload: dict[str, Any], path: str = WEBHOOK) -> httpx.Response:
    return await customer.post(path, json=payload)


def agent_reply(conversation_id: int, text: str, message_id: int = AGENT_MESSAGE_ID) -> dict[str, Any]:
    return message_created_payload(
        message_id=message_id,
        conversation_id=conversation_id,
        content=text,
        message_type="outgoing",
        private=False,
        sender_type="user",
        sender_name="Ploy",
    )


async def test_a_handoff_in_chatwoot_from_the_request_to_the_hand_back(
    customer: httpx.AsyncClient,
    fake: FakeRasa,
    db: DeskDb,
    chatwoot_api: FakeChatwoot,  # noqa: F811 (a fixture)
) -> None:
    conversation, ticket_id, cw_id = await hand_over(customer, fake, db)

    # Chatwoot got a contact, a conversation in our inbox and ONE private note.
    [contact] = chatwoot_api.contacts.values()
    assert (contact["identifier"], contact["name"]) == (conversation, contact_name(conversation))
    [cw_conversation] = chatwoot_api.conversations.values()
    assert (cw_conversation["id"], cw_conversation["inbox_id"], cw_conversation["status"]) == (cw_id, INBOX_ID, "open")
    assert cw_conversation["contact_id"] == contact["id"]
    assert cw_conversation["custom_attributes"]["tandem_ticket_id"] == ticket_id
    assert cw_conversation["custom_attributes"]["channel"] == "website"
    [note] = chatwoot_api.messages_in(cw_id)
    assert note["private"] is True
    assert "reason: user_request; topics: out_of_scope; active form: none" in note["content"]  # the summary
    for line in ("my bag did not arrive", "I'm having trouble helping with this.", "human please"):
        assert line in note["content"]  # the transcript
    assert "jane.smith@example.com" not in note["content"]  # slots stay in the console

    # The customer's next message: an incoming message in Chatwoot, nothing to Rasa.
    to_rasa = len(fake.requests)
    waiting = await say(customer, text="Are you there?")
    assert waiting.status_code == 200
    assert waiting.json()["messages"][0]["custom"]["handoff"]["state"] == "pending"
    assert len(fake.requests) == to_rasa
    incoming = chatwoot_api.messages_in(cw_id)[-1]
    assert (incoming["content"], incoming["message_type"], incoming["private"]) == ("Are you there?", 0, False)

    # Ploy answers in Chatwoot: the ticket is hers, the customer reads it labelled with her name.
    answer = await webhook(customer, agent_reply(cw_id, "Hi, I'm Ploy. Let me look."))
    assert answer.status_code == 200, answer.text
    with db.sessions() as session:
        ticket = session.get_one(Ticket, ticket_id)
        assert (ticket.status, ticket.agent_name) == ("assigned", "Ploy")
    seen = await poll(customer)
    assert seen["handoff"] == {"state": "agent_joined", "ticket_id": ticket_id, "agent_name": "Ploy"}
    [message] = seen["messages"]
    assert (message["text"], message["role"], message["custom"]["agent_name"]) == (
        "Hi, I'm Ploy. Let me look.",
        "bot",
        "Ploy",
    )

    # Chatwoot delivers the same webhook again: still one message.
    again = await webhook(customer, agent_reply(cw_id, "Hi, I'm Ploy. Let me look."))
    assert again.status_code == 200
    assert len((await poll(customer))["messages"]) == 1
    with db.sessions() as session:
        agent_messages = session.scalars(
            select(HandoffMessage).where(HandoffMessage.ticket_id == ticket_id, HandoffMessage.role == "agent")
        ).all()
        assert [m.text for m in agent_messages] == ["Hi, I'm Ploy. Let me look."]
    assert len(fake.requests) == to_rasa

    # Resolved in Chatwoot: the hand-back.
    notes_before = len(chatwoot_api.messages)
    resolved = await webhook(customer, status_changed_payload(conversation_id=cw_id, assignee_name="Ploy"))
    assert resolved.status_code == 200, resolved.text
    assert fake.resumed == [conversation]
    assert fake.triggers[-1] == {
        "sender": conversation,
        "name": "handoff_returned",
        "entities": {"agent_name": "Ploy", "handoff_outcome": "solved"},
    }
    assert (await poll(customer))["handoff"]["state"] == "ended"
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "resolved"
        transitions = session.scalars(
            select(TicketEvent.to_status).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
        ).all()
        assert list(transitions) == ["queued", "assigned", "resolved"]
    # Chatwoot resolved it itself: nothing is posted back, and a redelivery does nothing.
    assert len(chatwoot_api.messages) == notes_before and chatwoot_api.toggles == []
    assert (await webhook(customer, status_changed_payload(conversation_id=cw_id))).status_code == 200
    assert fake.resumed == [conversation]

    # The bot answers again.
    back = await say(customer, text="book a flight")
    assert back.json()["messages"][0]["text"] == "Which cabin would you like?"


async def test_a_customer_cancel_while_queued_resolves_the_chatwoot_conversation(
    customer: httpx.AsyncClient,
    fake: FakeRasa,
    db: DeskDb,
    chatwoot_api: FakeChatwoot,  # noqa: F811 (a fixture)
) -> None:
    conversation, ticket_id, cw_id = await hand_over(customer, fake, db)
    response = await say(customer, text="cancel")
    assert response.status_code == 200
    assert response.json()["messages"][0]["custom"]["handoff"]["state"] == "ended"
    assert fake.triggers[-1]["name"] == "handoff_cancelled" and fake.resumed == [conversation]
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "cancelled"
    note = chatwoot_api.messages_in(cw_id)[-1]
    assert (note["private"], note["content"]) == (True, ended_note("cancelled"))
    assert "cancel" not in [m["content"] for m in chatwoot_api.messages_in(cw_id)]  # not posted as a message
    assert chatwoot_api.toggles == [{"conversation_id": cw_id, "from": "open", "to": "resolved"}]
    assert chatwoot_api.conversations[cw_id]["status"] == "resolved"
    # Chatwoot's webhook of that change is our own echo: no second hand-back.
    echo = await webhook(customer, status_changed_payload(conversation_id=cw_id))
    assert echo.status_code == 200
    assert fake.resumed == [conversation]


async def test_the_webhook_with_a_wrong_secret_is_not_found(
    customer: httpx.AsyncClient,
    fake: FakeRasa,
    db: DeskDb,
    chatwoot_api: FakeChatwoot,  # noqa: F811 (a fixture)
) -> None:
    _, ticket_id, cw_id = await hand_over(customer, fake, db)
    for secret in ("cw-desk-webhook-secret-0123456788", "x" * 40, WEBHOOK_SECRET[:-1]):
        response = await webhook(customer, agent_reply(cw_id, "forged"), WEBHOOK_PATH.format(secret=secret))
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert (await customer.get(WEBHOOK)).status_code == 404  # only POST, and it looks like no route at all
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "queued"
    assert (await poll(customer))["messages"] == []
