"""The handoff on the website, through the whole gateway app: the bot goes silent, an agent takes over, hands back.

Against the fake Rasa over real HTTP (it counts every message it receives and pauses a conversation
on the handoff marker like Rasa's ConversationPaused) and the gateway's own SQLite database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tandem.clock import utc_now
from tandem.db.models import AuditLog, HandoffMessage, Ticket, TicketEvent
from tandem.gateway.desk import wants_the_bot
from tandem.settings import GatewayAppSettings

from .conftest import BASE, say, start_session
from .desk_support import DeskDb, csrf, desk_db, login
from .fakes import FakeRasa


@pytest.fixture
def settings(settings_for: Callable[..., GatewayAppSettings]) -> GatewayAppSettings:
    return settings_for(GATEWAY_RATE_LIMIT_ADDRESS="1000/minute", HANDOFF_QUEUE_TIMEOUT=60)


@pytest.fixture
def db(settings: GatewayAppSettings, fake: FakeRasa) -> DeskDb:
    database = desk_db(settings)
    database.add_agent()
    database.add_agent(email="lek@andaman.example", name="Lek")
    fake.on_handoff = database.opener()
    return database


@pytest.fixture
async def customer(settings: GatewayAppSettings, client_for: Any, db: DeskDb) -> httpx.AsyncClient:
    client: httpx.AsyncClient = client_for(settings)
    await start_session(client)
    return client


@pytest.fixture
async def agent(customer: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser on the same gateway: the agent's (its own cookie jar)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=customer.app), base_url=BASE) as client:  # type: ignore[attr-defined]
        yield client


def conversation_of(fake: FakeRasa) -> str:
    return str(fake.requests[-1]["body"]["sender"])


async def hand_over(customer: httpx.AsyncClient, fake: FakeRasa, db: DeskDb) -> tuple[str, int]:
    response = await say(customer, text="human")
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    marker = messages[-1]["custom"]["handoff"]
    assert marker["state"] == "pending"
    with db.sessions() as session:
        [ticket] = session.scalars(select(Ticket).where(Ticket.kind == "handoff", Ticket.status == "queued")).all()
    assert marker["ticket_id"] == ticket.id
    return conversation_of(fake), ticket.id


async def poll(customer: httpx.AsyncClient, after: int = 0) -> dict[str, Any]:
    response = await customer.get("/api/v1/handoff", params={"after": after})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_whole_loop_request_queued_claimed_replies_both_ways_resolved_bot_again(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation, ticket_id = await hand_over(customer, fake, db)
    before = len(fake.requests)
    assert (await poll(customer))["handoff"] == {"state": "pending", "ticket_id": ticket_id, "agent_name": None}

    # While queued: the customer's messages go to the ticket; none reaches Rasa.
    queued_reply = await say(customer, text="Are you there?")
    assert queued_reply.json()["messages"][0]["custom"]["handoff"]["state"] == "pending"
    assert queued_reply.json()["messages"][0]["text"] is None

    token = await login(agent)
    [row] = (await agent.get("/agent/api/handoffs", params={"status": "queued"})).json()["handoffs"]
    assert (row["id"], row["status"], row["channel"], row["reason"]) == (ticket_id, "queued", "website", "user_request")
    assert row["summary"].startswith("reason: user_request")

    claimed = await agent.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=csrf(token))
    assert claimed.status_code == 200, claimed.text
    detail = claimed.json()["handoff"]
    assert (detail["status"], detail["agent_name"]) == ("assigned", "Ploy")
    assert [(m["role"], m["phase"]) for m in detail["transcript"]] == [
        ("customer", "before"),
        ("bot", "before"),
        ("customer", "before"),
        ("customer", "after"),
    ]
    assert detail["transcript"][-1]["text"] == "Are you there?"
    assert detail["slots"] == {"email": "jane.smith@example.com"}  # PII: agents only
    assert (await poll(customer))["handoff"]["state"] == "agent_joined"
    assert (await poll(customer))["handoff"]["agent_name"] == "Ploy"

    # Two replies each way.
    cursor = 0
    for agent_text, customer_text in [("Hi, I'm Ploy. Let me look.", "Thanks!"), ("Found your bag.", "Great")]:
        sent = await agent.post(
            f"/agent/api/handoffs/{ticket_id}/messages", json={"text": agent_text}, headers=csrf(token)
        )
        assert sent.status_code == 201, sent.text
        assert sent.json()["delivered"] is True
        seen = await poll(customer, cursor)
        [message] = seen["messages"]
        assert (message["text"], message["custom"]["agent_name"], message["role"]) == (agent_text, "Ploy", "bot")
        cursor = seen["cursor"]
        assert (await poll(customer, cursor))["messages"] == []  # the cursor moves on
        reply = await say(customer, text=customer_text)
        assert reply.status_code == 200
        assert reply.json()["messages"][0]["custom"]["handoff"]["state"] == "agent_joined"
    assert len(fake.requests) == before, "a message reached Rasa while a person had the conversation"
    transcript = (await agent.get(f"/agent/api/handoffs/{ticket_id}")).json()["handoff"]["transcript"]
    assert [m["text"] for m in transcript if m["phase"] == "after"] == [
        "Are you there?",
        "Hi, I'm Ploy. Let me look.",
        "Thanks!",
        "Found your bag.",
        "Great",
    ]

    # The history (after a reload) has the handoff's messages in order, the agent's labelled.
    history = (await customer.get("/api/v1/history")).json()["messages"]
    texts = [(m["role"], m["text"]) for m in history if m["text"]]
    assert texts[-5:] == [
        ("user", "Are you there?"),
        ("bot", "Hi, I'm Ploy. Let me look."),
        ("user", "Thanks!"),
        ("bot", "Found your bag."),
        ("user", "Great"),
    ]

    resolved = await agent.post(
        f"/agent/api/handoffs/{ticket_id}/resolve", json={"note": "bag found"}, headers=csrf(token)
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["handoff"]["status"] == "resolved" and resolved.json()["bot_messages"] == 3
    assert fake.resumed == [conversation]
    assert fake.triggers[-1] == {
        "sender": conversation,
        "name": "handoff_returned",
        "entities": {"agent_name": "Ploy", "handoff_outcome": "solved"},
    }
    assert (await poll(customer))["handoff"]["state"] == "ended"

    metrics = (await customer.get("/metrics")).text
    assert 'tandem_gateway_handoff_transitions_total{to="assigned"} 1.0' in metrics
    assert 'tandem_gateway_handoff_transitions_total{to="resolved"} 1.0' in metrics
    assert 'tandem_gateway_handoff_messages_total{delivery="stored",role="agent"} 2.0' in metrics
    assert 'tandem_gateway_handoff_messages_total{delivery="stored",role="customer"} 3.0' in metrics

    # The bot answers again.
    again = await say(customer, text="book a flight")
    assert again.json()["messages"][0]["text"] == "Which cabin would you like?"
    assert fake.messages_to(conversation)[-1] == "book a flight"
    with db.sessions() as session:
        events = session.scalars(select(TicketEvent.to_status).where(TicketEvent.ticket_id == ticket_id)).all()
        assert list(events) == ["queued", "assigned", "resolved"]
        actors = session.scalars(select(TicketEvent.actor).where(TicketEvent.ticket_id == ticket_id)).all()
        assert actors[1].startswith("agent:") and actors[0] == "customer"
        # The agents' tools are audited like the bot's (DOMAIN.md: claim, reply, resolve).
        audited = session.execute(select(AuditLog.tool, AuditLog.role, AuditLog.outcome).order_by(AuditLog.id)).all()
        assert [tuple(row) for row in audited] == [
            ("claim_handoff", "agent", "ok"),
            ("reply_handoff", "agent", "ok"),
            ("reply_handoff", "agent", "ok"),
            ("resolve_handoff", "agent", "ok"),
        ]


async def test_a_second_claim_and_a_second_resolve_are_conflicts(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    _, ticket_id = await hand_over(customer, fake, db)
    token = await login(agent)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=customer.app), base_url=BASE) as other:  # type: ignore[attr-defined]
        other_token = await login(other, "lek@andaman.example")
        assert (await agent.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=csrf(token))).status_code == 200
        second = await other.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=csrf(other_token))
        assert (second.status_code, second.json()["error"]["code"]) == (409, "already_assigned")
        # Lek may not answer Ploy's customer.
        foreign = await other.post(
            f"/agent/api/handoffs/{ticket_id}/messages", json={"text": "hi"}, headers=csrf(other_token)
        )
        assert foreign.status_code == 403
    first = await agent.post(f"/agent/api/handoffs/{ticket_id}/resolve", headers=csrf(token))
    assert first.status_code == 200
    twice = await agent.post(f"/agent/api/handoffs/{ticket_id}/resolve", headers=csrf(token))
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "ticket_resolved")
    assert len(fake.resumed) == 1


@pytest.mark.parametrize("text", ["cancel", "Back to the bot please", "never mind"])
async def test_the_customer_goes_back_to_the_bot_while_queued(
    customer: httpx.AsyncClient, fake: FakeRasa, db: DeskDb, text: str
) -> None:
    conversation, ticket_id = await hand_over(customer, fake, db)
    response = await say(customer, text=text)
    messages = response.json()["messages"]
    assert messages[0]["text"].startswith("Okay, I've withdrawn the request")
    assert messages[0]["custom"]["handoff"]["state"] == "ended"
    assert fake.triggers[-1]["name"] == "handoff_cancelled" and fake.resumed == [conversation]
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "cancelled"
    assert (await say(customer, text="book now")).json()["messages"][0]["text"] == "Which cabin would you like?"


async def test_the_widget_button_cancels_and_a_claimed_handoff_is_not_cancelled_by_words(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    _, first = await hand_over(customer, fake, db)
    cancelled = await customer.post("/api/v1/handoff/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["messages"]
    again = await customer.post("/api/v1/handoff/cancel")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_waiting")
    with db.sessions() as session:
        assert session.get_one(Ticket, first).status == "cancelled"

    # A new handoff, claimed: now "cancel" is a message for the agent.
    _, second = await hand_over(customer, fake, db)
    token = await login(agent)
    await agent.post(f"/agent/api/handoffs/{second}/claim", headers=csrf(token))
    before = len(fake.requests)
    await say(customer, text="cancel")
    assert len(fake.requests) == before
    with db.sessions() as session:
        assert session.get_one(Ticket, second).status == "assigned"
        assert session.scalars(select(HandoffMessage.text).where(HandoffMessage.ticket_id == second)).all() == [
            "cancel"
        ]


async def test_no_agent_in_time_the_customer_is_told_and_the_bot_resumes(
    customer: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation, ticket_id = await hand_over(customer, fake, db)
    desk = customer.app.state.desk  # type: ignore[attr-defined]
    assert await desk.sweep() == 0  # not yet
    later = utc_now() + timedelta(seconds=61)
    desk.clock = lambda: later
    assert await desk.sweep() == 1
    assert fake.triggers[-1]["name"] == "handoff_expired" and fake.resumed == [conversation]
    with db.sessions() as session:
        ticket = session.get_one(Ticket, ticket_id)
        assert ticket.status == "expired" and ticket.ended_at is not None  # kept for the e-mail follow-up
    assert (await poll(customer))["handoff"]["state"] == "ended"
    assert (await say(customer, text="book")).json()["messages"][0]["text"] == "Which cabin would you like?"


async def test_a_message_past_the_timeout_is_kept_and_the_customer_told_at_once(
    customer: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    _, ticket_id = await hand_over(customer, fake, db)
    later = utc_now() + timedelta(seconds=61)
    customer.app.state.desk.clock = lambda: later  # type: ignore[attr-defined]
    response = await say(customer, text="still waiting?")
    assert response.json()["messages"][0]["text"].startswith("I'm sorry, none of our agents is free")
    with db.sessions() as session:
        assert session.get_one(Ticket, ticket_id).status == "expired"
        assert session.scalars(select(HandoffMessage.text)).all() == ["still waiting?"]


async def test_rasa_down_at_hand_back_is_retried_before_the_next_message(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation, ticket_id = await hand_over(customer, fake, db)
    token = await login(agent)
    await agent.post(f"/agent/api/handoffs/{ticket_id}/claim", headers=csrf(token))
    fake.mode = "unavailable"
    resolved = await agent.post(f"/agent/api/handoffs/{ticket_id}/resolve", headers=csrf(token))
    assert resolved.status_code == 200 and resolved.json()["bot_messages"] == 0
    assert conversation in fake.paused
    fake.mode = "ok"
    reply = await say(customer, text="book")
    assert conversation not in fake.paused and fake.triggers[-1]["name"] == "handoff_returned"
    assert reply.json()["messages"][0]["text"] == "Which cabin would you like?"


def test_what_counts_as_going_back_to_the_bot() -> None:
    for text in ["cancel", "Cancel.", "cancel please", "back to the bot", "take me back to the assistant", "nevermind"]:
        assert wants_the_bot(text), text
    for text in ["I want to cancel my booking XK93PQ", "please don't cancel", "the bot was useless", "no"]:
        assert not wants_the_bot(text), text


async def test_bad_parameters_get_the_one_error_shape(customer: httpx.AsyncClient, agent: httpx.AsyncClient) -> None:
    await login(agent)
    for client, path in [
        (agent, "/agent/api/handoffs/not-a-number"),
        (agent, "/agent/api/handoffs?limit=lots"),
        (customer, "/api/v1/handoff?after=-1"),
        (customer, "/api/v1/handoff?after=99999999999999999999999"),
    ]:
        response = await client.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {
            "error": {
                "code": "invalid_parameters",
                "message": "A parameter of the request is missing or invalid.",
                "retry_after": None,
            }
        }
    unknown = await agent.get("/agent/api/handoffs", params={"status": "everything"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (400, "invalid")
