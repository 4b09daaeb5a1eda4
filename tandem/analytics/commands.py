"""The analytics commands of ``python -m tandem.cli``: ``kpi``, ``analytics consume`` and
``analytics rebuild`` (the command line only parses arguments and calls these)."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tandem.analytics.collector import KpiCollector
from tandem.analytics.consumer import AnalyticsConsumer, consume
from tandem.analytics.kpi import KPI_KEYS, Window, kpi_report
from tandem.analytics.metrics import ConsumerMetrics
from tandem.analytics.sessions import SessionRecord
from tandem.analytics.store import all_senders, rebuild_sessions, stored_sessions
from tandem.analytics.tracker_source import tracker_engine, tracker_sessions
from tandem.analytics.trend import daily_reports, plot_trend
from tandem.clock import utc_now
from tandem.db.engine import create_engine_from_settings, make_session_factory
from tandem.logs import configure_json_logging
from tandem.metrics_http import serve_metrics
from tandem.settings import AnalyticsSettings, DatabaseSettings

log = logging.getLogger("tandem.analytics")

EMBEDDED_TRACKER_URL = "sqlite:///var/rasa_tracker.db"  # scripts/env.sh's default


class SourceMissing(Exception):
    """The store a report should read does not exist."""


def parse_moment(value: str) -> float:
    """An ISO 8601 date or time (UTC when it names no zone) as epoch seconds; ``ValueError`` else."""
    moment = datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _sqlite_file_missing(url: str) -> bool:
    parsed = make_url(url)
    database = parsed.database
    return parsed.get_backend_name() == "sqlite" and bool(database) and not Path(str(database)).exists()


def tracker_records(settings: AnalyticsSettings, *, since: float | None) -> list[SessionRecord]:
    """The sessions in the tracker store (TRACKER_DB_URL, else the embedded SQLite file)."""
    url = settings.tracker_db_url.get_secret_value() if settings.tracker_db_url else EMBEDDED_TRACKER_URL
    if _sqlite_file_missing(url):
        raise SourceMissing(f"no tracker store at {make_url(url).database} (has Rasa run? TRACKER_DB_URL)")
    engine = tracker_engine(url)
    try:
        return list(tracker_sessions(engine, since=since))
    finally:
        engine.dispose()


def analytics_records(database: DatabaseSettings, *, since: float | None) -> list[SessionRecord]:
    """The sessions the analytics consumer stored (DATABASE_URL)."""
    engine = create_engine_from_settings(database)
    try:
        with make_session_factory(engine)() as session:
            return list(stored_sessions(session, since=since))
    finally:
        engine.dispose()


def format_report(report: dict[str, Any]) -> str:
    """The report for people: the contract's keys first, then the rest, one per line."""
    keys = [*KPI_KEYS, *(k for k in report if k not in KPI_KEYS)]
    width = max(len(k) for k in keys)
    lines = []
    for key in keys:
        value = report.get(key)
        shown = "n/a" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines) + "\n"


def run_kpi(
    *,
    analytics: AnalyticsSettings,
    database: DatabaseSettings,
    source: str,
    since: float | None,
    until: float | None,
    channel: str | None,
    now: float | None = None,
    plot: Path | None = None,
) -> dict[str, Any]:
    """The KPI report of the sessions that started in [since, until) on ``channel`` (and, with
    ``plot``, a PNG of its daily trend there)."""
    if source == "analytics":
        records = analytics_records(database, since=since)
    else:
        records = tracker_records(analytics, since=since)
    moment = time.time() if now is None else now
    idle = analytics.analytics_session_idle_minutes * 60
    window = Window(since=since, until=until, channel=channel)
    if plot is not None:
        plot_trend(daily_reports(records, now=moment, idle_seconds=idle, window=window), plot)
    return kpi_report(records, now=moment, idle_seconds=idle, window=window)


