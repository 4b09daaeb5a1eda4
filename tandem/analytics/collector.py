"""The KPI report as Prometheus gauges: ``tandem_kpi_<key>{channel}``, computed at scrape time.

The analytics consumer registers :class:`KpiCollector`; each scrape reads the session rows of the
last ANALYTICS_KPI_WINDOW_HOURS and reports :func:`tandem.analytics.kpi.kpi_report`'s numbers for
every channel and for all of them (``channel="all"``), at most once per :data:`CACHE_SECONDS`
(scrapes from two Prometheus servers cost one query). A rate without data is not exported (no
sample is better than a made-up 0). A database failure exports nothing and is logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from tandem.analytics.kpi import Window, kpi_report, session_status
from tandem.analytics.metrics import KPI_GAUGE_PREFIX, KPI_GAUGES, SESSIONS_BY_STATUS_GAUGE
from tandem.analytics.store import stored_sessions

log = logging.getLogger(__name__)

CACHE_SECONDS = 15.0
# Gauges in seconds where the report has milliseconds.
_FROM_MS = {"turn_latency_p95_seconds": "turn_latency_p95_ms"}


class KpiCollector(Collector):
    """Exports the KPI gauges from the analytics tables."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        window_hours: float,
        idle_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.window_seconds = window_hours * 3600
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, Any]], Counter[tuple[str, str]]] | None = None

    def _reports(self) -> tuple[dict[str, dict[str, Any]], Counter[tuple[str, str]]]:
        """The reports by channel (and ``all``) and the sessions by (status, channel)."""
        now = self.clock()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1], self._cached[2]
            since = now - self.window_seconds
            with self.sessions() as session:
                records = stored_sessions(session, since=since)
            reports: dict[str, dict[str, Any]] = {
                "all": kpi_report(records, now=now, idle_seconds=self.idle_seconds, window=Window(since=since))
            }
            statuses: Counter[tuple[str, str]] = Counter(
                (session_status(r, now=now, idle_seconds=self.idle_seconds), r.channel or "unknown") for r in records
            )
            for channel in sorted({r.channel for r in records if r.channel}):
                reports[channel] = kpi_report(
                    records, now=now, idle_seconds=self.idle_seconds, window=Window(since=since, channel=channel)
                )
            self._cached = (now, reports, statuses)
            return reports, statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            reports, statuses = self._reports()
        except Exception as error:  # a scrape must not fail because the database does
            log.warning("KPI gauges not computed: %s", type(error).__name__)
            return
        for key, help_text in KPI_GAUGES.items():
            gauge = GaugeMetricFamily(KPI_GAUGE_PREFIX + key, help_text, labels=["channel"])
            source = _FROM_MS.get(key, key)
            for channel, report in reports.items():
                value = report.get(source)
                if isinstance(value, int | float):
                    gauge.add_metric([channel], value / 1000 if source != key else float(value))
            yield gauge
        by_status = GaugeMetricFamily(
            SESSIONS_BY_STATUS_GAUGE, "Sessions in the window by status and channel", labels=["status", "channel"]
        )
        for (status, channel), count in sorted(statuses.items()):
            by_status.add_metric([status, channel], float(count))
        yield by_status
