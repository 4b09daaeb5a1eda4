"""The handoff desk (issue 13): agents, their console sessions, the handoff's messages and transitions.

- ``agents`` (e-mail, display name, role ``agent``/``admin``, argon2id hash) and ``agent_sessions``
  (SHA-256 of the console's session token, expiry, revocation);
- ``tickets``: the statuses of the state machine (``open`` becomes ``queued``; a handoff goes on to
  ``assigned``, ``resolved``, ``closed``, ``expired`` or ``cancelled``, a refund approval to
  ``approved`` or ``denied``), the assigned agent (id and the name the customer sees), when it was
  assigned and ended, the agent's note, the LLM summary, the platform address an agent's reply is
  sent to, and the help desk's own id;
- ``handoff_messages``: what the customer and the agents wrote while a person had the conversation;
- ``ticket_events``: one row per transition (who, from, to, when), for the audit and analytics.

Works on SQLite and PostgreSQL (batch mode rebuilds ``tickets`` on SQLite).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
STATUSES = ("queued", "assigned", "resolved", "closed", "expired", "cancelled", "approved", "denied")
OLD_STATUSES = ("open", "assigned", "closed")
ROLES = ("agent", "admin")
MESSAGE_ROLES = ("customer", "agent", "system")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("role", ROLES), name=op.f("ck_agents_role_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("email", name=op.f("uq_agents_email")),
    )
    op.create_table(
        "agent_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_agent_sessions_agent_id_agents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_agent_sessions_token_hash")),
    )
    op.create_index(op.f("ix_agent_sessions_agent_id"), "agent_sessions", ["agent_id"], unique=False)

    # The old check refuses "queued": drop it, move the rows, then check the new statuses.
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_status_known"), type_="check")
    op.execute("UPDATE tickets SET status = 'queued' WHERE status = 'open'")
    with op.batch_alter_table("tickets") as batch:
        batch.create_check_constraint("status_known", _in("status", STATUSES))
        batch.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("agent_name", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("llm_summary", sa.Text(), nullable=True))
        batch.add_column(sa.Column("address", JSON_TYPE, nullable=True))
        batch.add_column(sa.Column("desk_ref", sa.String(length=64), nullable=True))
        batch.create_foreign_key(op.f("fk_tickets_agent_id_agents"), "agents", ["agent_id"], ["id"])
        batch.create_index(op.f("ix_tickets_desk_ref"), ["desk_ref"], unique=False)

    op.create_table(
        "handoff_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint(_in("role", MESSAGE_ROLES), name=op.f("ck_handoff_messages_role_known")),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_handoff_messages_agent_id_agents")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_handoff_messages_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_messages")),
        sa.UniqueConstraint("external_id", name=op.f("uq_handoff_messages_external_id")),
    )
    op.create_index("ix_handoff_messages_ticket_id_id", "handoff_messages", ["ticket_id", "id"], unique=False)

    op.create_table(
        "ticket_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("detail", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_events_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_events")),
    )
    op.create_index(op.f("ix_ticket_events_ticket_id"), "ticket_events", ["ticket_id"], unique=False)
    op.create_index(op.f("ix_ticket_events_at"), "ticket_events", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_events_at"), table_name="ticket_events")
    op.drop_index(op.f("ix_ticket_events_ticket_id"), table_name="ticket_events")
    op.drop_table("ticket_events")
    op.drop_index("ix_handoff_messages_ticket_id_id", table_name="handoff_messages")
    op.drop_table("handoff_messages")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(op.f("ck_tickets_status_known"), type_="check")
    op.execute("UPDATE tickets SET status = 'open' WHERE status = 'queued'")
    op.execute(
        "UPDATE tickets SET status = 'closed' "
        "WHERE status IN ('resolved', 'expired', 'cancelled', 'approved', 'denied')"
    )
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index(op.f("ix_tickets_desk_ref"))
        batch.drop_constraint(op.f("fk_tickets_agent_id_agents"), type_="foreignkey")
        for column in (
            "desk_ref",
            "address",
            "llm_summary",
            "note",
            "ended_at",
            "assigned_at",
            "agent_name",
            "agent_id",
        ):
            batch.drop_column(column)
        batch.create_check_constraint("status_known", _in("status", OLD_STATUSES))
    op.drop_index(op.f("ix_agent_sessions_agent_id"), table_name="agent_sessions")
    op.drop_table("agent_sessions")
    op.drop_table("agents")
