"""The durable record of fallback decisions (issue 11): table ``fallback_decisions``.

One row per decision of the fallback chain: stage (kind), reason, mode, confidence, rescued
intent, source passage ids, tokens, model latency, cached, degraded, conversation id, client key
and time. No message text. Indexed by time, conversation and client for the analytics to come.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KINDS = ("rescue", "answer", "form_answer", "clarify", "refuse", "handoff", "degraded")
MODES = ("llm", "retrieval")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "fallback_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("client_key", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("sources", JSON_TYPE, nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("model_latency_ms", sa.Integer(), nullable=False),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("degraded", sa.Boolean(), nullable=False),
        sa.Column("detail", JSON_TYPE, nullable=False),
        sa.CheckConstraint(_in("kind", KINDS), name=op.f("ck_fallback_decisions_kind_known")),
        sa.CheckConstraint(_in("mode", MODES), name=op.f("ck_fallback_decisions_mode_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fallback_decisions")),
    )
    op.create_index(op.f("ix_fallback_decisions_at"), "fallback_decisions", ["at"], unique=False)
    op.create_index(
        op.f("ix_fallback_decisions_conversation_id"), "fallback_decisions", ["conversation_id"], unique=False
    )
    op.create_index(op.f("ix_fallback_decisions_client_key"), "fallback_decisions", ["client_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_fallback_decisions_client_key"), table_name="fallback_decisions")
    op.drop_index(op.f("ix_fallback_decisions_conversation_id"), table_name="fallback_decisions")
    op.drop_index(op.f("ix_fallback_decisions_at"), table_name="fallback_decisions")
    op.drop_table("fallback_decisions")
