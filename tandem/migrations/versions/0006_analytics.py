"""Analytics (issue 16): the event stream's events and one row per Rasa session.

- ``analytics_events``: each Rasa event the consumer received from RabbitMQ, once (unique
  ``event_key``: the Pika broker sends no event id, redeliveries are expected), reduced to what
  analytics reads (no message text, no other slots' values);
- ``analytics_sessions``: one row per Rasa session (unique per conversation and start), rebuilt by
  the consumer from the conversation's events: channel, start and end, turns, fallback turns by
  stage, outcomes, handoff reason, rating, tool calls and failures, LLM tokens, cost and cache
  hits, turn latencies.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "analytics_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(64), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("type_name", sa.String(64), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("data", JSON_TYPE, nullable=False),
        sa.Column("received_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_analytics_events_event_key")),
    )
    op.create_index(op.f("ix_analytics_events_sender_id"), "analytics_events", ["sender_id"])
    op.create_table(
        "analytics_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("next_started_at", sa.Float(), nullable=True),
        sa.Column("channel", sa.String(32), nullable=True),
        sa.Column("user_turns", sa.Integer(), nullable=False),
        sa.Column("engaged", sa.Boolean(), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("fallback_turns", sa.Integer(), nullable=False),
        sa.Column("fallback_stages", JSON_TYPE, nullable=False),
        sa.Column("outcomes", JSON_TYPE, nullable=False),
        sa.Column("handoff_reason", sa.String(64), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("rating_asked", sa.Boolean(), nullable=False),
        sa.Column("tool_calls", sa.Integer(), nullable=False),
        sa.Column("tool_failures", sa.Integer(), nullable=False),
        sa.Column("error_turns", sa.Integer(), nullable=False),
        sa.Column("llm_prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("llm_completion_tokens", sa.Integer(), nullable=False),
        sa.Column("llm_cost", sa.String(40), nullable=False),
        sa.Column("llm_answers", sa.Integer(), nullable=False),
        sa.Column("llm_cache_hits", sa.Integer(), nullable=False),
        sa.Column("turn_latencies_ms", JSON_TYPE, nullable=False),
        sa.Column("first_response_ms", sa.Integer(), nullable=True),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_sessions")),
        sa.UniqueConstraint("sender_id", "started_at", name="uq_analytics_sessions_start"),
    )
    op.create_index(op.f("ix_analytics_sessions_sender_id"), "analytics_sessions", ["sender_id"])
    op.create_index(op.f("ix_analytics_sessions_started_at"), "analytics_sessions", ["started_at"])


def downgrade() -> None:
    op.drop_table("analytics_sessions")
    op.drop_table("analytics_events")
