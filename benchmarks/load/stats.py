"""The numbers of a level: turns/s, latency percentiles, errors. Pure functions (unit-tested)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Turn:
    """One turn as the load generator saw it."""

    session: int
    index: int
    text: str
    latency_ms: float
    status: int | None  # None: no HTTP answer (timeout, connection error)
    replies: int
    error: str | None  # None, "timeout", "connection", "status_<code>", "empty_reply", "bad_body"
    # For the ordering check (benchmarks/load/ordering.py): the turn's correlation id as Rasa stores
    # it in the user event's metadata (None: unknown, e.g. no answer), the texts of the replies the
    # client got, and the position of the turn's burst in its conversation (sequential turns: its
    # index; turns of one burst share it, and their order among themselves is free).
    correlation_id: str | None = None
    reply_texts: tuple[str, ...] = ()
    burst: int | None = None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile with linear interpolation between closest ranks (NumPy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def turns_per_second(completed: int, wall_seconds: float) -> float:
    """Completed turns over the level's wall time (first turn sent to last answer received)."""
    return completed / wall_seconds if wall_seconds > 0 else 0.0


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def summarize_level(turns: Sequence[Turn], *, sessions: int, wall_seconds: float) -> dict[str, Any]:
    """A level's numbers. Latency percentiles cover every attempted turn, failed ones included
    (a timed-out turn counts with the time it waited); turns/s counts completed (error-free) turns."""
    latencies = [t.latency_ms for t in turns]
    errors = Counter(t.error for t in turns if t.error is not None)
    completed = len(turns) - sum(errors.values())
    return {
        "sessions": sessions,
        "attempted": len(turns),
        "completed": completed,
        "wall_s": round(wall_seconds, 2),
        "turns_per_s": round(turns_per_second(completed, wall_seconds), 2),
        "p50_ms": _ms(percentile(latencies, 50)),
        "p95_ms": _ms(percentile(latencies, 95)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "mean_ms": _ms(sum(latencies) / len(latencies)) if latencies else None,
        "max_ms": _ms(max(latencies)) if latencies else None,
        "errors": sum(errors.values()),
        "error_rate": round(sum(errors.values()) / len(turns), 4) if turns else 0.0,
        "errors_by_kind": dict(sorted(errors.items())),
    }
