"""Refund approvals through the agent console's API: the queue, approve, deny, and telling the customer.

A cancellation whose refund is above ``REFUND_APPROVAL_THRESHOLD`` leaves the booking
``cancellation_pending`` with a ``refund_approval`` ticket (tandem.services.bookings.cancel_booking,
called here as the action server calls it, on the seeded demo bookings of the gateway's database).
The ticket's conversation is a real website conversation of the app (the id the fake Rasa saw), so
the decision's notice (``trigger_intent refund_decided``) can be checked end to end.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tandem.clock import utc_now
from tandem.db.models import Booking, Flight, Ticket, TicketEvent
from tandem.services.bookings import CancellationResult, cancel_booking
from tandem.settings import BusinessSettings, GatewayAppSettings

from .conftest import BASE, say, start_session
from .desk_support import DeskDb, csrf, desk_db, login
from .fakes import FakeRasa


@pytest.fixture
def settings(settings_for: Callable[..., GatewayAppSettings]) -> GatewayAppSettings:
    return settings_for(AGENT_LOGIN_RATE_LIMIT="100/minute")


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
async def agent(customer: httpx.AsyncClient) -> Any:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=customer.app), base_url=BASE) as client:  # type: ignore[attr-defined]
        yield client


async def conversation_of(customer: httpx.AsyncClient, fake: FakeRasa) -> str:
    """The website conversation's id, as Rasa (and so the action server) knows it."""
    response = await say(customer, text="I want to cancel my booking")
    assert response.status_code == 200, response.text
    return str(fake.requests[-1]["body"]["sender"])


def pending(db: DeskDb, conversation_id: str, reference: str, last_name: str, **business: Any) -> CancellationResult:
    """Ask to cancel like action_cancel_booking does: above the threshold, a refund_approval ticket."""
    settings = BusinessSettings(_env_file=None, **business)  # type: ignore[call-arg]
    with db.sessions.begin() as session:
        result = cancel_booking(
            session,
            reference=reference,
            last_name=last_name,
            settings=settings,
            now=utc_now(),
            conversation_id=conversation_id,
            channel="website",
        )
    assert result.status == "pending_approval" and result.ticket_id is not None, result
    return result


def booking(db: DeskDb, reference: str) -> Booking:
    with db.sessions() as session:
        return session.scalars(select(Booking).where(Booking.reference == reference)).one()


def seats(db: DeskDb, reference: str) -> tuple[int, int]:
    """(economy, business) seats on sale on the booking's flight."""
    with db.sessions() as session:
        flight = session.get_one(Flight, booking(db, reference).flight_id)
        return flight.seats_economy, flight.seats_business


def events(db: DeskDb, ticket_id: int | None) -> list[tuple[str | None, str, str]]:
    with db.sessions() as session:
        rows = session.scalars(select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id))
        return [(row.from_status, row.to_status, row.actor) for row in rows]


async def approvals(agent: httpx.AsyncClient, status: str) -> list[dict[str, Any]]:
    response = await agent.get("/agent/api/approvals", params={"status": status})
    assert response.status_code == 200, response.text
    return list(response.json()["approvals"])


