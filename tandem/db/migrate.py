"""Run the Alembic migrations programmatically (``tandem.cli migrate``, tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from tandem.db.engine import create_engine_from_settings
from tandem.settings import DatabaseSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    """An Alembic config that does not depend on the working directory or an ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py uses this engine instead of reading a URL (URLs may contain '%', which ini
    # interpolation would mangle).
    config.attributes["engine"] = engine
    return config


def upgrade_head(settings: DatabaseSettings, *, engine: Engine | None = None) -> None:
    """Bring the database to the latest schema revision."""
    _run(settings, engine, lambda cfg: command.upgrade(cfg, "head"))


def downgrade_base(settings: DatabaseSettings, *, engine: Engine | None = None) -> None:
    """Drop every table the migrations created (used by ``reset-db``)."""
    _run(settings, engine, lambda cfg: command.downgrade(cfg, "base"))


def _run(settings: DatabaseSettings, engine: Engine | None, action: Callable[[Config], None]) -> None:
    own = engine is None
    eng = engine or create_engine_from_settings(settings)
    try:
        action(alembic_config(eng))
    finally:
        if own:
            eng.dispose()
