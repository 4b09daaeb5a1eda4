"""Prometheus metrics of the fallback chain, registered in a registry the caller passes in.

The action server passes its own registry (or ``prometheus_client.REGISTRY``); tests pass a fresh
``CollectorRegistry`` each, so counters never leak between tests.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
_OVERHEAD_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)


class FallbackMetrics:
    """Tokens, cost, latency, cache hits, errors and decisions of the fallback chain."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.tokens = Counter(
            "tandem_llm_tokens_total", "LLM tokens used", ["kind"], registry=registry
        )  # kind: prompt | completion
        self.cost = Counter("tandem_llm_cost_total", "LLM cost in LLM_PRICE_CURRENCY", ["currency"], registry=registry)
        self.latency = Histogram(
            "tandem_llm_latency_seconds",
            "LLM call latency, retries included",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.calls = Counter("tandem_llm_calls_total", "LLM calls by outcome", ["outcome"], registry=registry)
        self.cache = Counter("tandem_llm_cache_total", "Answer cache lookups", ["result"], registry=registry)
        self.budget_refusals = Counter(
            "tandem_llm_budget_refusals_total",
            "Model calls refused by a token budget",
            ["budget"],
            registry=registry,
        )  # budget: conversation | client | day
        self.summaries = Counter(
            "tandem_llm_handoff_summaries_total", "Handoff summaries by outcome", ["outcome"], registry=registry
        )  # outcome: ok | empty | no_transcript | budget_<scope> | budget_unavailable | llm_<reason>
        self.decisions = Counter(
            "tandem_fallback_decisions_total", "Fallback decisions", ["kind", "mode"], registry=registry
        )
        self.overhead = Histogram(
            "tandem_fallback_overhead_seconds",
            "Fallback chain time excluding the model call",
            buckets=_OVERHEAD_BUCKETS,
            registry=registry,
        )
