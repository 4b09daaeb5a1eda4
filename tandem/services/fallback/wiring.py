"""The fallback chain's composition root: everything the chain needs, built from the settings.

The knowledge-base index, the guard (spaCy is loaded here, once), the output sanitiser, the model
client (only when ``LLM_MODEL`` is set), and the answer cache and token budgets, both on the one
Redis client this root creates when ``REDIS_URL`` is set, else in process. The chain receives the
Redis client's closer as a resource it owns: :meth:`FallbackChain.aclose` closes the pool.
Nothing here runs at import time.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from tandem.guard import InputGuard, PiiMasker
from tandem.knowledge import KnowledgeBase
from tandem.llm import (
    AnswerCache,
    FallbackMetrics,
    InMemoryAnswerCache,
    InMemoryTokenBudget,
    IntentChoice,
    LlmClient,
    OutputSanitizer,
    RedisAnswerCache,
    RedisTokenBudget,
    TokenBudget,
)
from tandem.llm.cache import make_redis_client
from tandem.llm.prompts import system_prompt
from tandem.settings import Settings

from .catalogue import RESCUE_INTENTS
from .chain import Closer, FallbackChain
from .types import ChainConfig

# tandem/services/fallback/wiring.py → the project root.
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def resolve_knowledge_dir(value: str) -> Path:
    """``KNOWLEDGE_DIR`` as given, or relative to the project root when not found from here."""
    path = Path(value)
    if path.is_absolute() or path.is_dir():
        return path
    return PROJECT_ROOT / value


def build_sanitizer(settings: Settings, masker: PiiMasker, config: ChainConfig) -> OutputSanitizer:
    """The output sanitiser: PII, links outside the allow-list, markup, length, prompt leaks."""
    choices = [IntentChoice(i.name, i.description) for i in RESCUE_INTENTS]
    return OutputSanitizer(
        masker,
        allowed_hosts=settings.fallback_link_allowlist.split(","),
        max_chars=settings.fallback_max_answer_chars,
        secret_texts=[system_prompt(choices, brand=config.brand)],
    )


def build_chain(
    settings: Settings,
    *,
    registry: CollectorRegistry,
    kb: KnowledgeBase | None = None,
    masker: PiiMasker | None = None,
    llm: LlmClient | None = None,
) -> FallbackChain:
    """Build the chain and its resources from ``settings``; the caller awaits ``chain.aclose()`` at exit.

    ``kb``, ``masker`` and ``llm`` replace what would be built (tests share one index and one
    spaCy load across many chains).
    """
    config = ChainConfig.from_settings(settings)
    kb = kb or KnowledgeBase.from_directory(resolve_knowledge_dir(settings.knowledge_dir))
    masker = masker or PiiMasker.create()
    cache: AnswerCache
    budget: TokenBudget
    owned: list[Closer] = []
    if settings.redis_url:
        redis_client = make_redis_client(settings)  # the one client; the chain closes its pool
        owned.append(redis_client.aclose)
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
    return FallbackChain(
        kb=kb,
        guard=InputGuard(masker, max_chars=settings.fallback_max_input_chars),
        sanitizer=build_sanitizer(settings, masker, config),
        metrics=FallbackMetrics(registry),
        config=config,
        llm=llm if llm is not None else LlmClient.from_settings(settings),
        cache=cache,
        budget=budget,
        owned=owned,
    )
