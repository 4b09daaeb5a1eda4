"""The guarded, grounded fallback chain, as a Rasa-free service.

For ``nlu_fallback``, ``out_of_scope`` and Rasa's core fallback the action server builds a
:class:`FallbackRequest` and awaits :meth:`FallbackChain.decide`; the returned
:class:`FallbackDecision` says what to do (rescue to an intent, answer with sources, answer inside
a form and re-ask, clarify, refuse, offer a human, or a degraded retrieval-only reply) and carries
the messages to send (domain response names, or model/passage text) ready for the dispatcher.

The chain: guard → (two fallbacks in a row → human) → retrieval → cache → budget → one model call
→ validated JSON → grounded decision. With no model configured (the embedded default), or when the
model is unavailable or over budget, the retrieval-only path decides: the best passage when it
clears the tuned thresholds, else the two most likely intents as buttons, else a human.

The model never reaches a write tool: a rescue only names an intent whose deterministic flow
(forms, verification, explicit confirmation) then runs; ``affirm``/``deny``/``inform`` and the
like are not in the closed set, so a model cannot confirm anything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Literal

from prometheus_client import CollectorRegistry

from tandem.errors import Unavailable
from tandem.guard import GuardResult, InputGuard, PiiMasker
from tandem.knowledge import KnowledgeBase, Passage
from tandem.llm import (
    AnswerCache,
    FallbackMetrics,
    InMemoryAnswerCache,
    InMemoryTokenBudget,
    IntentChoice,
    LlmClient,
    LlmReply,
    LlmUnavailable,
    OutputSanitizer,
    RedisAnswerCache,
    RedisTokenBudget,
    TokenBudget,
    Turn,
    build_messages,
    cache_key,
    estimate_message_tokens,
    is_context_free,
    parse_reply,
)
from tandem.llm.cache import make_redis_client
from tandem.llm.prompts import system_prompt
from tandem.settings import Settings

log = logging.getLogger(__name__)

DecisionKind = Literal["rescue", "answer", "form_answer", "clarify", "refuse", "handoff", "degraded"]
Mode = Literal["llm", "retrieval"]

# Domain responses the chain names (the texts live in domain.yml).
RESPONSE_CLARIFY = "utter_clarify"
RESPONSE_OFFER_HUMAN = "utter_offer_human"
RESPONSE_OUT_OF_SCOPE = "utter_out_of_scope"
RESPONSE_REPHRASE = "utter_please_rephrase"
RESPONSE_EMPTY = "utter_empty_message"
RESPONSE_DEFAULT = "utter_default"
RESPONSE_DONT_KNOW = "utter_fallback_dont_know"
RESPONSE_DEGRADED = "utter_fallback_degraded"


@dataclass(frozen=True, slots=True)
class RescueIntent:
    """An intent the model may rescue a turn to: its prompt description and its button title."""

    name: str
    description: str
    title: str


# The closed set. No affirm/deny/inform/choose_flight/rate/stop: those answer the bot's own
# questions (confirmations!) and must only ever come from the user's words through Rasa's NLU.
RESCUE_INTENTS: tuple[RescueIntent, ...] = (
    RescueIntent("book_flight", "wants to book a new flight", "Book a flight"),
    RescueIntent("check_booking", "wants the details or status of an existing booking", "Check a booking"),
    RescueIntent(
        "cancel_booking", "wants to cancel an existing booking (verified and confirmed later)", "Cancel a booking"
    ),
    RescueIntent("flight_status", "asks whether a flight is on time, delayed, departed or landed", "Flight status"),
    RescueIntent("reset_password", "cannot log in or forgot the account password", "Reset my password"),
    RescueIntent("request_human", "asks to talk to a person or an agent", "Talk to an agent"),
    RescueIntent("ask_capabilities", "asks what the assistant can do", "What can you do?"),
    RescueIntent("bot_challenge", "asks whether they are talking to a bot", "Are you a bot?"),
    RescueIntent("greet", "says hello", "Hello"),
    RescueIntent("goodbye", "ends the conversation", "Goodbye"),
    RescueIntent("thank", "says thank you", "Thanks"),
)
# Offered as buttons when clarifying (flows a user starts), in Rasa's ranking order.
SUGGESTIBLE: tuple[tuple[str, str], ...] = (
    ("book_flight", "Book a flight"),
    ("check_booking", "Check a booking"),
    ("cancel_booking", "Cancel a booking"),
    ("flight_status", "Flight status"),
    ("reset_password", "Reset my password"),
    ("faq", "A travel question"),
    ("ask_capabilities", "What can you do?"),
)
_OUT_OF_SCOPE = "out_of_scope"
_HUMAN_BUTTON = ("Talk to an agent", "/request_human")


@dataclass(frozen=True, slots=True)
class Button:
    """A quick-reply button: what the user sees and the payload Rasa receives."""

    title: str
    payload: str


@dataclass(frozen=True, slots=True)
class Message:
    """One bot message: a domain response name, or text (model or passage), and buttons."""

    response: str | None = None
    text: str | None = None
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    """A knowledge-base passage an answer rests on."""

    id: str
    doc: str
    title: str
    heading: str


@dataclass(frozen=True, slots=True)
class FallbackRequest:
    """One fallback turn as the Rasa layer sees it.

    ``history`` is the recent conversation before this turn (oldest first); the chain masks it
    again and keeps only the last ``FALLBACK_HISTORY_TURNS`` turns. ``intent_ranking`` is Rasa's
    ranking of the turn as (intent, confidence), best first (``nlu_fallback`` may be in it).
    ``consecutive_fallbacks`` counts this turn; ``low_confidence_turns`` counts the turns right
    before this one whose decision had ``low_confidence`` set.

    ``known_pii``: the values the conversation holds that identify a person or a booking, as
    (kind, value) pairs or a mapping (``("last_name", "Müller")``, ``("booking_ref", "HV4QKP")``;
    kinds in :data:`tandem.guard.patterns.KNOWN_LABELS`): masked wherever they appear in the
    turn and the history, case- and accent-insensitively. No turn of this chain needs them: the
    model answers policy questions and names intents, it never looks a booking up.
    ``client_key``: the gateway's opaque key of the client (None when unknown), for the
    per-client token budget.
    """

    conversation_id: str
    text: str
    history: Sequence[Turn] = ()
    active_form: str | None = None
    requested_slot: str | None = None
    intent_ranking: Sequence[tuple[str, float]] = ()
    consecutive_fallbacks: int = 1
    low_confidence_turns: int = 0
    known_pii: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    client_key: str | None = None

    def known_values(self) -> tuple[tuple[str, str], ...]:
        """``known_pii`` as (kind, value) pairs."""
        items = self.known_pii.items() if isinstance(self.known_pii, Mapping) else self.known_pii
        return tuple((str(kind), str(value)) for kind, value in items if value)


@dataclass(frozen=True, slots=True)
class FallbackDecision:
    """What the fallback chain decided for one turn.

    - ``kind``: ``rescue`` (continue ``intent``'s flow), ``answer`` (grounded, ``sources`` named in
      the text), ``form_answer`` (a short answer or clarification inside a form; re-ask
      ``reask_slot``), ``clarify`` (``suggestions`` as buttons), ``refuse`` (out of scope),
      ``handoff`` (offer a human), ``degraded`` (model unavailable or over budget: the
      retrieval-only outcome, prefixed by a polite note).
    - ``messages``: send them in order (``utter_message(response=..., text=..., buttons=...)``).
    - ``reason``: a short machine-readable code for logs and metrics.
    - ``low_confidence``: count it for the next turn's ``low_confidence_turns``.
    """

    kind: DecisionKind
    reason: str
    mode: Mode
    messages: tuple[Message, ...] = ()
    intent: str | None = None
    confidence: float | None = None
    sources: tuple[Source, ...] = ()
    suggestions: tuple[str, ...] = ()
    reask_slot: str | None = None
    offer_human: bool = False
    degraded: bool = False
    cached: bool = False
    low_confidence: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    masked_text: str = ""
    model_seconds: float = 0.0
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """The chain's knobs (from the settings)."""

    top_k: int = 3
    history_turns: int = 6
    rescue_threshold: float = 0.75
    low_confidence: float = 0.4
    handoff_after: int = 2
    retrieval_min_score: float = 1.7
    retrieval_min_coverage: float = 0.4
    min_support: float = 0.3
    price_prompt_per_1k: Decimal = Decimal("0")
    price_completion_per_1k: Decimal = Decimal("0")
    price_currency: str = "USD"
    brand: str = "Andaman Air"

    @classmethod
    def from_settings(cls, settings: Settings) -> ChainConfig:
        """The knobs of ``settings``."""
        return cls(
            top_k=settings.fallback_top_k,
            history_turns=settings.fallback_history_turns,
            rescue_threshold=settings.fallback_rescue_threshold,
            low_confidence=settings.fallback_low_confidence,
            handoff_after=settings.fallback_handoff_after,
            retrieval_min_score=settings.fallback_retrieval_min_score,
            retrieval_min_coverage=settings.fallback_retrieval_min_coverage,
            price_prompt_per_1k=settings.llm_price_prompt_per_1k,
            price_completion_per_1k=settings.llm_price_completion_per_1k,
            price_currency=settings.llm_price_currency,
        )


