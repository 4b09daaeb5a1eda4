"""The action server's composition root: where the toolbox and the fallback chain are built.

Both are built on first use from the environment (:func:`tandem.settings.load_action_settings`),
never at import time, over one :class:`tandem.runtime.Infrastructure` (the Redis clients, key
space, rate limiter, answer cache and budgets), and kept for the life of the process (they own
the database engine's pool, the knowledge-base index and the model client). Tests replace them
with :func:`use_toolbox` and :func:`use_fallback_chain`. The recorder of fallback decisions
writes through the toolbox's database (:func:`decision_recorder`).
"""

from __future__ import annotations

import threading
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY

from tandem.analytics.metrics import ToolMetrics
from tandem.runtime import Infrastructure
from tandem.services.fallback import DecisionRecorder, FallbackChain, HandoffSummarizer
from tandem.settings import ActionSettings, load_action_settings
from tandem.tools import Toolbox


class _Registry:
    """Holds the process's toolbox and fallback chain; one instance, created explicitly below."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._toolbox: Toolbox | None = None
        self._chain: FallbackChain | None = None
        self._recorder: DecisionRecorder | None = None
        self._infra: Infrastructure | None = None
        self._tool_metrics: ToolMetrics | None = None

    def _infrastructure(self, settings: ActionSettings) -> Infrastructure:
        # Called with the lock held.
        if self._infra is None:
            self._infra = Infrastructure(settings.redis)
        return self._infra

    def get(self) -> Toolbox:
        with self._lock:
            if self._toolbox is None:
                settings = load_action_settings()
                if self._tool_metrics is None:  # once per process: the registry refuses a second copy
                    self._tool_metrics = ToolMetrics(REGISTRY)
                self._toolbox = Toolbox.from_settings(
                    settings, infra=self._infrastructure(settings), metrics=self._tool_metrics
                )
            return self._toolbox

    def set(self, toolbox: Toolbox | None) -> None:
        with self._lock:
            self._toolbox = toolbox

    def chain(self) -> FallbackChain:
        settings = self.get().settings
        with self._lock:
            if self._chain is None:
                # Indexes the knowledge base and builds the guard once per process; its metrics go
                # to the process's Prometheus registry.
                self._chain = FallbackChain.from_settings(
                    settings, registry=REGISTRY, infra=self._infrastructure(settings)
                )
            return self._chain

    def summarizer(self) -> HandoffSummarizer | None:
        # Without a model (and no chain set by a test) there is nothing to summarise with: the
        # chain is not built for that.
        with self._lock:
            chain = self._chain
        if chain is None and not self.get().settings.llm.llm_configured:
            return None
        return (chain or self.chain()).summarizer

    def set_chain(self, chain: FallbackChain | None) -> None:
        with self._lock:
            self._chain = chain

    def recorder(self) -> DecisionRecorder:
        with self._lock:
            replacement = self._recorder
        if replacement is not None:
            return replacement
        # Over the toolbox's own session factory (one engine, one pool): cheap, so built per call and
        # always in step with the current toolbox.
        box = self.get()
        return DecisionRecorder(box.sessions, timeout_seconds=box.settings.server.tool_timeout_seconds, clock=box.clock)

    def set_recorder(self, recorder: DecisionRecorder | None) -> None:
        with self._lock:
            self._recorder = recorder


_registry = _Registry()


def toolbox() -> Toolbox:
    """The toolbox of this action server process."""
    return _registry.get()


def settings() -> ActionSettings:
    """The settings the toolbox was built with."""
    return toolbox().settings


def airline_zone() -> ZoneInfo:
    """The airline's local time zone (what "today" means to customers)."""
    return ZoneInfo(settings().business.timezone)


def use_toolbox(replacement: Toolbox | None) -> None:
    """Replace the toolbox (tests); ``None`` makes the next call build it from the environment."""
    _registry.set(replacement)


def fallback_chain() -> FallbackChain:
    """The fallback chain of this action server process (built on first use)."""
    return _registry.chain()


def use_fallback_chain(replacement: FallbackChain | None) -> None:
    """Replace the fallback chain (tests)."""
    _registry.set_chain(replacement)


def handoff_summarizer() -> HandoffSummarizer | None:
    """The handoff summariser of this process's fallback chain (None without a model)."""
    return _registry.summarizer()


def decision_recorder() -> DecisionRecorder:
    """Where this process records its fallback decisions (table ``fallback_decisions``)."""
    return _registry.recorder()


def use_decision_recorder(replacement: DecisionRecorder | None) -> None:
    """Replace the decision recorder (tests); ``None``: record through the toolbox's database."""
    _registry.set_recorder(replacement)
