"""The business schema (SQLAlchemy 2 typed declarative).

The schema itself is created by the Alembic migrations in ``tandem/migrations``; these classes must
stay in step with them (a unit test compares the two).

Portability notes (the same code runs on SQLite and PostgreSQL):
- :class:`UTCDateTime` stores aware UTC datetimes; SQLite has no time zone support, so naive values
  read back are tagged UTC and naive values written are refused.
- :class:`Money` is ``NUMERIC(12, 2)`` read back as :class:`~decimal.Decimal`; on SQLite, which has
  no decimal type, the float is converted through its shortest ``repr`` (exact for 2-decimal
  amounts of this size) instead of triggering SQLAlchemy's lossy-conversion warning.
- JSON columns use :class:`sqlalchemy.JSON` (TEXT on SQLite, JSONB on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

CENT = Decimal("0.01")

FLIGHT_STATUSES = ("scheduled", "delayed", "departed", "landed", "cancelled")
CABINS = ("economy", "business")
BOOKING_STATUSES = ("held", "confirmed", "cancelled", "cancellation_pending")
# A handoff: queued -> assigned -> resolved (back to the bot) | closed; queued -> expired | cancelled.
# A refund approval: queued -> approved | denied. (See tandem.services.handoff and .approvals.)
TICKET_STATUSES = ("queued", "assigned", "resolved", "closed", "expired", "cancelled", "approved", "denied")
TICKET_KINDS = ("handoff", "refund_approval")
AGENT_ROLES = ("agent", "admin")
HANDOFF_MESSAGE_ROLES = ("customer", "agent", "system")
LOOKUP_SCOPES = ("reference", "client", "conversation")
FALLBACK_KINDS = ("rescue", "answer", "form_answer", "clarify", "refuse", "handoff", "degraded")
FALLBACK_MODES = ("llm", "retrieval")

# Deterministic constraint names: migrations (and downgrades) can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; naive datetimes are a bug and are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite stores text; without the offset it sorts and compares consistently.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """NUMERIC(12, 2) as Decimal on every backend (see the module docstring)."""

    impl = Numeric(12, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Numeric(12, 2, asdecimal=False))
        return dialect.type_descriptor(Numeric(12, 2))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
        return float(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(CENT)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Airport(Base):
    __tablename__ = "airports"

    code: Mapped[str] = mapped_column(String(3), primary_key=True)
    city: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    is_hub: Mapped[bool] = mapped_column(Boolean, default=False)


class Flight(Base):
    __tablename__ = "flights"
    __table_args__ = (
        # departure_date is the airline-local calendar date: "AN204 on 25 January".
        UniqueConstraint("flight_number", "departure_date", name="uq_flights_number_date"),
        CheckConstraint("seats_economy >= 0", name="seats_economy_nonneg"),
        CheckConstraint("seats_business >= 0", name="seats_business_nonneg"),
        CheckConstraint("delay_minutes >= 0", name="delay_nonneg"),
        CheckConstraint(_in("status", FLIGHT_STATUSES), name="status_known"),
        CheckConstraint("arrival_at > departure_at", name="arrives_after_departure"),
        Index("ix_flights_route_departure", "origin", "destination", "departure_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    flight_number: Mapped[str] = mapped_column(String(8))
    origin: Mapped[str] = mapped_column(String(3), ForeignKey("airports.code"))
    destination: Mapped[str] = mapped_column(String(3), ForeignKey("airports.code"))
    departure_date: Mapped[date] = mapped_column(Date)
    departure_at: Mapped[datetime] = mapped_column(UTCDateTime())
    arrival_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    seats_economy: Mapped[int] = mapped_column(Integer)
    seats_business: Mapped[int] = mapped_column(Integer)
    fare_economy: Mapped[Decimal] = mapped_column(Money())
    fare_business: Mapped[Decimal] = mapped_column(Money())


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    first_name: Mapped[str] = mapped_column(String(80))
    last_name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(_in("cabin", CABINS), name="cabin_known"),
        CheckConstraint(_in("status", BOOKING_STATUSES), name="status_known"),
        CheckConstraint("passengers BETWEEN 1 AND 9", name="passengers_range"),
        CheckConstraint("total_amount >= 0", name="total_nonneg"),
        Index("ix_bookings_flight_id", "flight_id"),
        # The open-hold limits count held bookings per e-mail, client and conversation (0002).
        Index("ix_bookings_email_status", "email", "status"),
        Index("ix_bookings_client_key_status", "client_key", "status"),
        Index("ix_bookings_conversation_id_status", "conversation_id", "status"),
        Index("ix_bookings_status_hold_expires_at", "status", "hold_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(6), unique=True)
    flight_id: Mapped[int] = mapped_column(ForeignKey("flights.id"))
    cabin: Mapped[str] = mapped_column(String(16))
    passengers: Mapped[int] = mapped_column(Integer)
    last_name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(24))
    total_amount: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    payment_link: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    refund_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    # Who made the hold (0002): the conversation and the gateway's opaque client key, for the
    # open-hold limits. NULL for bookings made before 0002, seeded ones, or without a gateway.
    conversation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    client_key: Mapped[str | None] = mapped_column(String(64), nullable=True)


class PasswordResetOutbox(Base):
    """Reset tokens waiting to be mailed. Only the SHA-256 of a token is stored, never the token."""

    __tablename__ = "password_reset_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Agent(Base):
    """A person of the support team who logs in to the agent console (0005).

    Customers see only ``display_name`` ("Ploy"), never the e-mail. ``password_hash`` is an
    argon2id hash (:mod:`tandem.services.agents`).
    """

    __tablename__ = "agents"
    __table_args__ = (CheckConstraint(_in("role", AGENT_ROLES), name="role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AgentSession(Base):
    """A console login (0005): only the SHA-256 of the session token is stored."""

    __tablename__ = "agent_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Ticket(Base):
    """Work for a human agent: a handoff, or a refund waiting for approval."""

    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(_in("status", TICKET_STATUSES), name="status_known"),
        CheckConstraint(_in("kind", TICKET_KINDS), name="kind_known"),
        Index("ix_tickets_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    transcript: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    slots: Mapped[dict[str, Any]] = mapped_column(JSONType)
    summary: Mapped[str] = mapped_column(Text)
    booking_reference: Mapped[str | None] = mapped_column(String(6), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Where the customer asked (``website``, ``slack``, ``shell`` ...; 0003): an agent answers there.
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The desk (0005): who took it and when it ended, the agent's closing note, the LLM's summary
    # (None without an LLM), and where a platform customer is answered (Slack channel and thread,
    # Telegram chat; None on the website, which reads its messages from the gateway).
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    # The name the customer sees ("Ploy"): the console agent's display name, or the help desk's.
    agent_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    llm_summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    # The help desk's own id of this ticket (e.g. the Chatwoot conversation id), when one is used.
    desk_ref: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class HandoffMessage(Base):
    """A message of a handed-over conversation (0005): the customer's, an agent's, or the desk's.

    ``external_id`` is the help desk's id of a message that came from it (unique: a webhook
    delivered twice is stored once).
    """

    __tablename__ = "handoff_messages"
    __table_args__ = (
        CheckConstraint(_in("role", HANDOFF_MESSAGE_ROLES), name="role_known"),
        Index("ix_handoff_messages_ticket_id_id", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)


class TicketEvent(Base):
    """One transition of a ticket (0005): the audit trail the desk and analytics read.

    ``actor`` is ``agent:<id>``, ``customer``, ``system`` (the queue timeout) or a desk
    (``chatwoot``); ``detail`` holds codes, never message text.
    """

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LookupFailure(Base):
    """One failed booking lookup (reference + last name did not match), per scope (0002).

    ``scope`` is what is counted: the booking ``reference`` as typed (normalised; it need not
    exist), the ``client`` key of the gateway, or the ``conversation`` id. No last name is stored.
    The rows drive the lock-out window; rows older than the window are dead weight (see
    :func:`tandem.services.lookup_guard.purge`).
    """

    __tablename__ = "lookup_failures"
    __table_args__ = (
        CheckConstraint(_in("scope", LOOKUP_SCOPES), name="scope_known"),
        Index("ix_lookup_failures_scope_subject_at", "scope", "subject", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class AuditLog(Base):
    """One row per tool call. ``arguments`` are masked before they get here (no e-mails, names)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    role: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONType)
    outcome: Mapped[str] = mapped_column(String(64))
    duration_ms: Mapped[int] = mapped_column(Integer)
    # Where the call came from (0003): the caller's channel and the turn's correlation id (the
    # gateway's opaque turn id, also in the JSON log lines of the gateway and the action server).
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class FallbackDecisionRecord(Base):
    """One decision of the fallback chain (0004): why the bot answered as it did, for analytics.

    Codes and numbers only, never the customer's text or the bot's: ``kind`` and ``reason`` (the
    chain's stage and machine-readable cause), ``mode`` (``llm`` or ``retrieval``), the model's
    ``confidence``, the rescued ``intent``, the knowledge-base passage ids in ``sources``, tokens
    and model latency, whether the reply came from the cache or was degraded, and ``detail``
    (the decision's meta codes, e.g. which budget refused). ``client_key`` is the gateway's opaque
    client key, when there was one. Written by :func:`tandem.services.fallback.record.record_decision`.
    """

    __tablename__ = "fallback_decisions"
    __table_args__ = (
        CheckConstraint(_in("kind", FALLBACK_KINDS), name="kind_known"),
        CheckConstraint(_in("mode", FALLBACK_MODES), name="mode_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    conversation_id: Mapped[str] = mapped_column(String(128), index=True)
    client_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    intent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    sources: Mapped[list[str]] = mapped_column(JSONType)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    model_latency_ms: Mapped[int] = mapped_column(Integer)
    cached: Mapped[bool] = mapped_column(Boolean)
    degraded: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[dict[str, str]] = mapped_column(JSONType)


class AnalyticsEvent(Base):
    """One Rasa event received from the event stream (0006), stored once however often it arrives.

    The Pika broker sends no event id, so ``event_key`` is the SHA-256 of the conversation id and
    the event's canonical JSON: a redelivered message has the same key and changes nothing.
    ``data`` is the event without what analytics does not need (message texts, other slots'
    values: see :func:`tandem.analytics.store.reduced_event`).
    """

    __tablename__ = "analytics_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_key: Mapped[str] = mapped_column(String(64), unique=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    type_name: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnalyticsSession(Base):
    """One Rasa session as analytics sees it (0006): rebuilt from ``analytics_events`` by the consumer.

    The fields are :class:`tandem.analytics.sessions.SessionRecord`'s; ``started_at`` /
    ``ended_at`` / ``next_started_at`` are Rasa's epoch timestamps; ``llm_cost`` is an exact
    decimal string in LLM_PRICE_CURRENCY.
    """

    __tablename__ = "analytics_sessions"
    __table_args__ = (UniqueConstraint("sender_id", "started_at", name="uq_analytics_sessions_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender_id: Mapped[str] = mapped_column(String(255), index=True)
    started_at: Mapped[float] = mapped_column(Float, index=True)
    ended_at: Mapped[float] = mapped_column(Float)
    next_started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    user_turns: Mapped[int] = mapped_column(Integer)
    engaged: Mapped[bool] = mapped_column(Boolean)
    success: Mapped[bool] = mapped_column(Boolean)
    fallback_turns: Mapped[int] = mapped_column(Integer)
    fallback_stages: Mapped[dict[str, int]] = mapped_column(JSONType)
    outcomes: Mapped[list[str]] = mapped_column(JSONType)
    handoff_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rating_asked: Mapped[bool] = mapped_column(Boolean)
    tool_calls: Mapped[int] = mapped_column(Integer)
    tool_failures: Mapped[int] = mapped_column(Integer)
    error_turns: Mapped[int] = mapped_column(Integer)
    llm_prompt_tokens: Mapped[int] = mapped_column(Integer)
    llm_completion_tokens: Mapped[int] = mapped_column(Integer)
    llm_cost: Mapped[str] = mapped_column(String(40))
    llm_answers: Mapped[int] = mapped_column(Integer)
    llm_cache_hits: Mapped[int] = mapped_column(Integer)
    turn_latencies_ms: Mapped[list[int]] = mapped_column(JSONType)
    first_response_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
