"""Hold limits and lookup lock-outs (issue 10, findings 2 and 3).

- ``bookings.conversation_id`` and ``bookings.client_key`` (nullable: older rows have none), with
  the indexes the open-hold limits count by, and one for the expiry job;
- ``lookup_failures``: one row per failed lookup and scope (reference / client / conversation).

Works on SQLite and PostgreSQL: new columns are nullable, and the downgrade uses batch mode
(SQLite rebuilds the table).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOKING_INDEXES = {
    "ix_bookings_email_status": ["email", "status"],
    "ix_bookings_client_key_status": ["client_key", "status"],
    "ix_bookings_conversation_id_status": ["conversation_id", "status"],
    "ix_bookings_status_hold_expires_at": ["status", "hold_expires_at"],
}


def upgrade() -> None:
    op.add_column("bookings", sa.Column("conversation_id", sa.String(length=128), nullable=True))
    op.add_column("bookings", sa.Column("client_key", sa.String(length=64), nullable=True))
    for name, columns in BOOKING_INDEXES.items():
        op.create_index(name, "bookings", columns, unique=False)
    op.create_table(
        "lookup_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "scope IN ('reference', 'client', 'conversation')", name=op.f("ck_lookup_failures_scope_known")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_failures")),
    )
    op.create_index(op.f("ix_lookup_failures_at"), "lookup_failures", ["at"], unique=False)
    op.create_index("ix_lookup_failures_scope_subject_at", "lookup_failures", ["scope", "subject", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_lookup_failures_scope_subject_at", table_name="lookup_failures")
    op.drop_index(op.f("ix_lookup_failures_at"), table_name="lookup_failures")
    op.drop_table("lookup_failures")
    for name in BOOKING_INDEXES:
        op.drop_index(name, table_name="bookings")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("client_key")
        batch.drop_column("conversation_id")
