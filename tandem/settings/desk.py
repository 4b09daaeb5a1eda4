"""The human handoff desk (issue 13): the queue, the agent console's logins, the help desk in use.

``HELPDESK=embedded`` (default) keeps handoffs in the project's database and serves the agent
console at ``/agent/``; ``HELPDESK=chatwoot`` also opens each handoff as a conversation in a
Chatwoot API-channel inbox and takes the agents' replies from its webhook (all five CHATWOOT_*
values are then required).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from tandem.settings.base import SettingsPart


class HandoffSettings(SettingsPart):
    """The queue and the console (read by the gateway)."""

    # No agent within this many seconds: the customer is told (the ticket stays for an e-mail
    # follow-up) and the bot takes the conversation back.
    handoff_queue_timeout: int = Field(default=900, ge=10, le=7 * 24 * 3600, alias="HANDOFF_QUEUE_TIMEOUT")
    # How often the gateway looks for queued handoffs past the timeout.
    handoff_sweep_seconds: float = Field(default=15.0, gt=0, le=3600, alias="HANDOFF_SWEEP_SECONDS")
    # How long an agent's console login lasts.
    agent_session_ttl_seconds: int = Field(
        default=8 * 3600, ge=60, le=30 * 24 * 3600, alias="AGENT_SESSION_TTL_SECONDS"
    )
    # Login attempts per client address and per e-mail (the `limits` notation; several with ";").
    agent_login_rate_limit: str = Field(default="5/minute;30/hour", alias="AGENT_LOGIN_RATE_LIMIT")
    helpdesk: Literal["embedded", "chatwoot"] = Field(default="embedded", alias="HELPDESK")


class ChatwootSettings(SettingsPart):
    """A Chatwoot account's API-channel inbox (``HELPDESK=chatwoot``)."""

    chatwoot_base_url: str | None = Field(default=None, alias="CHATWOOT_BASE_URL")
    # A Chatwoot user's (or agent bot's) access token: Profile settings → Access token.
    chatwoot_api_token: SecretStr | None = Field(default=None, alias="CHATWOOT_API_TOKEN")
    chatwoot_account_id: int | None = Field(default=None, ge=1, alias="CHATWOOT_ACCOUNT_ID")
    chatwoot_inbox_id: int | None = Field(default=None, ge=1, alias="CHATWOOT_INBOX_ID")
    # The last segment of the webhook URL given to Chatwoot (/channels/chatwoot/webhook/<secret>).
    chatwoot_webhook_secret: SecretStr | None = Field(default=None, alias="CHATWOOT_WEBHOOK_SECRET")

    @property
    def configured(self) -> bool:
        return bool(
            self.chatwoot_base_url
            and self.chatwoot_api_token
            and self.chatwoot_api_token.get_secret_value()
            and self.chatwoot_account_id
            and self.chatwoot_inbox_id
            and self.chatwoot_webhook_secret
            and len(self.chatwoot_webhook_secret.get_secret_value()) >= 16
        )

    @model_validator(mode="after")
    def _secret_long_enough(self) -> ChatwootSettings:
        secret = self.chatwoot_webhook_secret.get_secret_value() if self.chatwoot_webhook_secret else ""
        if secret and (len(secret) < 16 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)):
            raise ValueError("CHATWOOT_WEBHOOK_SECRET must be at least 16 characters of A-Z, a-z, 0-9, _ and -")
        return self
