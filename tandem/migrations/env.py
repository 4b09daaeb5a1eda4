"""Alembic environment: the engine comes from the caller or from tandem.settings, never the ini."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Engine

from tandem.db.engine import create_engine_from_settings
from tandem.db.models import Base
from tandem.settings import DatabaseSettings

config = context.config
target_metadata = Base.metadata

# Only the `alembic` command line has an ini file; programmatic runs keep the caller's logging.
if config.config_file_name is not None and config.attributes.get("engine") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _engine() -> tuple[Engine, bool]:
    engine = config.attributes.get("engine")
    if isinstance(engine, Engine):
        return engine, False
    return create_engine_from_settings(DatabaseSettings()), True


def run_migrations_online() -> None:
    engine, owned = _engine()
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things; batch mode rebuilds tables when needed.
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if owned:
            engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
