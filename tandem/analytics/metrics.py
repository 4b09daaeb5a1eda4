"""Prometheus metrics of the action server's tools and of the analytics consumer.

Each class registers its metrics in the registry the caller passes in (the process's
``prometheus_client.REGISTRY`` in production, a fresh ``CollectorRegistry`` per test), as
:class:`tandem.llm.metrics.FallbackMetrics` does. Labels are bounded vocabularies: tool names come
from the tool registry, outcomes from :func:`tool_outcome`, stages and reasons from the fallback
chain's and the handoff's codes, channels from :func:`tandem.conversation.channel_name`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_TURN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 30.0)

# A tool call's outcome as a metric label: its exception type, normalised to a short code.
_OUTCOMES = {
    "ok": "ok",
    "NotFound": "not_found",
    "Invalid": "invalid",
    "Conflict": "conflict",
    "RateLimited": "rate_limited",
    "Unavailable": "unavailable",
    "Forbidden": "forbidden",
}
# Business answers: the tool worked and said no (an unknown reference, a full flight, a limit).
BUSINESS_OUTCOMES = frozenset({"not_found", "invalid", "conflict", "rate_limited"})


def tool_outcome(raw: str) -> str:
    """``ok``, a business answer (``not_found`` ...), ``unavailable``, ``forbidden`` or ``error``."""
    return _OUTCOMES.get(raw, "error")


def tool_failed(outcome: str) -> bool:
    """Whether a tool call failed (unavailable, forbidden, crashed), as opposed to answering."""
    return outcome not in BUSINESS_OUTCOMES and outcome != "ok"


class ToolMetrics:
    """Tool calls by tool and outcome, failures by tool, latency by tool (the action server)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "tandem_tool_calls_total", "Tool calls by tool and outcome", ["tool", "outcome"], registry=registry
        )
        self.errors = Counter(
            "tandem_tool_errors_total",
            "Tool calls that failed (unavailable, forbidden, crashed)",
            ["tool"],
            registry=registry,
        )
        self.latency = Histogram(
            "tandem_tool_latency_seconds", "Tool call latency", ["tool"], buckets=_TOOL_BUCKETS, registry=registry
        )

    def observe(self, tool: str, outcome: str, seconds: float) -> None:
        """Count one call of ``tool`` (``outcome`` as :func:`tool_outcome` returns it)."""
        self.calls.labels(tool=tool, outcome=outcome).inc()
        if tool_failed(outcome):
            self.errors.labels(tool=tool).inc()
        self.latency.labels(tool=tool).observe(max(seconds, 0.0))


class ConsumerMetrics:
    """What the analytics consumer sees in Rasa's event stream, each event counted once."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "tandem_analytics_events_total", "Rasa events consumed, by event type", ["type"], registry=registry
        )
        self.duplicates = Counter(
            "tandem_analytics_duplicate_events_total", "Redelivered events that changed nothing", registry=registry
        )
        self.rejected = Counter(
            "tandem_analytics_rejected_messages_total", "Broker messages that were not a Rasa event", registry=registry
        )
        self.intent_confidence = Histogram(
            "tandem_intent_confidence",
            "NLU confidence of the top intent of each user message",
            ["channel"],
            buckets=_CONFIDENCE_BUCKETS,
            registry=registry,
        )
        self.fallback_turns = Counter(
            "tandem_fallback_turns_total",
            "User turns the fallback chain handled, by stage",
            ["stage"],
            registry=registry,
        )
        self.handoffs = Counter(
            "tandem_handoffs_total", "Handoffs to a person, by reason", ["reason"], registry=registry
        )
        self.outcomes = Counter(
            "tandem_task_outcomes_total",
            "Task outcomes recorded by the actions",
            ["outcome", "channel"],
            registry=registry,
        )
        self.ratings = Counter(
            "tandem_csat_ratings_total", "Conversation ratings (1-5)", ["rating", "channel"], registry=registry
        )
        self.turn_latency = Histogram(
            "tandem_rasa_turn_seconds",
            "From a user message to Rasa listening again, in Rasa's event timestamps",
            ["channel"],
            buckets=_TURN_BUCKETS,
            registry=registry,
        )


# The KPI report's numbers as gauges (``tandem_kpi_<key>{channel}``), computed by the analytics
# consumer's collector from its session table over ANALYTICS_KPI_WINDOW_HOURS at scrape time
# (tandem/analytics/collector.py); ``channel="all"`` is every channel together.
KPI_GAUGES = {
    "sessions": "Rasa sessions started in the window",
    "engaged_sessions": "Sessions in which the user asked for something beyond greetings",
    "containment_rate": "Engaged sessions that ended without a handoff",
    "task_success_rate": "Engaged sessions with at least one successful task outcome",
    "fallback_rate": "User turns handled by the fallback chain",
    "handoff_rate": "Engaged sessions handed to a person",
    "abandonment_rate": "Engaged sessions that ended with no success and no handoff",
    "error_rate": "User turns in which a tool call failed",
    "csat": "Share of ratings that are 4 or 5",
    "csat_mean": "Mean rating (1-5)",
    "csat_response_rate": "Sessions asked for a rating that gave one",
    "turn_latency_p95_seconds": "95th percentile of Rasa's turn latency",
    "tool_success_rate": "Tool calls that did not fail",
    "cache_hit_rate": "LLM answers served from the answer cache",
    "cost_per_conversation": "LLM cost per session, in LLM_PRICE_CURRENCY",
}
KPI_GAUGE_PREFIX = "tandem_kpi_"
# Sessions of the same window by status (tandem.analytics.kpi.session_status) and channel.
SESSIONS_BY_STATUS_GAUGE = "tandem_sessions_by_status"
