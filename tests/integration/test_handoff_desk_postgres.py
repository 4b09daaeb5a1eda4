"""The handoff desk on PostgreSQL: migration 0005 up (an open ticket becomes queued) and down, and the
state machine under concurrency (of many agents claiming one handoff at once, exactly one wins)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import inspect, select, text

from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import alembic_config, upgrade_head
from tandem.db.models import Ticket, TicketEvent
from tandem.errors import Conflict
from tandem.services import agents, handoff
from tandem.settings import ActionSettings
from tests.integration.conftest import fresh_database_url

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_migration_0005_and_concurrent_claims_on_postgres(settings_factory: Callable[..., ActionSettings]) -> None:
    with fresh_database_url() as url:
        settings = settings_factory(url)
        engine = create_engine_from_settings(settings.database)
        try:
            config = alembic_config(engine)
            command.upgrade(config, "0004")
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO tickets (conversation_id, kind, reason, status, transcript, slots, summary, "
                        "created_at) VALUES ('old-conv', 'handoff', 'user_request', 'open', '[]', '{}', 's', now())"
                    )
                )
            command.upgrade(config, "0005")
            assert {"agents", "agent_sessions", "handoff_messages", "ticket_events"} <= set(
                inspect(engine).get_table_names()
            )
            sessions = make_session_factory(engine)
            with sessions() as session:
                [old] = session.scalars(select(Ticket)).all()
                assert old.status == "queued"  # an open ticket of before is in the queue

            with sessions.begin() as session:
                ids = [
                    agents.add_agent(
                        session,
                        email=f"agent{i}@andaman.example",
                        display_name=f"A{i}",
                        password="p" * 12,
                        now=AT,
                        hasher=FAST,
                    ).id
                    for i in range(8)
                ]

            def claim(agent_id: int) -> str:
                actor = handoff.Actor("agent", agent_id=agent_id, name=f"A{agent_id}", role="agent")
                try:
                    with sessions.begin() as session:
                        handoff.claim(session, ticket_id=old.id, actor=actor, now=AT)
                    return "won"
                except Conflict as lost:
                    return lost.reason

            with ThreadPoolExecutor(max_workers=8) as pool:
                outcomes = list(pool.map(claim, ids))
            assert outcomes.count("won") == 1 and set(outcomes) <= {"won", "already_assigned"}, outcomes
            with sessions() as session:
                events = session.scalars(select(TicketEvent.to_status).where(TicketEvent.ticket_id == old.id)).all()
                assert list(events) == ["assigned"]  # one transition, one audit row

            command.downgrade(config, "0004")
            assert "ticket_events" not in inspect(engine).get_table_names()
            with engine.connect() as conn:
                assert conn.execute(text("SELECT status FROM tickets")).scalar_one() == "assigned"
            upgrade_head(settings.database, engine=engine)
        finally:
            engine.dispose()
