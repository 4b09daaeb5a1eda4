"""The fallback chain's decision policy: from a guarded turn, its passages and the model's reply
(if any) to one :class:`~tandem.services.fallback.types.FallbackDecision`.

No I/O here: the chain (:mod:`tandem.services.fallback.chain`) calls the model, the cache and the
budget and hands the outcome to these rules. Every decision is built by
:meth:`Situation.decision`, the one place that fills what all decisions share (mode, masked text,
the slot a form asks again), so a new rule cannot forget one of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tandem.knowledge import KnowledgeBase, Passage
from tandem.llm import LlmReply, OutputSanitizer

from .catalogue import (
    CATALOGUE,
    HUMAN_INTENT,
    OUT_OF_SCOPE,
    RESPONSE_CLARIFY,
    RESPONSE_DEFAULT,
    RESPONSE_DEGRADED,
    RESPONSE_DONT_KNOW,
    RESPONSE_EMPTY,
    RESPONSE_OFFER_HUMAN,
    RESPONSE_OUT_OF_SCOPE,
    RESPONSE_REPHRASE,
    SUGGESTIBLE,
)
from .types import Button, ChainConfig, DecisionKind, FallbackDecision, FallbackRequest, Message, Mode, Source


def say(response: str, *buttons: Button) -> Message:
    """A message naming a domain response (its text lives in ``domain.yml``)."""
    return Message(response=response, buttons=buttons)


@dataclass(frozen=True, slots=True)
class Situation:
    """One fallback turn as the policy sees it: the request, its masked text, the mode it is decided in."""

    request: FallbackRequest
    masked: str
    mode: Mode

    def decision(
        self,
        kind: DecisionKind,
        reason: str,
        *messages: Message,
        intent: str | None = None,
        confidence: float | None = None,
        sources: tuple[Source, ...] = (),
        suggestions: tuple[str, ...] = (),
        offer_human: bool = False,
        low_confidence: bool = False,
    ) -> FallbackDecision:
        """The one constructor of decisions: inside a form the form's pending slot is always re-asked."""
        return FallbackDecision(
            kind=kind,
            reason=reason,
            mode=self.mode,
            messages=messages,
            intent=intent,
            confidence=confidence,
            sources=sources,
            suggestions=suggestions,
            reask_slot=self.request.reask_slot,
            offer_human=offer_human,
            low_confidence=low_confidence,
            masked_text=self.masked,
        )

    def in_mode(self, mode: Mode) -> Situation:
        return replace(self, mode=mode)


