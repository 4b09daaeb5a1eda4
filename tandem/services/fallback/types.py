"""The fallback chain's data: what the Rasa layer asks (a request) and what it gets back (a decision).

Plain frozen dataclasses with no behaviour beyond reading themselves, so that the action layer, the
policy, the durable record and the tests share one vocabulary without importing the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from tandem.llm import Persona, Turn
from tandem.settings import BrandSettings, FallbackSettings, LlmSettings

DecisionKind = Literal["rescue", "answer", "form_answer", "clarify", "refuse", "handoff", "degraded"]
Mode = Literal["llm", "retrieval"]

__all__ = [
    "Button",
    "ChainConfig",
    "DecisionKind",
    "FallbackDecision",
    "FallbackRequest",
    "Message",
    "Mode",
    "Source",
    "Turn",
]


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

    @property
    def in_form(self) -> bool:
        """A form is active and waiting for a slot: an answer there must re-ask it."""
        return bool(self.active_form and self.requested_slot)

    @property
    def reask_slot(self) -> str | None:
        """The slot an active form asks again after the chain's reply (None outside a form)."""
        return self.requested_slot if self.active_form else None


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

    Built only by :meth:`tandem.services.fallback.policy.Situation.decision` (one place fills the
    fields every decision shares) and adjusted with :func:`dataclasses.replace`.
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
    cost: Decimal = Decimal(0)  # of the model call, in the configured currency (ChainConfig.cost)
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """The chain's knobs, from the settings (:meth:`from_settings`: their defaults live there only)."""

    top_k: int
    history_turns: int
    rescue_threshold: float
    low_confidence: float
    handoff_after: int
    retrieval_min_score: float
    retrieval_min_coverage: float
    price_prompt_per_1k: Decimal
    price_completion_per_1k: Decimal
    price_currency: str
    persona: Persona  # the brand the assistant speaks for
    # Not a setting: how much of an answer's wording the cited passages must support.
    min_support: float = 0.3

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """What the tokens cost at the configured prices (LLM_PRICE_*_PER_1K), in ``price_currency``."""
        return (
            Decimal(prompt_tokens) * self.price_prompt_per_1k
            + Decimal(completion_tokens) * self.price_completion_per_1k
        ) / 1000

    @classmethod
    def from_settings(cls, fallback: FallbackSettings, llm: LlmSettings, brand: BrandSettings) -> ChainConfig:
        """The knobs of the fallback, LLM and brand settings."""
        return cls(
            top_k=fallback.fallback_top_k,
            history_turns=fallback.fallback_history_turns,
            rescue_threshold=fallback.fallback_rescue_threshold,
            low_confidence=fallback.fallback_low_confidence,
            handoff_after=fallback.fallback_handoff_after,
            retrieval_min_score=fallback.fallback_retrieval_min_score,
            retrieval_min_coverage=fallback.fallback_retrieval_min_coverage,
            price_prompt_per_1k=llm.llm_price_prompt_per_1k,
            price_completion_per_1k=llm.llm_price_completion_per_1k,
            price_currency=llm.llm_price_currency,
            persona=Persona(brand=brand.name, description=brand.description, contacts=brand.contacts()),
        )