def kpi_command(args: Any, *, analytics: AnalyticsSettings, database: DatabaseSettings, out: Any, err: Any) -> int:
    try:
        report = run_kpi(
            analytics=analytics,
            database=database,
            source=args.source,
            since=args.since,
            until=args.until,
            channel=args.channel,
            plot=args.plot,
        )
    except SourceMissing as error:
        err.write(f"{error}\n")
        return 2
    except SQLAlchemyError as error:
        err.write(f"database error ({type(error).__name__}); is the store reachable and migrated?\n")
        return 1
    out.write(json.dumps(report) + "\n" if args.json else format_report(report))
    return 0


def rebuild_all(database: DatabaseSettings) -> int:
    """Recompute every stored conversation's sessions (after a change of the definitions)."""
    engine = create_engine_from_settings(database)
    try:
        with make_session_factory(engine).begin() as session:
            rebuilt = rebuild_sessions(session, all_senders(session), now=utc_now())
        return sum(len(records) for records in rebuilt.values())
    finally:
        engine.dispose()


def run_consumer(
    analytics: AnalyticsSettings, database: DatabaseSettings, *, stop: threading.Event, log_level: str = "INFO"
) -> int:
    """``analytics consume``: the consumer until SIGTERM / SIGINT (exit 2 without EVENT_BROKER_URL),
    logging JSON lines (tandem/logs.py) like the gateway and the action server."""
    if analytics.event_broker_url is None:
        log.error("EVENT_BROKER_URL is not set: there is no event stream to consume")
        return 2
    configure_json_logging(log_level)
    engine = create_engine_from_settings(database)
    sessions = make_session_factory(engine)
    metrics = None
    token = analytics.analytics_metrics_token.get_secret_value() if analytics.analytics_metrics_token else ""
    if analytics.analytics_metrics_port and token:
        metrics = ConsumerMetrics(REGISTRY)
        REGISTRY.register(
            KpiCollector(
                sessions,
                window_hours=analytics.analytics_kpi_window_hours,
                idle_seconds=analytics.analytics_session_idle_minutes * 60,
            )
        )
        try:
            serve_metrics(
                analytics.analytics_metrics_port,
                token=token,
                registry=REGISTRY,
                host=analytics.analytics_metrics_host,
            )
        except (OSError, ValueError) as error:
            log.warning("metrics not exposed on port %s: %s", analytics.analytics_metrics_port, error)
    elif analytics.analytics_metrics_port:
        log.warning("ANALYTICS_METRICS_PORT is set but ANALYTICS_METRICS_TOKEN is not: metrics not exposed")
    try:
        consume(
            AnalyticsConsumer(sessions, metrics=metrics),
            url=analytics.event_broker_url.get_secret_value(),
            queue=analytics.event_broker_queue,
            prefetch=analytics.analytics_prefetch,
            stop=stop,
        )
    finally:
        engine.dispose()
    return 0


def add_parsers(sub: Any, moment: Any) -> None:
    """The ``kpi`` and ``analytics`` sub-commands."""
    kpi = sub.add_parser("kpi", help="the KPI report (README: Analytics)")
    kpi.add_argument("--since", type=moment, metavar="ISO", help="sessions started at or after (UTC unless a zone)")
    kpi.add_argument("--until", type=moment, metavar="ISO", help="sessions started before")
    kpi.add_argument("--channel", help="one channel: website, slack, telegram, shell, rest")
    kpi.add_argument("--json", action="store_true", help="one JSON object")
    kpi.add_argument("--plot", type=Path, metavar="PNG", help="also draw the daily trend of the main rates into PNG")
    kpi.add_argument(
        "--source",
        choices=("tracker", "analytics"),
        default="tracker",
        help="tracker: Rasa's tracker store (TRACKER_DB_URL; default); analytics: the consumer's tables (DATABASE_URL)",
    )
    analytics = sub.add_parser("analytics", help="Rasa's event stream → the analytics tables")
    analytics_sub = analytics.add_subparsers(dest="analytics_command", required=True)
    analytics_sub.add_parser(
        "consume", help="consume EVENT_BROKER_QUEUE until SIGTERM (metrics: ANALYTICS_METRICS_PORT)"
    )
    analytics_sub.add_parser("rebuild", help="recompute every session row from the stored events")
