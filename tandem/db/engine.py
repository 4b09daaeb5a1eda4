"""Engine and session factory, built from :class:`~tandem.settings.Settings` on demand.

Nothing is created at import time and nothing is kept in module globals: the process that starts
(action server, CLI, test) builds one engine and passes the session factory down.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tandem.settings import DatabaseSettings

log = logging.getLogger(__name__)

SessionFactory = sessionmaker[Session]


def create_engine_from_settings(settings: DatabaseSettings, **engine_kwargs: Any) -> Engine:
    """An engine for ``settings.database_url`` with the timeouts and pragmas this app relies on.

    SQLite: the database folder is created if missing, the connection may be used from worker
    threads (tools run in ``asyncio.to_thread``), WAL lets readers run beside the single writer,
    and ``busy_timeout`` makes concurrent writers wait instead of failing at once.
    PostgreSQL: ``connect_timeout`` and a server-side ``statement_timeout`` so that no call can
    hang a tool past its own timeout for long; ``pool_pre_ping`` survives server restarts.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": float(settings.db_connect_timeout_seconds),
            },
            **engine_kwargs,
        )
        busy_ms = settings.db_statement_timeout_ms

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
                cursor.execute("PRAGMA synchronous=NORMAL")
            finally:
                cursor.close()

        return engine

    # pool_pre_ping unless the caller decides (the gateway passed it too: a TypeError on PostgreSQL).
    engine_kwargs.setdefault("pool_pre_ping", True)
    return create_engine(
        url,
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms}",
        },
        **engine_kwargs,
    )


def make_session_factory(engine: Engine) -> SessionFactory:
    """Sessions for one unit of work each: ``with sessions.begin() as session: ...``.

    ``expire_on_commit=False`` because services return plain values built inside the
    transaction, and nothing should lazily reload after commit.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)
