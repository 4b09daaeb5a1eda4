"""The processes' own settings: a turn's time budget, the action server, the website gateway."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator

from tandem.settings.base import SettingsPart

# The longest message a customer may send, on every door (gateway, channels) and in the fallback
# chain's guard: one cap, so a message the edge accepts is never refused later for its length.
DEFAULT_MAX_MESSAGE_CHARS = 1000
MAX_MESSAGE_CHARS_CEILING = 10000


class InputSettings(SettingsPart):
    """Limits on what customers send, shared by the gateway and the action server."""

    # GATEWAY_MAX_MESSAGE_CHARS is the earlier name, still read.
    max_message_chars: int = Field(
        default=DEFAULT_MAX_MESSAGE_CHARS,
        ge=1,
        le=MAX_MESSAGE_CHARS_CEILING,
        validation_alias=AliasChoices("MAX_MESSAGE_CHARS", "GATEWAY_MAX_MESSAGE_CHARS"),
    )


class TurnSettings(SettingsPart):
    """How long one turn may take, end to end (the gateway waits this long for Rasa)."""

    # A turn may call several actions; stay well under Rasa's 60 s lock expiry.
    rasa_timeout_seconds: float = Field(default=30.0, gt=0, le=55, alias="RASA_TIMEOUT_SECONDS")


class ActionServerSettings(SettingsPart):
    """The action server (actions/server.py) and the tools it runs."""

    # The action server's Prometheus metrics (fallback chain: tokens, cost, latency, cache hits,
    # decisions) on 127.0.0.1:<port>/metrics; unset = not exposed.
    action_metrics_port: int | None = Field(default=None, ge=1, le=65535, alias="ACTION_METRICS_PORT")
    # Loopback by default; 0.0.0.0 only inside a container whose port is not published (compose).
    action_metrics_host: str = Field(default="127.0.0.1", min_length=1, alias="ACTION_METRICS_HOST")
    # Scrapers of those metrics send "Authorization: Bearer <token>"; without a token they are not exposed.
    action_metrics_token: SecretStr | None = Field(default=None, alias="ACTION_METRICS_TOKEN")
    # The action server runs actions only for callers with this bearer token (Rasa, through
    # endpoints.yml); it refuses to start without one. It binds ACTION_SERVER_HOST:ACTION_PORT.
    action_server_token: SecretStr | None = Field(default=None, alias="ACTION_SERVER_TOKEN")
    action_server_host: str = Field(default="127.0.0.1", alias="ACTION_SERVER_HOST")
    action_port: int = Field(default=5055, ge=1, le=65535, alias="ACTION_PORT")
    tool_timeout_seconds: float = Field(default=5.0, gt=0, le=30, alias="TOOL_TIMEOUT_SECONDS")


class GatewaySettings(TurnSettings):
    """The website gateway (tandem/gateway, issue 4): the only public entry; Rasa stays on localhost."""

    gateway_env: Literal["development", "production"] = Field(default="development", alias="GATEWAY_ENV")
    # Signs the visitors' session tokens. Required (32+ characters) in production; in development an
    # ephemeral one is generated at start-up (sessions then end with the process).
    gateway_secret: SecretStr | None = Field(default=None, alias="GATEWAY_SECRET")
    gateway_host: str = Field(default="127.0.0.1", alias="GATEWAY_HOST")
    gateway_port: int = Field(default=8000, ge=1, le=65535, alias="GATEWAY_PORT")
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
    # One Rasa server, or a comma-separated list of replicas: each conversation goes to one of them
    # (rendezvous hashing over the healthy ones, tandem/gateway/replicas.py).
    rasa_url: str = Field(default="http://127.0.0.1:5005", alias="RASA_URL")
    # How often every replica's health is probed (the readiness check of Rasa).
    rasa_health_interval_seconds: float = Field(default=5.0, gt=0, le=300, alias="RASA_HEALTH_INTERVAL_SECONDS")
    rasa_api_token: SecretStr | None = Field(default=None, alias="RASA_API_TOKEN")
    action_server_url: str = Field(default="http://127.0.0.1:5055/webhook", alias="ACTION_SERVER_URL")

    @field_validator("rasa_url")
    @classmethod
    def _valid_rasa_urls(cls, value: str) -> str:
        parse_rasa_urls(value)
        return value

    @model_validator(mode="after")
    def _safe_gateway_settings(self) -> GatewaySettings:
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
        return self

    @property
    def gateway_allowed_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.gateway_allowed_origins.split(",") if o.strip()]

    @property
    def rasa_url_list(self) -> list[str]:
        """The Rasa replicas' base URLs, in the order given (index 0 first), without a trailing slash."""
        return parse_rasa_urls(self.rasa_url)

    @property
    def gateway_trusted_proxy_list(self) -> list[str]:
        return [p.strip() for p in self.gateway_trusted_proxies.split(",") if p.strip()]


def parse_rasa_urls(value: str) -> list[str]:
    """``RASA_URL``'s replicas: http(s) base URLs, comma-separated, none empty, none twice.

    The errors name the item by position, not by its text: a URL may carry credentials.
    """
    urls: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    items = value.split(",")
    for position, item in enumerate(items, start=1):
        url = item.strip().rstrip("/")
        where = f"RASA_URL item {position} of {len(items)}" if len(items) > 1 else "RASA_URL"
        if not url:
            raise ValueError(f"{where} is empty: give one Rasa base URL or a comma-separated list of them")
        try:
            parts = urlsplit(url)
            port = parts.port  # raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"{where} is not a valid URL") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{where} must be an http:// or https:// URL with a host (like http://127.0.0.1:5005)")
        if parts.query or parts.fragment:
            raise ValueError(f"{where} must be a base URL, without a query or a fragment")
        key = (parts.scheme, f"{parts.hostname}:{port or (443 if parts.scheme == 'https' else 80)}", parts.path)
        if key in seen:
            raise ValueError(f"{where} repeats an earlier replica: each Rasa replica must be listed once")
        seen.add(key)
        urls.append(url)
    return urls
