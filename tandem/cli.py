"""Command line: ``python -m tandem.cli migrate|seed|reset-db|expire-holds``.

Configuration comes from the environment (DATABASE_URL, SCHEDULE_DAYS, ...), as everywhere.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from tandem.clock import utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.db.migrate import downgrade_base, upgrade_head
from tandem.seed import SeedReport, seed
from tandem.services.bookings import expire_holds
from tandem.settings import Settings, load_settings

log = logging.getLogger("tandem.cli")


def migrate(settings: Settings) -> None:
    """``alembic upgrade head`` against ``settings.database_url``."""
    upgrade_head(settings)
    log.info("database migrated to head")


def run_seed(settings: Settings) -> SeedReport:
    """Migrate, then add whatever demo data is missing (idempotent)."""
    engine = create_engine_from_settings(settings)
    try:
        upgrade_head(settings, engine=engine)
        started = time.perf_counter()
        with make_session_factory(engine).begin() as session:
            report = seed(session, settings=settings, now=utc_now())
        log.info("seeded in %.1f s: %s", time.perf_counter() - started, report)
        return report
    finally:
        engine.dispose()


def reset_db(settings: Settings) -> SeedReport:
    """Drop every table (migrations down to base), migrate up again and seed. Destroys data."""
    downgrade_base(settings)
    log.warning("all tables dropped")
    return run_seed(settings)


def run_expire_holds(settings: Settings) -> int:
    """Release the seats of bookings whose payment hold expired (for a periodic job)."""
    engine = create_engine_from_settings(settings)
    try:
        with make_session_factory(engine).begin() as session:
            count = expire_holds(session, now=utc_now())
        log.info("expired %d held bookings", count)
        return count
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="upgrade the database schema to the latest revision")
    sub.add_parser("seed", help="migrate, then insert the demo schedule, customers and bookings")
    reset = sub.add_parser("reset-db", help="drop all tables, migrate and seed (destroys data)")
    reset.add_argument("--yes", action="store_true", help="confirm dropping all data")
    sub.add_parser("expire-holds", help="cancel held bookings whose payment window has passed")
    args = parser.parse_args(argv)

    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "migrate":
        migrate(settings)
    elif args.command == "seed":
        run_seed(settings)
    elif args.command == "reset-db":
        if not args.yes:
            log.error("reset-db drops every table; run again with --yes to confirm")
            return 2
        reset_db(settings)
    elif args.command == "expire-holds":
        run_expire_holds(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
