"""Channel identity on PostgreSQL (issue 11, item 2): migration 0003 up and down on a fresh
database, and audit rows and tickets that store the channel and the correlation id."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from alembic import command
from sqlalchemy import inspect, select

from tandem.db.engine import create_engine_from_settings
from tandem.db.migrate import alembic_config, upgrade_head
from tandem.db.models import AuditLog, Ticket
from tandem.ratelimit import InMemoryRateLimiter
from tandem.settings import ActionSettings
from tandem.tools import Caller, Toolbox
from tests.integration.conftest import PgDb, fresh_database_url


def test_migration_0003_up_and_down_on_postgres(settings_factory: Callable[..., ActionSettings]) -> None:
    with fresh_database_url() as url:
        settings = settings_factory(url)
        engine = create_engine_from_settings(settings.database)
        try:

            def columns(table: str) -> dict[str, bool]:
                return {c["name"]: bool(c["nullable"]) for c in inspect(engine).get_columns(table)}

            config = alembic_config(engine)
            command.upgrade(config, "0002")
            assert "channel" not in columns("audit_log")
            command.upgrade(config, "0003")
            audit, tickets = columns("audit_log"), columns("tickets")
            assert audit["channel"] and audit["correlation_id"] and tickets["channel"]  # nullable
            assert "ix_audit_log_correlation_id" in {i["name"] for i in inspect(engine).get_indexes("audit_log")}
            command.downgrade(config, "0002")
            assert "channel" not in columns("audit_log") and "correlation_id" not in columns("audit_log")
            assert "channel" not in columns("tickets")
            upgrade_head(settings.database, engine=engine)
            assert "correlation_id" in columns("audit_log")
        finally:
            engine.dispose()


async def test_audit_rows_and_tickets_store_the_channel_on_postgres(pg: PgDb) -> None:
    conversation = f"pg-channel-{uuid.uuid4().hex[:8]}"
    tools = Toolbox(sessions=pg.sessions, settings=pg.settings, limiter=InMemoryRateLimiter())
    caller = Caller(conversation, client="k" * 32, channel="website", correlation_id="turn-pg-1")
    ticket = await tools.create_handoff(caller, reason="user_request")
    with pg.sessions() as s:
        row = s.scalars(select(AuditLog).where(AuditLog.actor == conversation)).one()
        stored = s.get(Ticket, ticket.ticket_id)
    assert (row.tool, row.channel, row.correlation_id) == ("create_handoff", "website", "turn-pg-1")
    assert stored is not None and stored.channel == "website"
