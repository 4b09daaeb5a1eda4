"""The Slack and Telegram doors of the gateway (issue 12): on when their secrets are set.

A channel is on when both of its secrets are set and off when neither is; one without the other
stops the gateway at start with a clear message, so a half-configured door is never open.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from tandem.settings.base import SettingsPart


def _set(value: SecretStr | None) -> bool:
    return bool(value and value.get_secret_value())


class SlackSettings(SettingsPart):
    """A Slack app: Events API and interactivity, the Web API for replies."""

    # Signs every request Slack sends (Basic Information → App Credentials → Signing Secret).
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    # The bot token (xoxb-...) the replies are posted with (scopes: chat:write, im:history, app_mentions:read).
    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    # The Web API's base (tests point it at a local fake).
    slack_api_base_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_BASE_URL")
    # The bot's user id (U...), so "<@U...> hello" reaches Rasa as "hello"; unset: a leading
    # mention of an app_mention event is stripped whoever it names.
    slack_bot_user_id: str | None = Field(default=None, pattern=r"^[UW][A-Z0-9]{2,20}$", alias="SLACK_BOT_USER_ID")

    @property
    def enabled(self) -> bool:
        return _set(self.slack_signing_secret) and _set(self.slack_bot_token)

    @model_validator(mode="after")
    def _whole(self) -> SlackSettings:
        if _set(self.slack_signing_secret) != _set(self.slack_bot_token):
            raise ValueError("Slack is half-configured: set both SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN, or neither")
        return self


class TelegramSettings(SettingsPart):
    """A Telegram bot: its webhook and the Bot API for replies."""

    # From @BotFather.
    telegram_bot_token: SecretStr | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    # Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token on every update (set with
    # `python -m tandem.cli telegram set-webhook URL`): 16-256 characters of A-Z a-z 0-9 _ -.
    telegram_webhook_secret: SecretStr | None = Field(default=None, alias="TELEGRAM_WEBHOOK_SECRET")
    # The Bot API's base (tests point it at a local fake).
    telegram_api_base_url: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_BASE_URL")
    # The bot's @username, so "/start@otherbot" in a group is not taken as ours.
    telegram_bot_username: str | None = Field(default=None, alias="TELEGRAM_BOT_USERNAME")

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_token(cls, value: SecretStr | None) -> SecretStr | None:
        secret = value.get_secret_value() if value else ""
        if secret and (
            not 16 <= len(secret) <= 256 or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)
        ):
            raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 16-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @property
    def enabled(self) -> bool:
        return _set(self.telegram_bot_token) and _set(self.telegram_webhook_secret)

    @model_validator(mode="after")
    def _whole(self) -> TelegramSettings:
        if _set(self.telegram_bot_token) != _set(self.telegram_webhook_secret):
            raise ValueError(
                "Telegram is half-configured: set both TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET, or neither"
            )
        return self
