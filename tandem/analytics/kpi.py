"""Session records → the KPI report: one dict of numbers, the same from either source.

Every rate is a share in [0, 1] rounded to 4 places, ``None`` when its denominator is zero (no
data is not 0 %). Definitions, each after a named anchor (README: Analytics):

- ``sessions``: sessions with a user message that started in the window; ``engaged_sessions``:
  those with a turn beyond small talk (Copilot Studio: engaged sessions);
- ``containment_rate``: engaged sessions without a handoff (Rasa Pro analytics, Copilot Studio);
  ``containment_24h_rate``: of those, the ones whose conversation did not come back within 24 h
  (Dialogflow CX's "no return" containment);
- ``task_success_rate``: engaged sessions with a successful task outcome (Rasa Studio: task
  completion, from the actions' recorded outcomes, not from NLU labels);
- ``handoff_rate`` (and ``handoffs_by_reason``): engaged sessions in which a ticket was opened
  (Copilot Studio: escalation rate);
- ``abandonment_rate``: engaged sessions that are over (a later session began or
  ANALYTICS_SESSION_IDLE_MINUTES passed) with no success and no handoff (Copilot Studio:
  abandoned);
- ``fallback_rate`` (and ``fallback_turns_by_stage``): user turns the fallback chain handled
  (Dialogflow CX: no-match rate);
- ``error_rate``: user turns in which a tool call failed;
- ``csat``: share of ratings that are 4 or 5 (the usual CSAT); ``csat_mean``: the mean rating;
  ``csat_response_rate``: rated sessions among those asked for a rating;
- ``turn_latency_p50_ms`` / ``turn_latency_p95_ms``: Rasa's turn latency, nearest-rank
  percentiles; ``first_response_p50_ms``;
- ``tool_success_rate``: tool calls that did not fail (a business "no" is a success);
- ``cache_hit_rate``: model answers served from the answer cache;
- ``llm_cost`` and ``cost_per_conversation``: LLM cost in LLM_PRICE_CURRENCY, per session.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from tandem.analytics.sessions import SessionRecord

RETURN_WINDOW_SECONDS = 24 * 3600
KPI_KEYS = (
    "sessions",
    "engaged_sessions",
    "containment_rate",
    "task_success_rate",
    "fallback_rate",
    "handoff_rate",
    "abandonment_rate",
    "csat",
    "csat_response_rate",
    "turn_latency_p95_ms",
    "tool_success_rate",
    "cache_hit_rate",
    "cost_per_conversation",
)


@dataclass(frozen=True)
class Window:
    """Which sessions a report covers: started in [since, until), on ``channel`` (None: all)."""

    since: float | None = None
    until: float | None = None
    channel: str | None = None

    def covers(self, record: SessionRecord) -> bool:
        return (
            (self.since is None or record.started_at >= self.since)
            and (self.until is None or record.started_at < self.until)
            and (self.channel is None or record.channel == self.channel)
        )


SESSION_STATUSES = ("handed_off", "succeeded", "abandoned", "open", "not_engaged")


def session_status(record: SessionRecord, *, now: float, idle_seconds: float) -> str:
    """One word for a session (the first that applies): ``not_engaged``, ``handed_off``,
    ``succeeded``, ``abandoned`` (over without either) or ``open`` (may still go either way)."""
    if not record.engaged:
        return "not_engaged"
    if record.handoff:
        return "handed_off"
    if record.success:
        return "succeeded"
    return "abandoned" if record.ended(now=now, idle_seconds=idle_seconds) else "open"


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def percentile(values: Sequence[int], q: float) -> int | None:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def _money(amount: Decimal) -> float:
    return float(amount.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def kpi_report(
    records: Iterable[SessionRecord], *, now: float, idle_seconds: float, window: Window = Window()
) -> dict[str, Any]:
    """The KPIs of the ``records`` the window covers (``now``: when sessions count as over)."""
    sessions = [r for r in records if window.covers(r)]
    engaged = [r for r in sessions if r.engaged]
    contained = [r for r in engaged if not r.handoff]
    no_return = [
        r for r in contained if r.next_started_at is None or r.next_started_at - r.ended_at > RETURN_WINDOW_SECONDS
    ]
    abandoned = [r for r in engaged if not r.success and not r.handoff and r.ended(now=now, idle_seconds=idle_seconds)]
    user_turns = sum(r.user_turns for r in sessions)
    stages: Counter[str] = Counter()
    for r in sessions:
        stages.update(r.fallback_stages)
    ratings = [r.rating for r in sessions if r.rating is not None]
    asked = sum(1 for r in sessions if r.rating_asked)
    latencies = [ms for r in sessions for ms in r.turn_latencies_ms]
    first_responses = [r.first_response_ms for r in sessions if r.first_response_ms is not None]
    tool_calls = sum(r.tool_calls for r in sessions)
    tool_failures = sum(r.tool_failures for r in sessions)
    answers = sum(r.llm_answers for r in sessions)
    cost = sum((r.llm_cost for r in sessions), Decimal(0))
    return {
        "sessions": len(sessions),
        "engaged_sessions": len(engaged),
        "user_turns": user_turns,
        "containment_rate": share(len(contained), len(engaged)),
        "containment_24h_rate": share(len(no_return), len(engaged)),
        "task_success_rate": share(sum(1 for r in engaged if r.success), len(engaged)),
        "fallback_rate": share(sum(r.fallback_turns for r in sessions), user_turns),
        "fallback_turns_by_stage": dict(sorted(stages.items())),
        "handoff_rate": share(sum(1 for r in engaged if r.handoff), len(engaged)),
        "handoffs_by_reason": dict(sorted(Counter(r.handoff_reason for r in sessions if r.handoff_reason).items())),
        "abandonment_rate": share(len(abandoned), len(engaged)),
        "error_rate": share(sum(r.error_turns for r in sessions), user_turns),
        "csat": share(sum(1 for rating in ratings if rating >= 4), len(ratings)),
        "csat_mean": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "csat_response_rate": share(len(ratings), asked),
        "ratings": len(ratings),
        "turn_latency_p50_ms": percentile(latencies, 50),
        "turn_latency_p95_ms": percentile(latencies, 95),
        "first_response_p50_ms": percentile(first_responses, 50),
        "tool_calls": tool_calls,
        "tool_success_rate": share(tool_calls - tool_failures, tool_calls),
        "cache_hit_rate": share(sum(r.llm_cache_hits for r in sessions), answers),
        "llm_tokens": sum(r.llm_prompt_tokens + r.llm_completion_tokens for r in sessions),
        "llm_cost": _money(cost),
        "cost_per_conversation": _money(cost / len(sessions)) if sessions else None,
        "outcomes": dict(sorted(Counter(o for r in sessions for o in r.outcomes).items())),
        "channels": dict(sorted(Counter(r.channel or "unknown" for r in sessions).items())),
    }
