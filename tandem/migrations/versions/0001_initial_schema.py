"""Initial schema: airports, flights, customers, bookings, password reset outbox, tickets,
ratings, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere; must match tandem.db.models.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "airports",
        sa.Column("code", sa.String(length=3), nullable=False),
        sa.Column("city", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("is_hub", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_airports")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("tool", sa.String(length=64), nullable=False),
        sa.Column("arguments", JSON_TYPE, nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_actor"), "audit_log", ["actor"], unique=False)
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("first_name", sa.String(length=80), nullable=False),
        sa.Column("last_name", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("email", name=op.f("uq_customers_email")),
    )
    op.create_table(
        "password_reset_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_outbox")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_outbox_token_hash")),
    )
    op.create_index(
        op.f("ix_password_reset_outbox_email"),
        "password_reset_outbox",
        ["email"],
        unique=False,
    )
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_ratings_rating_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
    )
    op.create_index(op.f("ix_ratings_conversation_id"), "ratings", ["conversation_id"], unique=False)
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transcript", JSON_TYPE, nullable=False),
        sa.Column("slots", JSON_TYPE, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("booking_reference", sa.String(length=6), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('handoff', 'refund_approval')", name=op.f("ck_tickets_kind_known")),
        sa.CheckConstraint(
            "status IN ('open', 'assigned', 'closed')",
            name=op.f("ck_tickets_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    op.create_index(op.f("ix_tickets_conversation_id"), "tickets", ["conversation_id"], unique=False)
    op.create_index("ix_tickets_status_created", "tickets", ["status", "created_at"], unique=False)
    op.create_table(
        "flights",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flight_number", sa.String(length=8), nullable=False),
        sa.Column("origin", sa.String(length=3), nullable=False),
        sa.Column("destination", sa.String(length=3), nullable=False),
        sa.Column("departure_date", sa.Date(), nullable=False),
        sa.Column("departure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("arrival_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("delay_minutes", sa.Integer(), nullable=False),
        sa.Column("seats_economy", sa.Integer(), nullable=False),
        sa.Column("seats_business", sa.Integer(), nullable=False),
        sa.Column("fare_economy", sa.Numeric(12, 2), nullable=False),
        sa.Column("fare_business", sa.Numeric(12, 2), nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'delayed', 'departed', 'landed', 'cancelled')",
            name=op.f("ck_flights_status_known"),
        ),
        sa.CheckConstraint("arrival_at > departure_at", name=op.f("ck_flights_arrives_after_departure")),
        sa.CheckConstraint("delay_minutes >= 0", name=op.f("ck_flights_delay_nonneg")),
        sa.CheckConstraint("seats_business >= 0", name=op.f("ck_flights_seats_business_nonneg")),
        sa.CheckConstraint("seats_economy >= 0", name=op.f("ck_flights_seats_economy_nonneg")),
        sa.ForeignKeyConstraint(
            ["destination"],
            ["airports.code"],
            name=op.f("fk_flights_destination_airports"),
        ),
        sa.ForeignKeyConstraint(["origin"], ["airports.code"], name=op.f("fk_flights_origin_airports")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flights")),
        sa.UniqueConstraint("flight_number", "departure_date", name="uq_flights_number_date"),
    )
    op.create_index(
        "ix_flights_route_departure",
        "flights",
        ["origin", "destination", "departure_at"],
        unique=False,
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=6), nullable=False),
        sa.Column("flight_id", sa.Integer(), nullable=False),
        sa.Column("cabin", sa.String(length=16), nullable=False),
        sa.Column("passengers", sa.Integer(), nullable=False),
        sa.Column("last_name", sa.String(length=80), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("total_amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("payment_link", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hold_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refund_amount", sa.Numeric(12, 2), nullable=True),
        sa.CheckConstraint("cabin IN ('economy', 'business')", name=op.f("ck_bookings_cabin_known")),
        sa.CheckConstraint(
            "status IN ('held', 'confirmed', 'cancelled', 'cancellation_pending')",
            name=op.f("ck_bookings_status_known"),
        ),
        sa.CheckConstraint("passengers BETWEEN 1 AND 9", name=op.f("ck_bookings_passengers_range")),
        sa.CheckConstraint("total_amount >= 0", name=op.f("ck_bookings_total_nonneg")),
        sa.ForeignKeyConstraint(["flight_id"], ["flights.id"], name=op.f("fk_bookings_flight_id_flights")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("reference", name=op.f("uq_bookings_reference")),
    )
    op.create_index("ix_bookings_flight_id", "bookings", ["flight_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bookings_flight_id", table_name="bookings")
    op.drop_table("bookings")
    op.drop_index("ix_flights_route_departure", table_name="flights")
    op.drop_table("flights")
    op.drop_index("ix_tickets_status_created", table_name="tickets")
    op.drop_index(op.f("ix_tickets_conversation_id"), table_name="tickets")
    op.drop_table("tickets")
    op.drop_index(op.f("ix_ratings_conversation_id"), table_name="ratings")
    op.drop_table("ratings")
    op.drop_index(op.f("ix_password_reset_outbox_email"), table_name="password_reset_outbox")
    op.drop_table("password_reset_outbox")
    op.drop_table("customers")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_actor"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("airports")