class FallbackPolicy:
    """Guard → in-form repair → intent rescue → grounded answer → escalation, as rules.

    ``config`` is read at every decision, so replacing it (the benchmark tunes thresholds) takes
    effect at once.
    """

    def __init__(
        self, *, kb: KnowledgeBase, sanitizer: OutputSanitizer, config: ChainConfig, rescuable: frozenset[str]
    ) -> None:
        self.kb = kb
        self.sanitizer = sanitizer
        self.config = config
        self.rescuable = rescuable

    # --- before any model call -----------------------------------------------------------------

    def guarded(self, turn: Situation, guard_reason: str | None) -> FallbackDecision:
        """The guard refused the text (injection, empty, too long, control characters)."""
        in_form = bool(turn.request.active_form)
        if guard_reason == "injection":
            # No model call at all: the turn is refused as out of scope, the form (if any) goes on.
            return turn.decision("form_answer" if in_form else "refuse", "injection", say(RESPONSE_OUT_OF_SCOPE))
        response = RESPONSE_EMPTY if guard_reason == "empty" else RESPONSE_REPHRASE
        return turn.decision("form_answer" if in_form else "clarify", guard_reason or "guard", say(response))

    def handoff(self, turn: Situation, reason: str, *, confidence: float | None = None) -> FallbackDecision:
        """Offer a human."""
        return turn.decision("handoff", reason, say(RESPONSE_OFFER_HUMAN), offer_human=True, confidence=confidence)

    # --- the model's reply ---------------------------------------------------------------------

    def interpret(self, turn: Situation, passages: list[Passage], reply: LlmReply) -> FallbackDecision:
        """A valid reply of the model → a decision (only grounded answers are ever shown)."""
        confidence = reply.confidence
        wants_human = reply.handoff or (reply.intent == HUMAN_INTENT and confidence >= self.config.rescue_threshold)
        if wants_human:
            return self.handoff(turn, "llm_handoff", confidence=confidence)
        grounded = self.grounded_answer(reply, passages)
        if turn.request.in_form:
            if grounded is not None:
                text, sources = grounded
                return turn.decision(
                    "form_answer", "llm_answer", Message(text=text), sources=sources, confidence=confidence
                )
            return turn.decision("form_answer", "llm_no_answer", say(RESPONSE_DEFAULT), confidence=confidence)
        if reply.intent == OUT_OF_SCOPE and reply.answer is None:
            return turn.decision("refuse", "out_of_scope", say(RESPONSE_OUT_OF_SCOPE), confidence=confidence)
        if reply.intent in self.rescuable and confidence >= self.config.rescue_threshold:
            return turn.decision("rescue", "llm_rescue", intent=reply.intent, confidence=confidence)
        if reply.answer is not None:
            if grounded is None:
                # An answer the passages do not support is never shown: "I don't know" + a human.
                return turn.decision(
                    "handoff", "no_supporting_passage", say(RESPONSE_DONT_KNOW), offer_human=True, confidence=confidence
                )
            text, sources = grounded
            return turn.decision("answer", "llm_answer", Message(text=text), sources=sources, confidence=confidence)
        # Neither a confident intent nor an answer: low confidence.
        return self.unsure(turn, "llm_low_confidence", confidence=confidence)

    def grounded_answer(self, reply: LlmReply, passages: list[Passage]) -> tuple[str, tuple[Source, ...]] | None:
        """The sanitised answer with its source line, when every cited passage was retrieved and
        the answer's words are supported by them; else None."""
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
        sources = tuple(source_of(p) for p in cited)
        return f"{answer}\n\n{source_line(sources)}", sources

    # --- retrieval only ------------------------------------------------------------------------

    def best_passage(self, passages: Sequence[Passage]) -> Passage | None:
        """The top passage when it clears both tuned thresholds (score and coverage), else None."""
        if not passages:
            return None
        top = passages[0]
        if top.score >= self.config.retrieval_min_score and top.coverage >= self.config.retrieval_min_coverage:
            return top
        return None

    def retrieval(self, turn: Situation, passages: list[Passage], reason: str) -> FallbackDecision:
        """No (usable) model: the best passage, else out of scope, else clarify or a human."""
        best = self.best_passage(passages)
        kind: DecisionKind = "form_answer" if turn.request.in_form else "answer"
        if best is not None:
            source = source_of(best)
            text = f"{best.text}\n\n{source_line((source,))}"
            return turn.decision(kind, f"{reason}:passage", Message(text=text), sources=(source,))
        if turn.request.in_form:
            return turn.decision("form_answer", f"{reason}:no_passage", say(RESPONSE_DEFAULT))
        ranking = turn.request.intent_ranking
        if ranking and ranking[0][0] == OUT_OF_SCOPE:
            return turn.decision("refuse", f"{reason}:out_of_scope", say(RESPONSE_OUT_OF_SCOPE))
        return self.unsure(turn, f"{reason}:no_passage")

    def unsure(self, turn: Situation, reason: str, *, confidence: float | None = None) -> FallbackDecision:
        """Low confidence: the two likeliest flows as buttons, or a human when repeated or none fits."""
        if turn.request.low_confidence_turns + 1 >= self.config.handoff_after:
            return self.handoff(turn, "repeated_low_confidence", confidence=confidence)
        suggestions = suggest(turn.request.intent_ranking)
        if not suggestions:
            return self.handoff(turn, reason, confidence=confidence)
        titles = dict(SUGGESTIBLE)
        human = Button(CATALOGUE[HUMAN_INTENT].title, f"/{HUMAN_INTENT}")
        buttons = (*(Button(titles[s], f"/{s}") for s in suggestions), human)
        return turn.decision(
            "clarify",
            reason,
            say(RESPONSE_CLARIFY, *buttons),
            suggestions=suggestions,
            low_confidence=True,
            confidence=confidence,
        )

    def degraded(self, turn: Situation, passages: list[Passage], reason: str) -> FallbackDecision:
        """Model unavailable or over budget: the retrieval-only outcome after a polite note."""
        inner = self.retrieval(turn.in_mode("retrieval"), passages, reason)
        return replace(
            inner,
            kind="degraded",
            reason=reason,
            degraded=True,
            messages=(say(RESPONSE_DEGRADED), *inner.messages),
            meta={"outcome": inner.kind},
        )


def suggest(ranking: Sequence[tuple[str, float]], limit: int = 2) -> tuple[str, ...]:
    """The first ``limit`` suggestible intents of Rasa's ranking, in its order."""
    allowed = dict(SUGGESTIBLE)
    picked = [name for name, _ in ranking if name in allowed]
    return tuple(dict.fromkeys(picked))[:limit]


def source_of(passage: Passage) -> Source:
    return Source(passage.id, passage.source_doc, passage.title, passage.heading)


def source_line(sources: Sequence[Source]) -> str:
    """``Source: Title (Heading)`` (``Sources: ...; ...`` for several)."""
    names = "; ".join(dict.fromkeys(f"{s.title} ({s.heading})" for s in sources))
    return f"Source: {names}" if len(sources) == 1 else f"Sources: {names}"
