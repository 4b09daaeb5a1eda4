"""Command line: ``python -m tandem.cli migrate|seed [--demo]|reset-db|expire-holds [--every SECONDS]``,
``telegram set-webhook URL [--drop-pending-updates]`` (tandem/channel_admin.py),
``agent add --email EMAIL --name NAME [--role agent|admin]`` (password on standard input) and
``agent disable --email EMAIL``, ``kpi [--since ISO] [--until ISO] [--channel C] [--json]
[--source tracker|analytics]`` and ``analytics consume|rebuild`` (tandem/analytics/commands.py).

Configuration comes from the environment (DATABASE_URL, SCHEDULE_DAYS, SEED_DEMO_DATA, ...), as
everywhere.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tandem.analytics import commands as analytics_commands
from tandem.channel_admin import telegram_set_webhook
from tandem.clock import utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import downgrade_base, upgrade_head
from tandem.errors import Conflict, Invalid
from tandem.seed import SeedReport, seed
from tandem.services.agents import add_agent, set_active
from tandem.services.bookings import expire_holds
from tandem.settings import BusinessSettings, DatabaseSettings, load_cli_settings

log = logging.getLogger("tandem.cli")


class SeedSettings(Protocol):
    """What seeding reads: the database and the business rules (the CLI's and the action server's settings)."""

    @property
    def database(self) -> DatabaseSettings: ...

    @property
    def business(self) -> BusinessSettings: ...


def migrate(settings: DatabaseSettings) -> None:
    """``alembic upgrade head`` against ``settings.database_url``."""
    upgrade_head(settings)
    log.info("database migrated to head")


def run_seed(settings: SeedSettings, *, demo: bool | None = None) -> SeedReport:
    """Migrate, then add whatever seed data is missing (idempotent).

    The airports and the schedule always; the demo customers and bookings (public references and
    names: anyone who read the README could open them) only with ``demo`` — by default
    ``settings.business.seed_demo_data`` (SEED_DEMO_DATA).
    """
    with_demo = settings.business.seed_demo_data if demo is None else demo
    engine = create_engine_from_settings(settings.database)
    try:
        upgrade_head(settings.database, engine=engine)
        started = time.perf_counter()
        with make_session_factory(engine).begin() as session:
            report = seed(session, settings=settings.business, now=utc_now(), demo=with_demo)
        log.info("seeded in %.1f s: %s", time.perf_counter() - started, report)
        return report
    finally:
        engine.dispose()


def reset_db(settings: SeedSettings, *, demo: bool | None = None) -> SeedReport:
    """Drop every table (migrations down to base), migrate up again and seed. Destroys data."""
    downgrade_base(settings.database)
    log.warning("all tables dropped")
    return run_seed(settings, demo=demo)


def run_expire_holds(settings: DatabaseSettings, *, engine: Engine | None = None) -> int:
    """Release the seats of bookings whose payment hold expired, in one transaction."""
    own = engine is None
    eng = engine or create_engine_from_settings(settings)
    try:
        with make_session_factory(eng).begin() as session:
            count = expire_holds(session, now=utc_now())
        log.info("expired %d held bookings", count)
        return count
    finally:
        if own:
            eng.dispose()


def expire_holds_every(settings: DatabaseSettings, seconds: float, *, stop: threading.Event) -> None:
    """Run :func:`run_expire_holds` every ``seconds`` until ``stop`` is set (SIGTERM, SIGINT).

    The scheduled job of ``make run`` and the compose stack: without it unpaid holds keep their
    seats until an operator types the command. Each run is its own transaction; a failed run
    (database down, lock timeout) is logged and the next one tries again — the loop never dies of
    one. A signal during a run lets it finish, then the loop ends.
    """
    engine = create_engine_from_settings(settings)
    log.info("expiring held bookings every %g s", seconds)
    try:
        while not stop.is_set():
            try:
                run_expire_holds(settings, engine=engine)
            except Exception as exc:  # any failure of one run; the next run retries
                log.error("expire-holds run failed: %s", type(exc).__name__)
                log.debug("expire-holds failure", exc_info=True)
            stop.wait(seconds)
    finally:
        engine.dispose()
    log.info("expire-holds loop stopped")


def read_password() -> str:
    """The new agent's password: typed twice at a terminal (not echoed), else one line of standard input.

    Never an argument: ``ps`` and the shell history would keep it. Only the line break is removed;
    spaces are part of the password. A mismatch at the terminal is ``Invalid(reason="password")``.
    """
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != first:
            raise Invalid("the passwords do not match", reason="password")
        return first
    line = sys.stdin.readline()
    return line.removesuffix("\n").removesuffix("\r")


def run_agent_add(settings: DatabaseSettings, *, email: str, name: str, role: str, password: str) -> str:
    """Add a console agent in one transaction (the schema must be migrated); returns the line to print."""
    engine = create_engine_from_settings(settings)
    try:
        with make_session_factory(engine).begin() as session:
            agent = add_agent(session, email=email, display_name=name, password=password, role=role, now=utc_now())
        return f"agent {agent.id} added: {agent.display_name} ({agent.role})"
    finally:
        engine.dispose()


def run_agent_disable(settings: DatabaseSettings, *, email: str) -> bool:
    """Disable a console agent and end its sessions; ``False`` when no agent has this e-mail."""
    engine = create_engine_from_settings(settings)
    try:
        with make_session_factory(engine).begin() as session:
            return set_active(session, email=email, active=False, now=utc_now())
    finally:
        engine.dispose()


def _agent_command(args: argparse.Namespace, settings: DatabaseSettings) -> int:
    """``agent add|disable``: the result on standard output, a refusal as one line on standard error (exit 2).

    A database error is one line too (exit 1), without the traceback: its SQL parameters would
    show the e-mail and, for a failed insert, the password hash.
    """
    try:
        if args.agent_command == "add":
            line = run_agent_add(settings, email=args.email, name=args.name, role=args.role, password=read_password())
        elif run_agent_disable(settings, email=args.email):
            line = "agent disabled"
        else:
            sys.stderr.write("no agent has this e-mail\n")
            return 2
    except (Invalid, Conflict) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    except SQLAlchemyError as exc:
        sys.stderr.write(
            f"database error ({type(exc).__name__}); is the schema migrated (python -m tandem.cli migrate)?\n"
        )
        return 1
    sys.stdout.write(line + "\n")
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping after the current run", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a number of seconds") from exc
    if not 0.1 <= seconds <= 86400:
        raise argparse.ArgumentTypeError("must be between 0.1 and 86400 seconds")
    return seconds


def _moment(value: str) -> float:
    try:
        return analytics_commands.parse_moment(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            "must be an ISO 8601 date or time, e.g. 2026-12-01 or 2026-12-01T08:00+07:00"
        ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    demo_help = "also insert the public demo customers and bookings (default: SEED_DEMO_DATA, false)"
    seed_cmd = sub.add_parser("seed", help="migrate, then insert the airports and the schedule")
    seed_cmd.add_argument("--demo", action="store_true", default=None, help=demo_help)
    reset = sub.add_parser("reset-db", help="drop all tables, migrate and seed (destroys data)")
    reset.add_argument("--yes", action="store_true", help="confirm dropping all data")
    reset.add_argument("--demo", action="store_true", default=None, help=demo_help)
    expire = sub.add_parser("expire-holds", help="cancel held bookings whose payment window has passed")
    expire.add_argument(
        "--every",
        type=_positive_seconds,
        metavar="SECONDS",
        help="keep running, once every SECONDS, until SIGTERM or SIGINT (default: run once)",
    )
    telegram = sub.add_parser("telegram", help="the Telegram bot's side of the Telegram door")
    telegram_sub = telegram.add_subparsers(dest="telegram_command", required=True)
    webhook = telegram_sub.add_parser(
        "set-webhook", help="register URL as the bot's webhook with TELEGRAM_WEBHOOK_SECRET (exit 2: not configured)"
    )
    webhook.add_argument("url", metavar="URL", help="the gateway's https://YOUR-DOMAIN/channels/telegram/webhook")
    webhook.add_argument(
        "--drop-pending-updates", action="store_true", help="discard the updates Telegram queued before this call"
    )
    agent = sub.add_parser("agent", help="the agent console's accounts (the schema must be migrated)")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    agent_add = agent_sub.add_parser(
        "add", help="add an agent; the password is read from standard input (or prompted for twice)"
    )
    agent_add.add_argument("--email", required=True, help="the agent's login")
    agent_add.add_argument("--name", required=True, help="the display name customers see (1 to 64 characters)")
    agent_add.add_argument("--role", choices=("agent", "admin"), default="agent", help="default: agent")
    agent_disable = agent_sub.add_parser("disable", help="disable an agent and end its console sessions")
    agent_disable.add_argument("--email", required=True, help="the agent's login")
    analytics_commands.add_parsers(sub, _moment)
    args = parser.parse_args(argv)

    settings = load_cli_settings()
    logging.basicConfig(level=settings.log.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "migrate":
        migrate(settings.database)
    elif args.command == "seed":
        run_seed(settings, demo=args.demo)
    elif args.command == "reset-db":
        if not args.yes:
            log.error("reset-db drops every table; run again with --yes to confirm")
            return 2
        reset_db(settings, demo=args.demo)
    elif args.command == "expire-holds":
        if args.every is None:
            run_expire_holds(settings.database)
        else:
            stop = threading.Event()
            _stop_on_signals(stop)
            expire_holds_every(settings.database, args.every, stop=stop)
    elif args.command == "telegram":
        return telegram_set_webhook(args.url, drop_pending_updates=args.drop_pending_updates)
    elif args.command == "agent":
        return _agent_command(args, settings.database)
    elif args.command == "kpi":
        return analytics_commands.kpi_command(
            args, analytics=settings.analytics, database=settings.database, out=sys.stdout, err=sys.stderr
        )
    elif args.command == "analytics":
        if args.analytics_command == "rebuild":
            log.info("rebuilt %d session rows", analytics_commands.rebuild_all(settings.database))
            return 0
        stop = threading.Event()
        _stop_on_signals(stop)
        return analytics_commands.run_consumer(
            settings.analytics, settings.database, stop=stop, log_level=settings.log.log_level
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
