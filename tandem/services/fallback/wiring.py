"""The fallback chain's assembly: everything the chain needs, built from the settings.

The knowledge-base index, the guard (spaCy is loaded here, once), the output sanitiser, the model
client (only when ``LLM_MODEL`` is set), and the answer cache and token budgets from the process's
composition root (:class:`tandem.runtime.Infrastructure`: in Redis when ``REDIS_URL`` is set, else
in process). Nothing here runs at import time.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from tandem.guard import InputGuard, PiiMasker
from tandem.knowledge import KnowledgeBase
from tandem.llm import FallbackMetrics, IntentChoice, LlmClient, OutputSanitizer
from tandem.llm.prompts import system_prompt
from tandem.runtime import Infrastructure
from tandem.settings import ActionSettings, FallbackSettings

from .catalogue import RESCUE_INTENTS
from .chain import Closer, FallbackChain
from .summary import summary_prompt
from .types import ChainConfig

# tandem/services/fallback/wiring.py → the project root.
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def resolve_knowledge_dir(value: str) -> Path:
    """``KNOWLEDGE_DIR`` as given, or relative to the project root when not found from here."""
    path = Path(value)
    if path.is_absolute() or path.is_dir():
        return path
    return PROJECT_ROOT / value


def build_sanitizer(fallback: FallbackSettings, masker: PiiMasker, config: ChainConfig) -> OutputSanitizer:
    """The output sanitiser: PII, links outside the allow-list, markup, length, prompt leaks (of the
    fallback's system prompt and of the handoff summary's)."""
    choices = [IntentChoice(i.name, i.description) for i in RESCUE_INTENTS]
    return OutputSanitizer(
        masker,
        allowed_hosts=fallback.fallback_link_allowlist.split(","),
        max_chars=fallback.fallback_max_answer_chars,
        secret_texts=[system_prompt(choices, persona=config.persona), summary_prompt(config.persona.brand)],
    )


def build_chain(
    settings: ActionSettings,
    *,
    registry: CollectorRegistry,
    infra: Infrastructure | None = None,
    kb: KnowledgeBase | None = None,
    masker: PiiMasker | None = None,
    llm: LlmClient | None = None,
) -> FallbackChain:
    """Build the chain and its resources from ``settings``; the caller awaits ``chain.aclose()`` at exit.

    The answer cache and token budgets come from ``infra``, the process's composition root (its
    owner closes it); without one the chain makes and owns its own. ``kb``, ``masker`` and ``llm``
    replace what would be built (tests share one index and one spaCy load across many chains).
    """
    config = ChainConfig.from_settings(settings.fallback, settings.llm, settings.brand)
    kb = kb or KnowledgeBase.from_directory(resolve_knowledge_dir(settings.fallback.knowledge_dir))
    masker = masker or PiiMasker.create()
    owned: list[Closer] = []
    if infra is None:
        infra = Infrastructure(settings.redis)
        owned.append(infra.aclose)
    return FallbackChain(
        kb=kb,
        guard=InputGuard(masker, max_chars=settings.input.max_message_chars),
        sanitizer=build_sanitizer(settings.fallback, masker, config),
        metrics=FallbackMetrics(registry),
        config=config,
        llm=llm if llm is not None else LlmClient.from_settings(settings.llm),
        cache=infra.answer_cache(settings.fallback),
        budget=infra.token_budget(settings.fallback),
        owned=owned,
    )