def resolve_knowledge_dir(value: str) -> Path:
    """``KNOWLEDGE_DIR`` as given, or relative to the project root when not found from here."""
    path = Path(value)
    if path.is_absolute() or path.is_dir():
        return path
    return Path(__file__).resolve().parents[2] / value


class FallbackChain:
    """Guard → in-form repair → intent rescue → grounded answer → escalation. Build once per process."""

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
    ) -> None:
        self.kb = kb
        self.guard = guard
        self.sanitizer = sanitizer
        self.metrics = metrics
        self.config = config
        self.llm = llm
        self.cache = cache or InMemoryAnswerCache()
        self.budget = budget or InMemoryTokenBudget(per_conversation=20000, per_day=2_000_000)
        self.intents = tuple(intents)
        self._rescuable = frozenset(i.name for i in self.intents)
        self._choices = (
            *(IntentChoice(i.name, i.description) for i in self.intents),
            IntentChoice(_OUT_OF_SCOPE, "anything outside the airline's business"),
        )
        self._redis: object | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        registry: CollectorRegistry,
        kb: KnowledgeBase | None = None,
        masker: PiiMasker | None = None,
        llm: LlmClient | None = None,
    ) -> FallbackChain:
        """Build everything from the settings: index the knowledge base, load spaCy, the model client
        (only when ``LLM_MODEL`` is set), the cache and budgets (Redis when ``REDIS_URL`` is set)."""
        config = ChainConfig.from_settings(settings)
        kb = kb or KnowledgeBase.from_directory(resolve_knowledge_dir(settings.knowledge_dir))
        masker = masker or PiiMasker.create()
        guard = InputGuard(masker, max_chars=settings.fallback_max_input_chars)
        choices = [IntentChoice(i.name, i.description) for i in RESCUE_INTENTS]
        sanitizer = OutputSanitizer(
            masker,
            allowed_hosts=settings.fallback_link_allowlist.split(","),
            max_chars=settings.fallback_max_answer_chars,
            secret_texts=[system_prompt(choices, brand=config.brand)],
        )
        cache: AnswerCache
        budget: TokenBudget
        redis_client = make_redis_client(settings) if settings.redis_url else None
        if redis_client is not None:
            cache = RedisAnswerCache(redis_client, ttl_seconds=settings.llm_cache_ttl_seconds)
            budget = RedisTokenBudget(
                redis_client,
                per_conversation=settings.llm_budget_tokens_per_conversation,
                per_day=settings.llm_budget_tokens_per_day,
                per_client=settings.llm_budget_tokens_per_client,
            )
        else:
            cache = InMemoryAnswerCache(
                max_entries=settings.llm_cache_max_entries, ttl_seconds=settings.llm_cache_ttl_seconds
            )
            budget = InMemoryTokenBudget(
                per_conversation=settings.llm_budget_tokens_per_conversation,
                per_day=settings.llm_budget_tokens_per_day,
                per_client=settings.llm_budget_tokens_per_client,
            )
        chain = cls(
            kb=kb,
            guard=guard,
            sanitizer=sanitizer,
            metrics=FallbackMetrics(registry),
            config=config,
            llm=llm if llm is not None else LlmClient.from_settings(settings),
            cache=cache,
            budget=budget,
        )
        chain._redis = redis_client
        return chain

    @property
    def mode(self) -> Mode:
        """``llm`` when a model is configured, else ``retrieval`` (what ``make run`` reports)."""
        return "llm" if self.llm is not None else "retrieval"

    async def aclose(self) -> None:
        """Close the model client and the Redis connection pool."""
        if self.llm is not None:
            await self.llm.aclose()
        close = getattr(self._redis, "aclose", None)
        if close is not None:
            await close()

    # --- the chain ---------------------------------------------------------------------------

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
        mode = self.mode
        if not guard.ok:
            return self._guarded(request, guard, mode)
        if request.consecutive_fallbacks >= self.config.handoff_after:
            return self._handoff(request, guard, mode, "consecutive_fallbacks")
        passages = self.kb.search(guard.masked, self.config.top_k)
        if self.llm is None:
            return self._retrieval(request, guard, passages, mode="retrieval", reason="no_llm")
        return await self._with_llm(request, guard, passages, self.llm)

    def _guarded(self, request: FallbackRequest, guard: GuardResult, mode: Mode) -> FallbackDecision:
        if guard.reason == "injection":
            # No model call at all: the turn is refused as out of scope, the form (if any) goes on.
            kind: DecisionKind = "form_answer" if request.active_form else "refuse"
            return FallbackDecision(
                kind=kind,
                reason="injection",
                mode=mode,
                messages=(Message(response=RESPONSE_OUT_OF_SCOPE),),
                reask_slot=self._reask(request),
                masked_text=guard.masked,
            )
        response = RESPONSE_EMPTY if guard.reason == "empty" else RESPONSE_REPHRASE
        kind = "form_answer" if request.active_form else "clarify"
        return FallbackDecision(
            kind=kind,
            reason=guard.reason or "guard",
            mode=mode,
            messages=(Message(response=response),),
            reask_slot=self._reask(request),
            masked_text=guard.masked,
        )

    async def _with_llm(
        self, request: FallbackRequest, guard: GuardResult, passages: list[Passage], llm: LlmClient
    ) -> FallbackDecision:
        # A question that stands on its own is sent without the history (less personal data
        # reaches the model, and its answer can be shared); a follow-up is sent with it, and the
        # cache key holds the masked window sent, so it is only ever served for the same context.
        history = [] if is_context_free(guard.masked) else self._history(request.history, request.known_values())
        key = cache_key(
            guard.masked,
            intents=sorted(self._rescuable),
            kb_version=self.kb.version,
            active_form=request.active_form,
            requested_slot=request.requested_slot,
            history=history,
        )
        reply = await self.cache.get(key)
        self.metrics.cache.labels(result="hit" if reply else "miss").inc()
        if reply is not None:
            return replace(self._interpret(request, guard, passages, reply), cached=True)

        messages = build_messages(
            question=guard.masked,
            passages=passages,
            history=history,
            intents=self._choices,
            active_form=request.active_form,
            requested_slot=request.requested_slot,
            brand=self.config.brand,
        )
        estimate = estimate_message_tokens(messages) + llm.max_tokens
        try:
            refused = await self.budget.refusal(request.conversation_id, estimate, client=request.client_key)
        except Unavailable:
            return self._degraded(request, guard, passages, "budget_unavailable")
        if refused is not None:
            self.metrics.budget_refusals.labels(budget=refused).inc()
            decision = self._degraded(request, guard, passages, "budget_exceeded")
            return replace(decision, meta={**decision.meta, "budget": refused})
        try:
            completion = await llm.complete(messages)
        except LlmUnavailable as exc:
            self.metrics.calls.labels(outcome=exc.reason).inc()
            return self._degraded(request, guard, passages, f"llm_{exc.reason}")
        self._meter(completion.prompt_tokens, completion.completion_tokens, completion.latency_seconds)
        try:
            await self.budget.spend(request.conversation_id, completion.total_tokens, client=request.client_key)
        except Unavailable:
            log.warning("token budget unavailable; usage of this call not recorded")
        usage = {
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "model_seconds": completion.latency_seconds,
        }
        reply = parse_reply(completion.content)
        if reply is None:
            self.metrics.calls.labels(outcome="invalid_reply").inc()
            decision = self._retrieval(request, guard, passages, mode="llm", reason="invalid_reply")
            return replace(decision, **usage)  # type: ignore[arg-type]
        self.metrics.calls.labels(outcome="ok").inc()
        await self.cache.set(key, reply)
        return replace(self._interpret(request, guard, passages, reply), **usage)  # type: ignore[arg-type]

    def _meter(self, prompt_tokens: int, completion_tokens: int, seconds: float) -> None:
        self.metrics.tokens.labels(kind="prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(kind="completion").inc(completion_tokens)
        cost = (
            Decimal(prompt_tokens) * self.config.price_prompt_per_1k
            + Decimal(completion_tokens) * self.config.price_completion_per_1k
        ) / 1000
        self.metrics.cost.labels(currency=self.config.price_currency).inc(float(cost))
        self.metrics.latency.observe(seconds)

    def _interpret(
        self, request: FallbackRequest, guard: GuardResult, passages: list[Passage], reply: LlmReply
    ) -> FallbackDecision:
        in_form = bool(request.active_form and request.requested_slot)
        wants_human = reply.handoff or (
            reply.intent == "request_human" and reply.confidence >= self.config.rescue_threshold
        )
        if wants_human:
            return self._handoff(request, guard, "llm", "llm_handoff", confidence=reply.confidence)
        grounded = self._grounded_answer(reply, passages)
        if in_form:
            if grounded is not None:
                text, sources = grounded
                return FallbackDecision(
                    kind="form_answer",
                    reason="llm_answer",
                    mode="llm",
                    messages=(Message(text=text),),
                    sources=sources,
                    confidence=reply.confidence,
                    reask_slot=request.requested_slot,
                    masked_text=guard.masked,
                )
            return FallbackDecision(
                kind="form_answer",
                reason="llm_no_answer",
                mode="llm",
                messages=(Message(response=RESPONSE_DEFAULT),),
                confidence=reply.confidence,
                reask_slot=request.requested_slot,
                masked_text=guard.masked,
            )
        if reply.intent == _OUT_OF_SCOPE and reply.answer is None:
            return FallbackDecision(
                kind="refuse",
                reason="out_of_scope",
                mode="llm",
                messages=(Message(response=RESPONSE_OUT_OF_SCOPE),),
                confidence=reply.confidence,
                masked_text=guard.masked,
            )
        if reply.intent in self._rescuable and reply.confidence >= self.config.rescue_threshold:
            return FallbackDecision(
                kind="rescue",
                reason="llm_rescue",
                mode="llm",
                intent=reply.intent,
                confidence=reply.confidence,
                masked_text=guard.masked,
            )
        if reply.answer is not None:
            if grounded is None:
                # An answer the passages do not support is never shown: "I don't know" + a human.
                return FallbackDecision(
                    kind="handoff",
                    reason="no_supporting_passage",
                    mode="llm",
                    messages=(Message(response=RESPONSE_DONT_KNOW),),
                    offer_human=True,
                    confidence=reply.confidence,
                    masked_text=guard.masked,
                )
            text, sources = grounded
            return FallbackDecision(
                kind="answer",
                reason="llm_answer",
                mode="llm",
                messages=(Message(text=text),),
                sources=sources,
                confidence=reply.confidence,
                masked_text=guard.masked,
            )
        # Neither a confident intent nor an answer: low confidence.
        return self._unsure(request, guard, "llm", "llm_low_confidence", confidence=reply.confidence)

    def _grounded_answer(self, reply: LlmReply, passages: list[Passage]) -> tuple[str, tuple[Source, ...]] | None:
        if reply.answer is None or reply.confidence < self.config.low_confidence:
            return None
        by_id = {p.id: p for p in passages}
        cited = [by_id[s] for s in dict.fromkeys(reply.sources) if s in by_id]
        if not cited or len(cited) != len(set(reply.sources)):
            return None  # no source, or a source that was not retrieved (invented)
        answer = self.sanitizer.clean(reply.answer)
        if not answer:
            return None
        words = set(self.kb.tokenize(answer))
        support = set().union(*(self.kb.tokenize(f"{p.title} {p.heading} {p.text}") for p in cited))
        if words and len(words & support) / len(words) < self.config.min_support:
            return None
        sources = tuple(Source(p.id, p.source_doc, p.title, p.heading) for p in cited)
        return f"{answer}\n\n{_source_line(sources)}", sources

    # --- retrieval only ----------------------------------------------------------------------

    def best_passage(self, passages: Sequence[Passage]) -> Passage | None:
        """The top passage when it clears both tuned thresholds (score and coverage), else None."""
        if not passages:
            return None
        top = passages[0]
        if top.score >= self.config.retrieval_min_score and top.coverage >= self.config.retrieval_min_coverage:
            return top
        return None

    def _retrieval(
        self, request: FallbackRequest, guard: GuardResult, passages: list[Passage], *, mode: Mode, reason: str
    ) -> FallbackDecision:
        best = self.best_passage(passages)
        if request.active_form and request.requested_slot:
            if best is not None:
                source = Source(best.id, best.source_doc, best.title, best.heading)
                return FallbackDecision(
                    kind="form_answer",
                    reason=f"{reason}:passage",
                    mode=mode,
                    messages=(Message(text=f"{best.text}\n\n{_source_line((source,))}"),),
                    sources=(source,),
                    reask_slot=request.requested_slot,
                    masked_text=guard.masked,
                )
            return FallbackDecision(
                kind="form_answer",
                reason=f"{reason}:no_passage",
                mode=mode,
                messages=(Message(response=RESPONSE_DEFAULT),),
                reask_slot=request.requested_slot,
                masked_text=guard.masked,
            )
        if best is not None:
            source = Source(best.id, best.source_doc, best.title, best.heading)
            return FallbackDecision(
                kind="answer",
                reason=f"{reason}:passage",
                mode=mode,
                messages=(Message(text=f"{best.text}\n\n{_source_line((source,))}"),),
                sources=(source,),
                masked_text=guard.masked,
            )
        top_intent = request.intent_ranking[0][0] if request.intent_ranking else None
        if top_intent == _OUT_OF_SCOPE:
            return FallbackDecision(
                kind="refuse",
                reason=f"{reason}:out_of_scope",
                mode=mode,
                messages=(Message(response=RESPONSE_OUT_OF_SCOPE),),
                masked_text=guard.masked,
            )
        return self._unsure(request, guard, mode, f"{reason}:no_passage")

    def _unsure(
        self, request: FallbackRequest, guard: GuardResult, mode: Mode, reason: str, *, confidence: float | None = None
    ) -> FallbackDecision:
        if request.low_confidence_turns + 1 >= self.config.handoff_after:
            return self._handoff(request, guard, mode, "repeated_low_confidence", confidence=confidence)
        suggestions = self._suggestions(request.intent_ranking)
        if suggestions:
            titles = dict(SUGGESTIBLE)
            buttons = (*(Button(titles[s], f"/{s}") for s in suggestions), Button(*_HUMAN_BUTTON))
            return FallbackDecision(
                kind="clarify",
                reason=reason,
                mode=mode,
                messages=(Message(response=RESPONSE_CLARIFY, buttons=buttons),),
                suggestions=suggestions,
                low_confidence=True,
                confidence=confidence,
                masked_text=guard.masked,
            )
        return self._handoff(request, guard, mode, reason, confidence=confidence)

    def _degraded(
        self, request: FallbackRequest, guard: GuardResult, passages: list[Passage], reason: str
    ) -> FallbackDecision:
        inner = self._retrieval(request, guard, passages, mode="retrieval", reason=reason)
        return replace(
            inner,
            kind="degraded",
            reason=reason,
            degraded=True,
            messages=(Message(response=RESPONSE_DEGRADED), *inner.messages),
            meta={"outcome": inner.kind},
        )

    # --- helpers -----------------------------------------------------------------------------

    def _handoff(
        self, request: FallbackRequest, guard: GuardResult, mode: Mode, reason: str, *, confidence: float | None = None
    ) -> FallbackDecision:
        return FallbackDecision(
            kind="handoff",
            reason=reason,
            mode=mode,
            messages=(Message(response=RESPONSE_OFFER_HUMAN),),
            offer_human=True,
            confidence=confidence,
            reask_slot=self._reask(request),
            masked_text=guard.masked,
        )

    @staticmethod
    def _reask(request: FallbackRequest) -> str | None:
        return request.requested_slot if request.active_form else None

    @staticmethod
    def _suggestions(ranking: Sequence[tuple[str, float]], limit: int = 2) -> tuple[str, ...]:
        allowed = dict(SUGGESTIBLE)
        picked = [name for name, _ in ranking if name in allowed]
        return tuple(dict.fromkeys(picked))[:limit]

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


def _source_line(sources: Sequence[Source]) -> str:
    names = "; ".join(dict.fromkeys(f"{s.title} ({s.heading})" for s in sources))
    return f"Source: {names}" if len(sources) == 1 else f"Sources: {names}"
