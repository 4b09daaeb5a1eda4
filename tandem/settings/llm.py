"""The model client and the fallback chain around it (issue 3).

No ``LLM_MODEL`` (the embedded default) means retrieval only. Any OpenAI-compatible server works:
OpenAI (no base URL), Azure OpenAI's v1 endpoint, vLLM, Ollama, llama.cpp (``LLM_BASE_URL``).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr

from tandem.settings.base import SettingsPart


class LlmSettings(SettingsPart):
    """How to reach the model and what its tokens cost."""

    llm_base_url: str | None = Field(default=None, alias="LLM_BASE_URL")
    llm_api_key: SecretStr | None = Field(default=None, alias="LLM_API_KEY")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    llm_model: str | None = Field(default=None, alias="LLM_MODEL")
    # Per attempt; with the retries and backoff the whole call stays well under Rasa's 60 s lock.
    llm_timeout_seconds: float = Field(default=10.0, gt=0, le=30, alias="LLM_TIMEOUT_SECONDS")
    llm_max_retries: int = Field(default=2, ge=0, le=5, alias="LLM_MAX_RETRIES")
    llm_backoff_base_seconds: float = Field(default=0.5, ge=0, le=10, alias="LLM_BACKOFF_BASE_SECONDS")
    llm_backoff_max_seconds: float = Field(default=4.0, ge=0, le=30, alias="LLM_BACKOFF_MAX_SECONDS")
    # The whole LLM call (attempts, backoff) within one turn: clearly under the gateway's turn timeout
    # (RASA_TIMEOUT_SECONDS), else a slow model gives a 504 while Rasa still finishes the turn (issue 10).
    llm_total_timeout_seconds: float = Field(default=15.0, gt=0, le=50, alias="LLM_TOTAL_TIMEOUT_SECONDS")
    # The circuit breaker (tandem/llm/breaker.py): after this many outage failures in a row the model
    # is not called for the cool-down (calls fail at once; the chain answers from the knowledge base).
    llm_breaker_failures: int = Field(default=3, ge=0, le=100, alias="LLM_BREAKER_FAILURES")
    llm_breaker_cooldown_seconds: float = Field(default=30.0, gt=0, le=3600, alias="LLM_BREAKER_COOLDOWN_SECONDS")
    llm_max_tokens: int = Field(default=350, ge=16, le=4096, alias="LLM_MAX_TOKENS")
    llm_temperature: float = Field(default=0.0, ge=0, le=2, alias="LLM_TEMPERATURE")
    llm_json_mode: bool = Field(default=True, alias="LLM_JSON_MODE")
    llm_price_prompt_per_1k: Decimal = Field(default=Decimal("0"), ge=0, alias="LLM_PRICE_PROMPT_PER_1K")
    llm_price_completion_per_1k: Decimal = Field(default=Decimal("0"), ge=0, alias="LLM_PRICE_COMPLETION_PER_1K")
    llm_price_currency: str = Field(default="USD", alias="LLM_PRICE_CURRENCY")

    @property
    def llm_configured(self) -> bool:
        """True when a model is named: the chain then calls it; otherwise retrieval only."""
        return bool(self.llm_model)

    @property
    def llm_secret(self) -> str | None:
        """LLM_API_KEY, else OPENAI_API_KEY, else None (local servers need no key)."""
        key = self.llm_api_key or self.openai_api_key
        return key.get_secret_value() if key else None


class FallbackSettings(SettingsPart):
    """The chain's thresholds, budgets, cache and knowledge base."""

    # A FAQ answer is given only when the response selector is this sure; below it the question
    # goes to the fallback chain (long-tail questions that resemble a FAQ topic, e.g. surfboards).
    # Measured: FAQ paraphrases score >= 0.999; "surfboard", "guitar", "golf clubs" 0.88-0.93.
    faq_min_confidence: float = Field(default=0.95, ge=0, le=1, alias="FAQ_MIN_CONFIDENCE")
    llm_budget_tokens_per_conversation: int = Field(default=20000, ge=0, alias="LLM_BUDGET_TOKENS_PER_CONVERSATION")
    llm_budget_tokens_per_day: int = Field(default=2_000_000, ge=0, alias="LLM_BUDGET_TOKENS_PER_DAY")
    # Per gateway client key and UTC day: 2 % of the default daily budget (about 25-40 model
    # turns), so one address opening conversation after conversation cannot empty the day.
    llm_budget_tokens_per_client: int = Field(default=40_000, ge=0, alias="LLM_BUDGET_TOKENS_PER_CLIENT")
    llm_cache_ttl_seconds: int = Field(default=86400, ge=0, alias="LLM_CACHE_TTL_SECONDS")
    llm_cache_max_entries: int = Field(default=2048, ge=0, alias="LLM_CACHE_MAX_ENTRIES")
    knowledge_dir: str = Field(default="knowledge", alias="KNOWLEDGE_DIR")
    fallback_top_k: int = Field(default=3, ge=1, le=8, alias="FALLBACK_TOP_K")
    fallback_history_turns: int = Field(default=6, ge=0, le=20, alias="FALLBACK_HISTORY_TURNS")
    fallback_max_answer_chars: int = Field(default=600, ge=80, le=4000, alias="FALLBACK_MAX_ANSWER_CHARS")
    fallback_rescue_threshold: float = Field(default=0.75, ge=0, le=1, alias="FALLBACK_RESCUE_THRESHOLD")
    fallback_low_confidence: float = Field(default=0.4, ge=0, le=1, alias="FALLBACK_LOW_CONFIDENCE")
    fallback_handoff_after: int = Field(default=2, ge=1, le=10, alias="FALLBACK_HANDOFF_AFTER")
    # Retrieval-only answers: the best passage must clear both (tuned by benchmarks/fallback).
    fallback_retrieval_min_score: float = Field(default=1.7, ge=0, alias="FALLBACK_RETRIEVAL_MIN_SCORE")
    fallback_retrieval_min_coverage: float = Field(default=0.4, ge=0, le=1, alias="FALLBACK_RETRIEVAL_MIN_COVERAGE")
    # Hosts a model's answer may link to (and their subdomains); other links are removed.
    fallback_link_allowlist: str = Field(default="andaman-air.example", alias="FALLBACK_LINK_ALLOWLIST")
