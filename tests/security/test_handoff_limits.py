"""Finding 6 (handoff half): "human please" must not open a ticket each time.

One open handoff per conversation (asking again returns the same ticket, and the user hears the
same ticket number), and new tickets are limited per client key and per conversation per hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions.context import use_toolbox
from actions.handoff import ActionHandoff
from tandem.db.models import Ticket
from tandem.errors import RateLimited
from tandem.ratelimit import InMemoryRateLimiter
from tandem.tools import Caller, Toolbox
from tests.security.trackers import DOMAIN, tracker

if TYPE_CHECKING:
    from tests.conftest import Db


@pytest.fixture
def box(db: Db, settings_factory: Any) -> Iterator[Toolbox]:
    settings = settings_factory(
        db.settings.database.database_url,
        SCHEDULE_DAYS=35,
        HANDOFF_LIMIT_PER_CLIENT=3,
        HANDOFF_LIMIT_PER_CONVERSATION=3,
    )
    toolbox = Toolbox(sessions=db.sessions, settings=settings, limiter=InMemoryRateLimiter())
    use_toolbox(toolbox)
    yield toolbox
    use_toolbox(None)


async def _ask_for_human(sender: str, client: str | None = None) -> list[dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    await ActionHandoff().run(
        dispatcher, tracker(sender=sender, client=client, text="human please", intent="request_human"), DOMAIN
    )
    said = [m for m in dispatcher.messages if m.get("response")]
    # A ticket (new or found again) comes with the widget's marker, which also names it.
    markers = [m["custom"]["handoff"] for m in dispatcher.messages if m.get("custom")]
    assert markers == ([{"state": "pending", "ticket_id": said[0]["ticket_id"]}] if "ticket_id" in said[0] else [])
    return said


def _tickets(db: Db, conversation: str | None = None) -> list[Ticket]:
    with db.sessions() as s:
        query = select(Ticket).where(Ticket.kind == "handoff").order_by(Ticket.id)
        if conversation:
            query = query.where(Ticket.conversation_id == conversation)
        return list(s.scalars(query))


def _close_all(db: Db) -> None:
    with db.sessions.begin() as s:
        for ticket in s.scalars(select(Ticket)):
            ticket.status = "closed"


async def test_asking_again_returns_the_same_open_ticket(box: Toolbox, db: Db) -> None:
    first = await _ask_for_human("impatient")
    second = await _ask_for_human("impatient")
    third = await _ask_for_human("impatient")
    assert [m["response"] for m in first] == ["utter_handoff_created"]
    assert [m["response"] for m in second + third] == ["utter_handoff_existing"] * 2
    assert first[0]["ticket_id"] == second[0]["ticket_id"] == third[0]["ticket_id"]
    assert len(_tickets(db, "impatient")) == 1
    # Once an agent closed it, a new request opens a new ticket.
    _close_all(db)
    again = await _ask_for_human("impatient")
    assert [m["response"] for m in again] == ["utter_handoff_created"]
    assert again[0]["ticket_id"] != first[0]["ticket_id"]


async def test_a_refund_approval_ticket_is_not_an_open_handoff(box: Toolbox, db: Db) -> None:
    pending = await box.cancel_booking(Caller("refund-conv"), reference="XK93PQ", last_name="Tanaka")
    assert pending.ticket_id is not None
    handoff = await box.create_handoff(Caller("refund-conv"), reason="user_request")
    assert handoff.created and handoff.ticket_id != pending.ticket_id


async def test_new_tickets_are_limited_per_client(box: Toolbox, db: Db) -> None:
    for i in range(3):
        said = await _ask_for_human(f"fresh-{i}", client="one-address")
        assert [m["response"] for m in said] == ["utter_handoff_created"]
    said = await _ask_for_human("fresh-3", client="one-address")
    assert [m["response"] for m in said] == ["utter_handoff_limited"]
    with pytest.raises(RateLimited):
        await box.create_handoff(Caller("fresh-4", client="one-address"), reason="user_request")
    assert len(_tickets(db)) == 3
    # The open ticket of a limited client's conversation is still returned, and others are served.
    said = await _ask_for_human("fresh-0", client="one-address")
    assert [m["response"] for m in said] == ["utter_handoff_existing"]
    said = await _ask_for_human("elsewhere", client="another-address")
    assert [m["response"] for m in said] == ["utter_handoff_created"]


async def test_new_tickets_are_limited_per_conversation(box: Toolbox, db: Db) -> None:
    for _ in range(3):
        assert (await box.create_handoff(Caller("churn"), reason="user_request")).created
        _close_all(db)
    with pytest.raises(RateLimited):
        await box.create_handoff(Caller("churn"), reason="user_request")
    with db.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(Ticket.conversation_id == "churn")) == 3
