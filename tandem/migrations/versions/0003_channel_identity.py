"""Channel identity (issue 11, item 2): where a tool call or a ticket came from.

- ``audit_log.channel`` (``website``, ``slack``, ``telegram``, ``shell``, ``rest`` ...) and
  ``audit_log.correlation_id`` (the gateway's opaque turn id: joins an audit row to the log lines
  of the gateway and the action server for that turn), with an index on the correlation id;
- ``tickets.channel``: the channel the customer asked on (the agent answers there).

All nullable: older rows, and callers that do not know them (tests, scripts), have none. Works
on SQLite and PostgreSQL; the downgrade uses batch mode (SQLite rebuilds the tables).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("channel", sa.String(length=32), nullable=True))
    op.add_column("audit_log", sa.Column("correlation_id", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_audit_log_correlation_id"), "audit_log", ["correlation_id"], unique=False)
    op.add_column("tickets", sa.Column("channel", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("channel")
    op.drop_index(op.f("ix_audit_log_correlation_id"), table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("correlation_id")
        batch.drop_column("channel")
