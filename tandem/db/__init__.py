"""Database layer: models, engine/session factory, migrations runner."""

from tandem.db.engine import SessionFactory, create_engine_from_settings, make_session_factory

__all__ = ["SessionFactory", "create_engine_from_settings", "make_session_factory"]
