"""Configuration, read only from the environment (and an optional ``.env``), in one typed object.

Nothing here runs at import time: call :func:`load_settings` where the process starts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the application environment. Names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Business data: SQLite file by default (embedded mode), PostgreSQL when it says so.
    database_url: str = Field(default="sqlite:///var/tandem.db", alias="DATABASE_URL")
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=60, alias="DB_CONNECT_TIMEOUT_SECONDS")
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=60000, alias="DB_STATEMENT_TIMEOUT_MS")
    # Redis for rate limits and caches in production; unset means in-process.
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    redis_timeout_seconds: float = Field(default=2.0, gt=0, le=30, alias="REDIS_TIMEOUT_SECONDS")

    # The airline's local time zone decides what "today" means for customers.
    timezone: str = Field(default="Asia/Bangkok", alias="AIRLINE_TIMEZONE")
    currency: str = Field(default="THB", alias="CURRENCY")
    schedule_days: int = Field(default=180, ge=7, le=400, alias="SCHEDULE_DAYS")
    search_max_options: int = Field(default=3, ge=1, le=10, alias="SEARCH_MAX_OPTIONS")
    max_passengers: int = Field(default=9, ge=1, le=9, alias="MAX_PASSENGERS")
    # Refunds above this amount (in CURRENCY) need an agent's approval.
    refund_approval_threshold: Decimal = Field(default=Decimal("20000"), ge=0, alias="REFUND_APPROVAL_THRESHOLD")
    payment_link_base: str = Field(
        default="https://pay.andaman-air.example/checkout/", alias="PAYMENT_LINK_BASE"
    )
    hold_minutes: int = Field(default=30, ge=5, le=1440, alias="BOOKING_HOLD_MINUTES")

    password_reset_ttl_minutes: int = Field(default=30, ge=5, le=1440, alias="PASSWORD_RESET_TTL_MINUTES")
    password_reset_limit_per_email: int = Field(default=3, ge=1, alias="PASSWORD_RESET_LIMIT_PER_EMAIL")
    password_reset_limit_per_conversation: int = Field(
        default=5, ge=1, alias="PASSWORD_RESET_LIMIT_PER_CONVERSATION"
    )
    password_reset_window_seconds: int = Field(default=3600, ge=60, alias="PASSWORD_RESET_WINDOW_SECONDS")

    tool_timeout_seconds: float = Field(default=5.0, gt=0, le=30, alias="TOOL_TIMEOUT_SECONDS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            # SQLAlchemy would pick psycopg2, which this environment does not ship.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment; keyword overrides win (used by tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