async def test_approve_cancels_with_the_quoted_refund_and_tells_the_customer(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation = await conversation_of(customer, fake)
    economy, business = seats(db, "XK93PQ")
    quoted = pending(db, conversation, "XK93PQ", "Tanaka")
    assert quoted.refund_amount > Decimal("20000")  # the default threshold: this one needs an agent
    held = booking(db, "XK93PQ")
    assert (held.status, held.refund_amount) == ("cancellation_pending", quoted.refund_amount)
    assert seats(db, "XK93PQ") == (economy, business)  # held until an agent decides

    token = await login(agent)
    [row] = await approvals(agent, "queued")
    assert row["id"] == quoted.ticket_id
    assert (row["status"], row["booking_reference"], row["currency"], row["channel"]) == (
        "queued",
        "XK93PQ",
        held.currency,
        "website",
    )
    assert row["refund"] == f"{held.refund_amount:.2f}" and Decimal(row["refund"]) == quoted.refund_amount
    assert row["refund"].count(".") == 1 and len(row["refund"].split(".")[1]) == 2  # a decimal string
    assert "XK93PQ" in row["summary"] and row["decided_at"] is None and row["agent_name"] is None

    approved = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/approve", headers=csrf(token))
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["notified"] is True
    assert (body["approval"]["status"], body["approval"]["agent_name"]) == ("approved", "Ploy")
    assert body["approval"]["refund"] == row["refund"] and body["approval"]["decided_at"]

    done = booking(db, "XK93PQ")
    assert (done.status, done.refund_amount) == ("cancelled", quoted.refund_amount)
    assert done.cancelled_at is not None
    assert seats(db, "XK93PQ") == (economy, business + held.passengers)  # business, 2 passengers: back on sale
    with db.sessions() as session:
        ticket = session.get_one(Ticket, quoted.ticket_id)
        assert (ticket.status, ticket.agent_name) == ("approved", "Ploy") and ticket.ended_at is not None
    [(from_status, to_status, actor)] = events(db, quoted.ticket_id)
    assert (from_status, to_status) == ("queued", "approved") and actor.startswith("agent:")

    assert fake.triggers[-1] == {
        "sender": conversation,
        "name": "refund_decided",
        "entities": {
            "refund_decision": "approved",
            "booking_ref": "XK93PQ",
            "refund_amount": row["refund"],
            "currency": held.currency,
        },
    }
    # The bot said it in the customer's conversation (the website's history).
    history = (await customer.get("/api/v1/history")).json()["messages"]
    assert any(m["text"] == "Refund approved for XK93PQ." for m in history)

    assert await approvals(agent, "queued") == []
    assert [a["id"] for a in await approvals(agent, "approved")] == [quoted.ticket_id]

    # Decided: a second decision, either way, is a conflict, and changes nothing.
    triggers = len(fake.triggers)
    for verb in ("approve", "deny"):
        again = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/{verb}", headers=csrf(token))
        assert (again.status_code, again.json()["error"]["code"]) == (409, "already_decided"), verb
    assert len(fake.triggers) == triggers
    assert booking(db, "XK93PQ").status == "cancelled"
    assert seats(db, "XK93PQ") == (economy, business + held.passengers)  # not released twice
    assert len(events(db, quoted.ticket_id)) == 1


async def test_deny_keeps_the_booking(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation = await conversation_of(customer, fake)
    before = seats(db, "AB12CD")
    # AB12CD's refund is small: with a threshold of 0 it needs an agent too.
    quoted = pending(db, conversation, "AB12CD", "Smith", REFUND_APPROVAL_THRESHOLD="0")
    assert quoted.refund_amount > 0
    currency = booking(db, "AB12CD").currency
    token = await login(agent, "lek@andaman.example")
    [row] = await approvals(agent, "queued")
    assert (row["id"], row["booking_reference"], row["refund"]) == (
        quoted.ticket_id,
        "AB12CD",
        f"{quoted.refund_amount:.2f}",
    )

    denied = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/deny", headers=csrf(token))
    assert denied.status_code == 200, denied.text
    assert denied.json()["notified"] is True
    assert (denied.json()["approval"]["status"], denied.json()["approval"]["agent_name"]) == ("denied", "Lek")
    kept = booking(db, "AB12CD")
    assert (kept.status, kept.refund_amount, kept.cancelled_at) == ("confirmed", None, None)
    assert seats(db, "AB12CD") == before
    [(from_status, to_status, actor)] = events(db, quoted.ticket_id)
    assert (from_status, to_status) == ("queued", "denied") and actor.startswith("agent:")
    trigger = fake.triggers[-1]
    assert (trigger["sender"], trigger["name"]) == (conversation, "refund_decided")
    assert trigger["entities"]["refund_decision"] == "denied"
    assert (trigger["entities"]["booking_ref"], trigger["entities"]["currency"]) == ("AB12CD", currency)
    assert [a["id"] for a in await approvals(agent, "denied")] == [quoted.ticket_id]
    assert await approvals(agent, "queued") == []
    for verb in ("approve", "deny"):
        again = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/{verb}", headers=csrf(token))
        assert (again.status_code, again.json()["error"]["code"]) == (409, "already_decided"), verb
    assert booking(db, "AB12CD").status == "confirmed"


async def test_rasa_down_during_the_notice_the_decision_stands(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation = await conversation_of(customer, fake)
    quoted = pending(db, conversation, "XK93PQ", "Tanaka")
    token = await login(agent)
    fake.mode = "unavailable"
    approved = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/approve", headers=csrf(token))
    assert approved.status_code == 200, approved.text
    assert approved.json()["notified"] is False
    assert approved.json()["approval"]["status"] == "approved"
    fake.mode = "ok"
    assert booking(db, "XK93PQ").status == "cancelled"
    with db.sessions() as session:
        assert session.get_one(Ticket, quoted.ticket_id).status == "approved"
    again = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/approve", headers=csrf(token))
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_decided")


async def test_a_handoff_ticket_is_not_an_approval(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation = await conversation_of(customer, fake)
    handoff_id = db.open_ticket(conversation)
    token = await login(agent)
    for verb in ("approve", "deny"):
        response = await agent.post(f"/agent/api/approvals/{handoff_id}/{verb}", headers=csrf(token))
        assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found"), verb
        missing = await agent.post(f"/agent/api/approvals/999999/{verb}", headers=csrf(token))
        assert missing.status_code == 404
    with db.sessions() as session:
        assert session.get_one(Ticket, handoff_id).status == "queued"
    assert await approvals(agent, "queued") == []  # handoffs are not listed as approvals
    assert not [t for t in fake.triggers if t["name"] == "refund_decided"]


async def test_a_decision_needs_the_csrf_token(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, fake: FakeRasa, db: DeskDb
) -> None:
    conversation = await conversation_of(customer, fake)
    quoted = pending(db, conversation, "XK93PQ", "Tanaka")
    token = await login(agent)
    for verb in ("approve", "deny"):
        for headers in ({}, csrf("0" * 64)):
            refused = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/{verb}", headers=headers)
            assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf_failed")
    assert booking(db, "XK93PQ").status == "cancellation_pending"
    assert (await approvals(agent, "queued"))[0]["id"] == quoted.ticket_id
    assert fake.triggers == []
    ok = await agent.post(f"/agent/api/approvals/{quoted.ticket_id}/deny", headers=csrf(token))
    assert ok.status_code == 200


async def test_the_list_needs_a_session_and_a_known_status(
    customer: httpx.AsyncClient, agent: httpx.AsyncClient, db: DeskDb
) -> None:
    assert (await agent.get("/agent/api/approvals")).status_code == 401
    await login(agent)
    assert (await agent.get("/agent/api/approvals")).json() == {"approvals": []}  # default: queued
    bad = await agent.get("/agent/api/approvals", params={"status": "cancelled"})
    assert bad.status_code == 400
