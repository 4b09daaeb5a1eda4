"""Configuration, read only from the environment (and an optional ``.env``), in one typed object.

Nothing here runs at import time: call :func:`load_settings` where the process starts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What a turn needs besides the LLM call (NLU, actions, database) within RASA_TIMEOUT_SECONDS.
LLM_TURN_MARGIN_SECONDS = 5.0


class Settings(BaseSettings):
    """Every setting of the application environment. Names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Business data: SQLite file by default (embedded mode), PostgreSQL when it says so.
    database_url: str = Field(default="sqlite:///var/tandem.db", alias="DATABASE_URL")
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=60, alias="DB_CONNECT_TIMEOUT_SECONDS")
    db_statement_timeout_ms: int = Field(default=5000, ge=100, le=60000, alias="DB_STATEMENT_TIMEOUT_MS")
    # Redis for rate limits and caches in production; unset means in-process.
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    redis_timeout_seconds: float = Field(default=2.0, gt=0, le=30, alias="REDIS_TIMEOUT_SECONDS")

    # The airline's local time zone decides what "today" means for customers.
    timezone: str = Field(default="Asia/Bangkok", alias="AIRLINE_TIMEZONE")
    currency: str = Field(default="THB", alias="CURRENCY")
    schedule_days: int = Field(default=180, ge=7, le=400, alias="SCHEDULE_DAYS")
    search_max_options: int = Field(default=3, ge=1, le=10, alias="SEARCH_MAX_OPTIONS")
    max_passengers: int = Field(default=9, ge=1, le=9, alias="MAX_PASSENGERS")
    # Refunds above this amount (in CURRENCY) need an agent's approval.
    refund_approval_threshold: Decimal = Field(default=Decimal("20000"), ge=0, alias="REFUND_APPROVAL_THRESHOLD")
    payment_link_base: str = Field(default="https://pay.andaman-air.example/checkout/", alias="PAYMENT_LINK_BASE")
    hold_minutes: int = Field(default=30, ge=5, le=1440, alias="BOOKING_HOLD_MINUTES")
    # Unpaid holds block seats for everyone else (issue 10, finding 2). Open holds (held, not
    # expired) per conversation / e-mail / client key (the gateway's), and the share of what a
    # cabin has left to sell (seats left + seats held) that unpaid holds may take together.
    booking_max_holds_per_conversation: int = Field(default=3, ge=1, alias="BOOKING_MAX_HOLDS_PER_CONVERSATION")
    booking_max_holds_per_email: int = Field(default=3, ge=1, alias="BOOKING_MAX_HOLDS_PER_EMAIL")
    booking_max_holds_per_client: int = Field(default=5, ge=1, alias="BOOKING_MAX_HOLDS_PER_CLIENT")
    booking_max_held_share: float = Field(default=0.5, gt=0, le=1, alias="BOOKING_MAX_HELD_SHARE")
    # Failed booking lookups (reference + last name), counted in the database across conversations
    # (finding 3): at the maximum within LOOKUP_LOCKOUT_MINUTES the reference / client / conversation
    # is locked until its oldest failure in the window is that old.
    lookup_max_failures_per_reference: int = Field(default=3, ge=1, alias="LOOKUP_MAX_FAILURES_PER_REFERENCE")
    lookup_max_failures_per_conversation: int = Field(default=5, ge=1, alias="LOOKUP_MAX_FAILURES_PER_CONVERSATION")
    lookup_max_failures_per_client: int = Field(default=10, ge=1, alias="LOOKUP_MAX_FAILURES_PER_CLIENT")
    lookup_lockout_minutes: int = Field(default=15, ge=1, le=1440, alias="LOOKUP_LOCKOUT_MINUTES")
    # New handoff tickets per hour (finding 6); a conversation has at most one open handoff anyway.
    handoff_limit_per_client: int = Field(default=3, ge=1, alias="HANDOFF_LIMIT_PER_CLIENT")
    handoff_limit_per_conversation: int = Field(default=3, ge=1, alias="HANDOFF_LIMIT_PER_CONVERSATION")
    # `python -m tandem.cli seed` adds the public demo customers and bookings only when asked
    # (`seed --demo` or this): their references and names are published in the README.
    seed_demo_data: bool = Field(default=False, alias="SEED_DEMO_DATA")

    password_reset_ttl_minutes: int = Field(default=30, ge=5, le=1440, alias="PASSWORD_RESET_TTL_MINUTES")
    password_reset_limit_per_email: int = Field(default=3, ge=1, alias="PASSWORD_RESET_LIMIT_PER_EMAIL")
    password_reset_limit_per_conversation: int = Field(default=5, ge=1, alias="PASSWORD_RESET_LIMIT_PER_CONVERSATION")
    password_reset_window_seconds: int = Field(default=3600, ge=60, alias="PASSWORD_RESET_WINDOW_SECONDS")

    # A FAQ answer is given only when the response selector is this sure; below it the question
    # goes to the fallback chain (long-tail questions that resemble a FAQ topic, e.g. surfboards).
    # Measured: FAQ paraphrases score >= 0.999; "surfboard", "guitar", "golf clubs" 0.88-0.93.
    faq_min_confidence: float = Field(default=0.95, ge=0, le=1, alias="FAQ_MIN_CONFIDENCE")
    # The action server's Prometheus metrics (fallback chain: tokens, cost, latency, cache hits,
    # decisions) on 127.0.0.1:<port>/metrics; unset = not exposed.
    action_metrics_port: int | None = Field(default=None, ge=1, le=65535, alias="ACTION_METRICS_PORT")
    # Scrapers of those metrics send "Authorization: Bearer <token>"; without a token they are not exposed.
    action_metrics_token: SecretStr | None = Field(default=None, alias="ACTION_METRICS_TOKEN")
    # The action server (actions/server.py) runs actions only for callers with this bearer token (Rasa,
    # through endpoints.yml); it refuses to start without one. It binds ACTION_SERVER_HOST:ACTION_PORT.
    action_server_token: SecretStr | None = Field(default=None, alias="ACTION_SERVER_TOKEN")
    action_server_host: str = Field(default="127.0.0.1", alias="ACTION_SERVER_HOST")
    action_port: int = Field(default=5055, ge=1, le=65535, alias="ACTION_PORT")
    tool_timeout_seconds: float = Field(default=5.0, gt=0, le=30, alias="TOOL_TIMEOUT_SECONDS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", alias="LOG_LEVEL")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            # SQLAlchemy would pick psycopg2, which this environment does not ship.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    # --- LLM fallback chain (issue 3) ------------------------------------------------------------
    # No LLM_MODEL (the embedded default) means retrieval only. Any OpenAI-compatible server works:
    # OpenAI (no base URL), Azure OpenAI's v1 endpoint, vLLM, Ollama, llama.cpp (LLM_BASE_URL).
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
    llm_max_tokens: int = Field(default=350, ge=16, le=4096, alias="LLM_MAX_TOKENS")
    llm_temperature: float = Field(default=0.0, ge=0, le=2, alias="LLM_TEMPERATURE")
    llm_json_mode: bool = Field(default=True, alias="LLM_JSON_MODE")
    llm_price_prompt_per_1k: Decimal = Field(default=Decimal("0"), ge=0, alias="LLM_PRICE_PROMPT_PER_1K")
    llm_price_completion_per_1k: Decimal = Field(default=Decimal("0"), ge=0, alias="LLM_PRICE_COMPLETION_PER_1K")
    llm_price_currency: str = Field(default="USD", alias="LLM_PRICE_CURRENCY")
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
    fallback_max_input_chars: int = Field(default=500, ge=20, le=5000, alias="FALLBACK_MAX_INPUT_CHARS")
    fallback_max_answer_chars: int = Field(default=600, ge=80, le=4000, alias="FALLBACK_MAX_ANSWER_CHARS")
    fallback_rescue_threshold: float = Field(default=0.75, ge=0, le=1, alias="FALLBACK_RESCUE_THRESHOLD")
    fallback_low_confidence: float = Field(default=0.4, ge=0, le=1, alias="FALLBACK_LOW_CONFIDENCE")
    fallback_handoff_after: int = Field(default=2, ge=1, le=10, alias="FALLBACK_HANDOFF_AFTER")
    # Retrieval-only answers: the best passage must clear both (tuned by benchmarks/fallback).
    fallback_retrieval_min_score: float = Field(default=1.7, ge=0, alias="FALLBACK_RETRIEVAL_MIN_SCORE")
    fallback_retrieval_min_coverage: float = Field(default=0.4, ge=0, le=1, alias="FALLBACK_RETRIEVAL_MIN_COVERAGE")
    # Hosts a model's answer may link to (and their subdomains); other links are removed.
    fallback_link_allowlist: str = Field(default="andaman-air.example", alias="FALLBACK_LINK_ALLOWLIST")

    @property
    def llm_configured(self) -> bool:
        """True when a model is named: the chain then calls it; otherwise retrieval only."""
        return bool(self.llm_model)

    @property
    def llm_secret(self) -> str | None:
        """LLM_API_KEY, else OPENAI_API_KEY, else None (local servers need no key)."""
        key = self.llm_api_key or self.openai_api_key
        return key.get_secret_value() if key else None

    # --- end of the LLM fallback chain block ------------------------------------------------------

    # ==== website channel gateway (tandem/gateway, issue 4) — begin ===============================
    # The gateway is the only public entry for web traffic; Rasa's HTTP API stays on localhost.
    gateway_env: Literal["development", "production"] = Field(default="development", alias="GATEWAY_ENV")
    # Signs the visitors' session tokens. Required (32+ characters) in production; in development an
    # ephemeral one is generated at start-up (sessions then end with the process).
    gateway_secret: SecretStr | None = Field(default=None, alias="GATEWAY_SECRET")
    gateway_host: str = Field(default="127.0.0.1", alias="GATEWAY_HOST")
    gateway_port: int = Field(default=8000, ge=1, le=65535, alias="GATEWAY_PORT")
    gateway_max_message_chars: int = Field(default=1000, ge=1, le=10000, alias="GATEWAY_MAX_MESSAGE_CHARS")
    gateway_max_body_bytes: int = Field(default=16384, ge=1024, le=1048576, alias="GATEWAY_MAX_BODY_BYTES")
    # Comma-separated origins (https://www.example.com) allowed to call the API from a browser.
    gateway_allowed_origins: str = Field(default="", alias="GATEWAY_ALLOWED_ORIGINS")
    gateway_session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=300, alias="GATEWAY_SESSION_TTL_SECONDS")
    gateway_cookie_secure: bool = Field(default=False, alias="GATEWAY_COOKIE_SECURE")
    # "none" lets the widget keep its cookie when embedded on another site (needs Secure, so HTTPS).
    gateway_cookie_samesite: Literal["lax", "strict", "none"] = Field(default="lax", alias="GATEWAY_COOKIE_SAMESITE")
    # Rate limits in the `limits` notation ("20/minute", "5/second;100/hour").
    gateway_rate_limit_session: str = Field(default="20/minute", alias="GATEWAY_RATE_LIMIT_SESSION")
    gateway_rate_limit_address: str = Field(default="120/minute", alias="GATEWAY_RATE_LIMIT_ADDRESS")
    # The hourly cap keeps new sessions from multiplying the per-conversation budgets (issue 10).
    gateway_rate_limit_new_session: str = Field(default="10/minute;60/hour", alias="GATEWAY_RATE_LIMIT_NEW_SESSION")
    # Comma-separated proxy addresses whose X-Forwarded-For is trusted for the client address.
    gateway_trusted_proxies: str = Field(default="", alias="GATEWAY_TRUSTED_PROXIES")
    # When set, /metrics and /readyz's details need "Authorization: Bearer <token>"; required in production.
    gateway_metrics_token: SecretStr | None = Field(default=None, alias="GATEWAY_METRICS_TOKEN")
    gateway_check_timeout_seconds: float = Field(default=2.0, gt=0, le=30, alias="GATEWAY_CHECK_TIMEOUT_SECONDS")
    rasa_url: str = Field(default="http://127.0.0.1:5005", alias="RASA_URL")
    # A turn may call several actions; stay well under Rasa's 60 s lock expiry.
    rasa_timeout_seconds: float = Field(default=30.0, gt=0, le=55, alias="RASA_TIMEOUT_SECONDS")
    rasa_api_token: SecretStr | None = Field(default=None, alias="RASA_API_TOKEN")
    action_server_url: str = Field(default="http://127.0.0.1:5055/webhook", alias="ACTION_SERVER_URL")

    @model_validator(mode="after")
    def _safe_gateway_settings(self) -> Settings:
        if self.gateway_cookie_samesite == "none" and not self.gateway_cookie_secure:
            raise ValueError("GATEWAY_COOKIE_SAMESITE=none needs GATEWAY_COOKIE_SECURE=true (browsers refuse it)")
        if self.gateway_env == "production":
            secret = self.gateway_secret.get_secret_value() if self.gateway_secret else ""
            if len(secret) < 32 or len(set(secret)) < 8 or secret.lower().startswith(("changeme", "change-me")):
                raise ValueError("GATEWAY_SECRET must be a random string of 32+ characters in production")
            metrics = self.gateway_metrics_token.get_secret_value() if self.gateway_metrics_token else ""
            if len(metrics) < 16 or len(set(metrics)) < 6:
                raise ValueError(
                    "GATEWAY_METRICS_TOKEN must be a random string of 16+ characters in production "
                    "(it guards /metrics and the details of /readyz)"
                )
        # Only when both are set in this environment: the defaults (15 + 5 < 30) hold by construction,
        # and tests shorten RASA_TIMEOUT_SECONDS alone for the gateway, which never calls the LLM.
        both = {"llm_total_timeout_seconds", "rasa_timeout_seconds"} <= self.model_fields_set
        if both and self.llm_total_timeout_seconds + LLM_TURN_MARGIN_SECONDS >= self.rasa_timeout_seconds:
            raise ValueError(
                f"LLM_TOTAL_TIMEOUT_SECONDS + {LLM_TURN_MARGIN_SECONDS:g} s must stay under RASA_TIMEOUT_SECONDS: "
                "a turn that outlives the gateway's timeout gets a 504 while Rasa still finishes it"
            )
        return self

    @property
    def gateway_allowed_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.gateway_allowed_origins.split(",") if o.strip()]

    @property
    def gateway_trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.gateway_trusted_proxies.split(",") if p.strip()]

    # ==== website channel gateway — end ============================================================


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment; keyword overrides win (used by tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
