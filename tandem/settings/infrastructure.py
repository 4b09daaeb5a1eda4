"""Where data lives and how processes log: the database, Redis, the log level."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from tandem.settings.base import SettingsPart


class DatabaseSettings(SettingsPart):
    """Business data: a SQLite file by default (embedded mode), PostgreSQL when it says so."""

    database_url: str = Field(default="sqlite:///var/tandem.db", alias="DATABASE_URL")
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=60, alias="DB_CONNECT_TIMEOUT_SECONDS")
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=60000, alias="DB_STATEMENT_TIMEOUT_MS")

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


class RedisSettings(SettingsPart):
    """Redis for rate limits, caches and the gateway's stores in production; unset means in-process."""

    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    redis_timeout_seconds: float = Field(default=2.0, gt=0, le=30, alias="REDIS_TIMEOUT_SECONDS")
    # Every key this deployment writes starts with it (two deployments can share one Redis).
    redis_key_prefix: str = Field(default="tandem:", min_length=1, max_length=80, alias="REDIS_KEY_PREFIX")


class LogSettings(SettingsPart):
    """How much every process logs (JSON lines, tandem/logs.py)."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")
