"""Channel identity end to end (issue 11, item 2): the caller of a tool knows the channel and the
turn's correlation id; audit rows and tickets store them; the schema migration adds the columns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import inspect, select

from actions.common import caller_of
from actions.context import use_toolbox
from actions.handoff import ActionHandoff
from tandem.db.engine import create_engine_from_settings
from tandem.db.migrate import alembic_config, upgrade_head
from tandem.db.models import AuditLog, Ticket
from tandem.errors import NotFound
from tandem.ratelimit import InMemoryRateLimiter
from tandem.settings import ActionSettings
from tandem.tools import Caller, Toolbox

WEBSITE = {"channel": "website", "client": "k" * 32, "correlation_id": "turn-0123456789abcdef"}


def tracker(metadata: dict[str, Any] | None, *, input_channel: str | None = None, text: str = "hi") -> Tracker:
    latest: dict[str, Any] = {"text": text, "intent": {"name": "request_human", "confidence": 0.9}, "entities": []}
    if metadata is not None:
        latest["metadata"] = metadata
    user: dict[str, Any] = {"event": "user", "text": text, "parse_data": latest, "metadata": metadata or {}}
    if input_channel:
        user["input_channel"] = input_channel
    return Tracker("conv-channel", {}, latest, [user], False, None, {}, "action_listen")


@pytest.fixture
def toolbox(db: Any) -> Iterator[Toolbox]:
    box = Toolbox(sessions=db.sessions, settings=db.settings, limiter=InMemoryRateLimiter())
    use_toolbox(box)
    yield box
    use_toolbox(None)


@pytest.mark.parametrize(
    ("metadata", "input_channel", "channel", "correlation_id"),
    [
        (WEBSITE, "website", "website", WEBSITE["correlation_id"]),
        (None, "cmdline", "shell", None),  # rasa shell: no metadata
        ({"channel": "telegram"}, "telegram", "telegram", None),
        ({"correlation_id": "x" * 65}, "rest", "rest", None),  # an implausible id is not trusted
        (None, None, None, None),
    ],
)
def test_caller_of_carries_channel_and_correlation_id(
    metadata: dict[str, Any] | None, input_channel: str | None, channel: str | None, correlation_id: str | None
) -> None:
    caller = caller_of(tracker(metadata, input_channel=input_channel))
    assert (caller.conversation_id, caller.role) == ("conv-channel", "customer")
    assert (caller.channel, caller.correlation_id) == (channel, correlation_id)
    assert caller.client == (metadata or {}).get("client")


def test_caller_defaults_keep_old_call_sites_working() -> None:
    caller = Caller("conv")
    assert (caller.channel, caller.correlation_id, caller.client) == (None, None, None)


async def test_audit_rows_store_channel_and_correlation_id(toolbox: Toolbox, db: Any) -> None:
    await toolbox.record_rating(Caller("conv-a", channel="website", correlation_id="turn-a"), rating=5)
    await toolbox.record_rating(Caller("conv-b"), rating=4)
    with db.sessions() as s:
        rows = {r.actor: r for r in s.scalars(select(AuditLog).where(AuditLog.tool == "record_rating"))}
    assert (rows["conv-a"].channel, rows["conv-a"].correlation_id) == ("website", "turn-a")
    assert (rows["conv-b"].channel, rows["conv-b"].correlation_id) == (None, None)


async def test_handoff_and_refund_tickets_store_the_channel(toolbox: Toolbox, db: Any) -> None:
    handoff = await toolbox.create_handoff(Caller("conv-h", channel="slack"), reason="user_request")
    refund = await toolbox.cancel_booking(Caller("conv-r", channel="shell"), reference="XK93PQ", last_name="Tanaka")
    with db.sessions() as s:
        assert s.get(Ticket, handoff.ticket_id).channel == "slack"  # type: ignore[union-attr]
        assert s.get(Ticket, refund.ticket_id).channel == "shell"  # type: ignore[union-attr]


async def test_a_handoff_from_the_website_is_traceable_to_its_turn(toolbox: Toolbox, db: Any) -> None:
    dispatcher = CollectingDispatcher()
    await ActionHandoff().run(dispatcher, tracker(WEBSITE, input_channel="website", text="human please"), {})
    with db.sessions() as s:
        ticket = s.scalars(select(Ticket).where(Ticket.conversation_id == "conv-channel")).one()
        audit = s.scalars(select(AuditLog).where(AuditLog.tool == "create_handoff")).one()
    assert ticket.channel == "website"
    assert (audit.channel, audit.correlation_id) == ("website", WEBSITE["correlation_id"])


def test_migration_0003_adds_and_drops_the_columns(
    tmp_path: Path, settings_factory: Callable[..., ActionSettings]
) -> None:
    settings = settings_factory(f"sqlite:///{tmp_path}/m.db")
    engine = create_engine_from_settings(settings.database)
    try:

        def columns(table: str) -> set[str]:
            return {c["name"] for c in inspect(engine).get_columns(table)}

        config = alembic_config(engine)
        command.upgrade(config, "0002")
        assert "channel" not in columns("audit_log") and "channel" not in columns("tickets")
        command.upgrade(config, "0003")
        assert {"channel", "correlation_id"} <= columns("audit_log")
        assert "channel" in columns("tickets")
        nullable = {c["name"]: c["nullable"] for c in inspect(engine).get_columns("audit_log")}
        assert nullable["channel"] and nullable["correlation_id"]
        command.downgrade(config, "0002")
        assert "channel" not in columns("audit_log") and "correlation_id" not in columns("audit_log")
        assert "channel" not in columns("tickets")
        upgrade_head(settings.database, engine=engine)
        assert "correlation_id" in columns("audit_log")
    finally:
        engine.dispose()


async def test_lookup_failure_rows_say_where_the_guess_came_from(toolbox: Toolbox, db: Any) -> None:
    caller = Caller("conv-guess", client="g" * 32, channel="telegram", correlation_id="turn-guess")
    with pytest.raises(NotFound):
        await toolbox.get_booking(caller, reference="AB12CD", last_name="Nobody")
    with db.sessions() as s:
        rows = {r.tool: r for r in s.scalars(select(AuditLog).where(AuditLog.actor == "conv-guess"))}
    assert set(rows) == {"lookup_failure", "get_booking"}
    assert {(r.channel, r.correlation_id) for r in rows.values()} == {("telegram", "turn-guess")}
