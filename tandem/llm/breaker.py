"""A circuit breaker for the model: stop calling an endpoint that keeps failing (issue 15).

Without it, while the LLM endpoint hangs every fallback turn waits the whole
``LLM_TOTAL_TIMEOUT_SECONDS`` (15 s) before the chain degrades to retrieval: measured under load
with the endpoint hanging, the fallback step's p95 was 15.1 s for the whole outage, and each
waiting turn holds its conversation's lock and an action-server slot. After
``LLM_BREAKER_FAILURES`` consecutive outage failures (timeouts, connection errors, 5xx, 429) the
breaker *opens*: calls fail at once (reason ``circuit_open``, so the chain answers from the
knowledge base without waiting) for ``LLM_BREAKER_COOLDOWN_SECONDS``; then one trial call goes
through (*half-open*; the others still fail at once) and its outcome closes or reopens it. A
refusal (another 4xx) is no outage: the endpoint answered. ``LLM_BREAKER_FAILURES=0`` turns the
breaker off. The state is per process (each action server learns on its own; a few more calls at
worst).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# LlmUnavailable reasons that say the endpoint is down or overloaded (tandem/llm/client.py).
OUTAGE_REASONS = frozenset({"timeout", "connection", "server_error", "rate_limited"})


class CircuitBreaker:
    """Closed → open after ``failures`` outage failures in a row → half-open after ``cooldown_seconds``."""

    def __init__(self, *, failures: int, cooldown_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (a trial call is out, or may go)."""
        if self._opened_at is None:
            return "closed"
        if self._trial or self._clock() - self._opened_at >= self._cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go now (in half-open, only the one trial)."""
        if self._threshold <= 0 or self._opened_at is None:
            return True
        if self._trial or self._clock() - self._opened_at < self._cooldown:
            return False
        self._trial = True
        return True

    def record(self, outage: bool | None) -> None:
        """The outcome of an allowed call: True an outage failure, False an answer (or a refusal),
        None no evidence (the call was cancelled): a trial call may go again."""
        self._trial = False
        if outage is None:
            return
        if not outage:
            self._failures = 0
            self._opened_at = None
            return
        self._failures += 1
        if self._threshold > 0 and (self._opened_at is not None or self._failures >= self._threshold):
            self._opened_at = self._clock()  # opens, or reopens after a failed trial


__all__ = ["OUTAGE_REASONS", "CircuitBreaker"]
