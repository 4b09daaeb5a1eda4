"""The fallback chain's orchestration: guard → (two fallbacks in a row → human) → retrieval → cache
→ budget → one model call → validated JSON → the policy's decision.

The chain owns the calls that can fail or cost (model, cache, budget) and turns their failures
into a degraded decision; what to answer is the policy's (:mod:`tandem.services.fallback.policy`).
It is built by the composition root (:mod:`tandem.services.fallback.wiring`), which hands it the
resources it then owns and closes in :meth:`FallbackChain.aclose`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from tandem.errors import Unavailable
from tandem.guard import InputGuard, PiiMasker
from tandem.knowledge import KnowledgeBase, Passage
from tandem.llm import (
    AnswerCache,
    FallbackMetrics,
    InMemoryAnswerCache,
    InMemoryTokenBudget,
    IntentChoice,
    LlmClient,
    LlmUnavailable,
    OutputSanitizer,
    TokenBudget,
    Turn,
    build_messages,
    cache_key,
    estimate_message_tokens,
    is_context_free,
    parse_reply,
)
from tandem.runtime import Infrastructure
from tandem.settings import ActionSettings

from .catalogue import OUT_OF_SCOPE, OUT_OF_SCOPE_DESCRIPTION, RESCUE_INTENTS, RescueIntent
from .policy import FallbackPolicy, Situation
from .summary import HandoffSummarizer
from .types import ChainConfig, FallbackDecision, FallbackRequest, Mode

# The package's name: what operators filter on (and what the log tests look for).
log = logging.getLogger("tandem.services.fallback")

Closer = Callable[[], Awaitable[Any]]


class FallbackChain:
    """Guard → in-form repair → intent rescue → grounded answer → escalation. Build once per process.

    ``owned``: closers of resources the composition root created for this chain only (its Redis
    connection pool); :meth:`aclose` awaits them after closing the model client.

    ``summarizer``: the handoff summary over this chain's model, masker, sanitiser, budgets and
    metrics (None without a model).
    """

    def __init__(
        self,
        *,
        kb: KnowledgeBase,
        guard: InputGuard,
        sanitizer: OutputSanitizer,
        metrics: FallbackMetrics,
        config: ChainConfig,
        llm: LlmClient | None = None,
        cache: AnswerCache | None = None,
        budget: TokenBudget | None = None,
        intents: Sequence[RescueIntent] = RESCUE_INTENTS,
        owned: Sequence[Closer] = (),
    ) -> None:
        self.kb = kb
        self.guard = guard
        self.sanitizer = sanitizer
        self.metrics = metrics
        self.llm = llm
        self.cache = cache or InMemoryAnswerCache()
        self.budget = budget or InMemoryTokenBudget(per_conversation=20000, per_day=2_000_000)
        self.intents = tuple(intents)
        self.choices: tuple[IntentChoice, ...] = (
            *(IntentChoice(i.name, i.description) for i in self.intents),
            IntentChoice(OUT_OF_SCOPE, OUT_OF_SCOPE_DESCRIPTION),
        )
        self.policy = FallbackPolicy(
            kb=kb, sanitizer=sanitizer, config=config, rescuable=frozenset(i.name for i in self.intents)
        )
        self.summarizer: HandoffSummarizer | None = None
        if llm is not None:
            self.summarizer = HandoffSummarizer(
                llm=llm,
                masker=guard.masker,
                sanitizer=sanitizer,
                budget=self.budget,
                metrics=metrics,
                meter=self._meter,
                brand=config.persona.brand,
            )
        self._owned = tuple(owned)

    @classmethod
    def from_settings(
        cls,
        settings: ActionSettings,
        *,
        registry: CollectorRegistry,
        infra: Infrastructure | None = None,
        kb: KnowledgeBase | None = None,
        masker: PiiMasker | None = None,
        llm: LlmClient | None = None,
    ) -> FallbackChain:
        """Build everything from the settings (see :func:`tandem.services.fallback.wiring.build_chain`)."""
        from .wiring import build_chain  # the composition root builds this class: imported when called

        return build_chain(settings, registry=registry, infra=infra, kb=kb, masker=masker, llm=llm)

    @property
    def config(self) -> ChainConfig:
        """The knobs; assigning new ones (the benchmark tunes thresholds) takes effect at once."""
        return self.policy.config

    @config.setter
    def config(self, value: ChainConfig) -> None:
        self.policy.config = value

    @property
    def mode(self) -> Mode:
        """``llm`` when a model is configured, else ``retrieval`` (what ``make run`` reports)."""
        return "llm" if self.llm is not None else "retrieval"

    async def aclose(self) -> None:
        """Close the model client and what the composition root handed over (the Redis pool)."""
        if self.llm is not None:
            await self.llm.aclose()
        for close in self._owned:
            await close()

    # --- the chain -----------------------------------------------------------------------------

    async def decide(self, request: FallbackRequest) -> FallbackDecision:
        """Decide what to do with one fallback turn (never raises for a model or cache failure)."""
        started = time.perf_counter()
        decision = await self._decide(request)
        overhead = max(0.0, time.perf_counter() - started - decision.model_seconds)
        self.metrics.overhead.observe(overhead)
        self.metrics.decisions.labels(kind=decision.kind, mode=decision.mode).inc()
        # Never the customer's text at INFO, not even masked: kinds, reasons and lengths only.
        log.info(
            "fallback kind=%s reason=%s mode=%s cached=%s chars=%d",
            decision.kind,
            decision.reason,
            decision.mode,
            decision.cached,
            len(request.text),
        )
        log.debug("fallback masked text=%r", decision.masked_text)
        return decision

    async def _decide(self, request: FallbackRequest) -> FallbackDecision:
        guard = self.guard.check(request.text, known=request.known_values())
        turn = Situation(request, guard.masked, self.mode)
        if not guard.ok:
            return self.policy.guarded(turn, guard.reason)
        if request.consecutive_fallbacks >= self.config.handoff_after:
            return self.policy.handoff(turn, "consecutive_fallbacks")
        passages = self.kb.search(guard.masked, self.config.top_k)
        if self.llm is None:
            return self.policy.retrieval(turn.in_mode("retrieval"), passages, "no_llm")
        return await self._with_llm(turn, passages, self.llm)

    async def _with_llm(self, turn: Situation, passages: list[Passage], llm: LlmClient) -> FallbackDecision:
        request, masked = turn.request, turn.masked
        # A question that stands on its own is sent without the history (less personal data
        # reaches the model, and its answer can be shared); a follow-up is sent with it, and the
        # cache key holds the masked window sent, so it is only ever served for the same context.
        history = [] if is_context_free(masked) else self._history(request.history, request.known_values())
        key = cache_key(
            masked,
            intents=sorted(self.policy.rescuable),
            kb_version=self.kb.version,
            active_form=request.active_form,
            requested_slot=request.requested_slot,
            history=history,
        )
        reply = await self.cache.get(key)
        self.metrics.cache.labels(result="hit" if reply else "miss").inc()
        if reply is not None:
            return replace(self.policy.interpret(turn, passages, reply), cached=True)

        messages = build_messages(
            question=masked,
            passages=passages,
            history=history,
            intents=self.choices,
            active_form=request.active_form,
            requested_slot=request.requested_slot,
            persona=self.config.persona,
        )
        estimate = estimate_message_tokens(messages) + llm.max_tokens
        try:
            refused = await self.budget.refusal(request.conversation_id, estimate, client=request.client_key)
        except Unavailable:
            return self.policy.degraded(turn, passages, "budget_unavailable")
        if refused is not None:
            self.metrics.budget_refusals.labels(budget=refused).inc()
            decision = self.policy.degraded(turn, passages, "budget_exceeded")
            return replace(decision, meta={**decision.meta, "budget": refused})
        try:
            completion = await llm.complete(messages)
        except LlmUnavailable as exc:
            self.metrics.calls.labels(outcome=exc.reason).inc()
            return self.policy.degraded(turn, passages, f"llm_{exc.reason}")
        self._meter(completion.prompt_tokens, completion.completion_tokens, completion.latency_seconds)
        try:
            await self.budget.spend(request.conversation_id, completion.total_tokens, client=request.client_key)
        except Unavailable:
            log.warning("token budget unavailable; usage of this call not recorded")
        reply = parse_reply(completion.content)
        if reply is None:
            self.metrics.calls.labels(outcome="invalid_reply").inc()
            decision = self.policy.retrieval(turn.in_mode("llm"), passages, "invalid_reply")
        else:
            self.metrics.calls.labels(outcome="ok").inc()
            await self.cache.set(key, reply)
            decision = self.policy.interpret(turn, passages, reply)
        return replace(
            decision,
            prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens,
            model_seconds=completion.latency_seconds,
            cost=self.config.cost(completion.prompt_tokens, completion.completion_tokens),
        )

    def _meter(self, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        self.metrics.tokens.labels(kind="prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(kind="completion").inc(completion_tokens)
        cost = self.config.cost(prompt_tokens, completion_tokens)
        self.metrics.cost.labels(currency=self.config.price_currency).inc(float(cost))
        self.metrics.latency.observe(seconds)

    def best_passage(self, passages: Sequence[Passage]) -> Passage | None:
        """The top passage when it clears both tuned thresholds (score and coverage), else None."""
        return self.policy.best_passage(passages)

    def _history(self, turns: Sequence[Turn], known: Sequence[tuple[str, str]] = ()) -> list[Turn]:
        """The last turns, masked here (the chain must not rely on every caller having done it).

        Besides the guard's PII, the conversation's own identifying values and every booking
        reference are masked: in the history a reference sits next to the surname that opens it.
        """
        if self.config.history_turns <= 0:
            return []
        window = list(turns)[-self.config.history_turns :]
        masker = self.guard.masker
        return [Turn(t.role, masker.mask(t.text, known=known, booking_refs=True).text) for t in window]
