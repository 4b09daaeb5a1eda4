"""The KPI report day by day (UTC), and a PNG of the trend (``python -m tandem.cli kpi --plot``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tandem.analytics.kpi import Window, kpi_report
from tandem.analytics.sessions import SessionRecord

RATES = ("containment_rate", "task_success_rate", "fallback_rate", "handoff_rate", "csat")


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def daily_reports(
    records: Sequence[SessionRecord], *, now: float, idle_seconds: float, window: Window | None = None
) -> list[tuple[date, dict[str, Any]]]:
    """One report per UTC day from the first to the last session the window covers."""
    window = window or Window()
    covered = [r for r in records if window.covers(r)]
    if not covered:
        return []
    first = datetime.fromtimestamp(min(r.started_at for r in covered), UTC).date()
    last = datetime.fromtimestamp(max(r.started_at for r in covered), UTC).date()
    days = []
    day = first
    while day <= last:
        one_day = replace(window, since=_midnight(day), until=_midnight(day + timedelta(days=1)))
        days.append((day, kpi_report(covered, now=now, idle_seconds=idle_seconds, window=one_day)))
        day += timedelta(days=1)
    return days


def plot_trend(days: Sequence[tuple[date, dict[str, Any]]], path: Path) -> None:
    """Sessions per day (bars) and the main rates (lines) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=(1, 2))
    labels = [day.isoformat() for day, _ in days]
    top.bar(labels, [report["sessions"] for _, report in days], color="#7a9cc6")
    top.set_ylabel("sessions")
    for key in RATES:
        values = [report[key] if report[key] is not None else float("nan") for _, report in days]
        bottom.plot(labels, values, marker="o", label=key.removesuffix("_rate"))
    bottom.set_ylim(0, 1.05)
    bottom.set_ylabel("share")
    bottom.legend(loc="lower left", fontsize="small", ncols=len(RATES))
    bottom.tick_params(axis="x", labelrotation=45)
    figure.suptitle("tandem KPIs per day (UTC)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
