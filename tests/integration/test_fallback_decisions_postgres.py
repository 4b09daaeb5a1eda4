"""The record of fallback decisions on PostgreSQL: migration 0004 up and down on a fresh database,
and a decision written by the recorder and read back (JSONB sources, aware timestamps)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, select

from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import alembic_config, upgrade_head
from tandem.db.models import FallbackDecisionRecord
from tandem.services.fallback import DecisionRecorder, FallbackDecision, FallbackRequest, Source
from tandem.settings import ActionSettings
from tests.integration.conftest import fresh_database_url

AT = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)


async def test_migration_0004_and_a_recorded_decision_on_postgres(
    settings_factory: Callable[..., ActionSettings],
) -> None:
    with fresh_database_url() as url:
        settings = settings_factory(url)
        engine = create_engine_from_settings(settings.database)
        try:
            config = alembic_config(engine)
            command.upgrade(config, "0003")
            assert "fallback_decisions" not in inspect(engine).get_table_names()
            command.upgrade(config, "0004")
            indexes = {i["name"] for i in inspect(engine).get_indexes("fallback_decisions")}
            assert {"ix_fallback_decisions_at", "ix_fallback_decisions_conversation_id"} <= indexes

            recorder = DecisionRecorder(make_session_factory(engine), timeout_seconds=5, clock=lambda: AT)
            request = FallbackRequest(conversation_id="pg-conv", text="how heavy can my bag be?", client_key="k" * 32)
            decision = FallbackDecision(
                kind="degraded",
                reason="budget_exceeded",
                mode="retrieval",
                sources=(Source("baggage#allowance", "baggage.md", "Baggage", "Allowance"),),
                degraded=True,
                masked_text="how heavy can my bag be?",
                meta={"outcome": "answer", "budget": "client"},
            )
            await recorder(request, decision)
            with make_session_factory(engine)() as session:
                [row] = session.execute(select(FallbackDecisionRecord)).scalars().all()
            assert (row.kind, row.reason, row.mode, row.degraded) == ("degraded", "budget_exceeded", "retrieval", True)
            assert row.sources == ["baggage#allowance"] and row.detail == {"outcome": "answer", "budget": "client"}
            assert row.at == AT and row.client_key == "k" * 32

            command.downgrade(config, "0003")
            assert "fallback_decisions" not in inspect(engine).get_table_names()
            upgrade_head(settings.database, engine=engine)
            assert "fallback_decisions" in inspect(engine).get_table_names()
        finally:
            engine.dispose()
