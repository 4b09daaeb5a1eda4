"""The platforms' side of the chat doors, for the command line: ``telegram set-webhook URL``.

Telegram only delivers updates to a webhook it was told about, with the secret it echoes back in
``X-Telegram-Bot-Api-Secret-Token`` (the gateway refuses updates without it). This module registers
the gateway's URL with ``TELEGRAM_WEBHOOK_SECRET`` and ``allowed_updates`` (``message`` and
``callback_query``, the updates that run turns), so the registration matches what the gateway
checks. The bot token and the secret are never printed or logged: the Bot API's URL contains the
token, so no URL of it is shown, and httpx's request lines are redacted.

Exit codes: 0 registered; 1 Telegram (or the network) refused or failed; 2 nothing was sent
(Telegram not configured, a half or invalid configuration, a URL Telegram would not accept).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TextIO
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from tandem.settings.channels import TelegramSettings

__all__ = ["ALLOWED_UPDATES", "SET_WEBHOOK_TIMEOUT_SECONDS", "TELEGRAM_WEBHOOK_PORTS", "telegram_set_webhook"]

# The updates that run turns; every other kind is not even delivered (setWebhook replaces the list).
ALLOWED_UPDATES = ("message", "callback_query")
# The ports Telegram delivers webhooks to (Bot API, setWebhook).
TELEGRAM_WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})
SET_WEBHOOK_TIMEOUT_SECONDS = 15.0

_log = logging.getLogger(__name__)


class _Refused(Exception):
    """Nothing was sent: the reason, for stderr (exit code 2)."""


def _check_url(url: str) -> str:
    """``url`` when Telegram would accept it as a webhook (HTTPS, a host, one of its ports)."""
    if url != url.strip() or any(c.isspace() for c in url):
        raise _Refused("the webhook URL must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _Refused("the webhook URL is not a valid URL") from None
    if parts.scheme.lower() != "https":
        raise _Refused(
            "the webhook URL must start with https:// (Telegram delivers webhooks over HTTPS only), "
            "e.g. https://YOUR-DOMAIN/channels/telegram/webhook"
        )
    if not parts.hostname:
        raise _Refused("the webhook URL has no host")
    if port is not None and port not in TELEGRAM_WEBHOOK_PORTS:
        allowed = ", ".join(str(p) for p in sorted(TELEGRAM_WEBHOOK_PORTS))
        raise _Refused(f"Telegram delivers webhooks to ports {allowed} only, not {port}")
    return url


def _load_settings() -> TelegramSettings:
    """The Telegram settings from the environment (and ``.env``); never echoes a value."""
    try:
        settings = TelegramSettings()
    except ValidationError as error:
        # Only the messages: pydantic's full text would include the input values (the secrets).
        reasons = "; ".join(
            str(e["msg"]).removeprefix("Value error, ")
            for e in error.errors(include_url=False, include_context=False, include_input=False)
        )
        raise _Refused(f"the Telegram settings are invalid: {reasons}") from None
    if not settings.enabled:
        raise _Refused(
            "Telegram is not configured: set TELEGRAM_BOT_TOKEN (from @BotFather) and TELEGRAM_WEBHOOK_SECRET "
            "(16-256 characters of A-Z, a-z, 0-9, _ and -) in the environment or .env"
        )
    return settings


def _credentials(settings: TelegramSettings) -> tuple[str, str]:
    """The bot token and the webhook secret, or :class:`_Refused` when either is missing."""
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else ""
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    if not (token and secret):
        raise _Refused("Telegram is not configured: set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET")
    return token, secret


async def _register(
    *, base_url: str, token: str, secret: str, url: str, drop_pending_updates: bool, timeout: float
) -> tuple[bool, str]:
    """Call ``setWebhook``; (registered, the line to print)."""
    # Imported here: the gateway package is heavy and only this command needs it.
    from tandem.gateway.channels.outbound import PlatformError, TelegramBotApi, redact_httpx_urls

    redact_httpx_urls()  # httpx logs every request's URL, the token included
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            # One attempt: a 429 is reported, not slept through (the operator runs the command again).
            api = TelegramBotApi(client, base_url, token, timeout, max_attempts=1)
        except ValueError:
            raise _Refused("TELEGRAM_BOT_TOKEN is not a bot token (the form is 123456789:ABC...)") from None
        try:
            if drop_pending_updates:
                # TelegramBotApi.set_webhook has no drop_pending_updates: the same body, plus the flag.
                body = {
                    "url": url,
                    "secret_token": secret,
                    "allowed_updates": list(ALLOWED_UPDATES),
                    "drop_pending_updates": True,
                }
                await api.call("setWebhook", body)
            else:
                await api.set_webhook(url, secret, allowed_updates=ALLOWED_UPDATES)
        except PlatformError as error:
            if error.description:
                return False, f"Telegram refused setWebhook ({error.code}): {error.description}"
            if error.code == "ratelimited":
                return False, f"Telegram rate-limited setWebhook: try again in {error.retry_after or 1} s"
            return False, f"setWebhook failed ({error.code}) calling the Telegram Bot API at {base_url}"
    pending = "; pending updates dropped" if drop_pending_updates else ""
    return True, f"Telegram webhook set to {url} (updates: {', '.join(ALLOWED_UPDATES)}{pending})"


def telegram_set_webhook(
    url: str,
    *,
    drop_pending_updates: bool = False,
    settings: TelegramSettings | None = None,
    timeout: float = SET_WEBHOOK_TIMEOUT_SECONDS,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Register ``url`` as the bot's webhook with the configured secret; the process's exit code.

    ``settings`` defaults to :class:`TelegramSettings` read from the environment. One line goes to
    ``stdout`` on success (0), to ``stderr`` otherwise: 1 when Telegram or the network failed
    (Telegram's own description when it gave one), 2 when nothing was sent.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        checked = _check_url(url)
        loaded = settings if settings is not None else _load_settings()
        token, secret = _credentials(loaded)
        ok, line = asyncio.run(
            _register(
                base_url=loaded.telegram_api_base_url,
                token=token,
                secret=secret,
                url=checked,
                drop_pending_updates=drop_pending_updates,
                timeout=timeout,
            )
        )
    except _Refused as refused:
        err.write(f"telegram set-webhook: {refused}\n")
        return 2
    if ok:
        _log.info("telegram webhook registered")
        out.write(line + "\n")
        return 0
    err.write(f"telegram set-webhook: {line}\n")
    return 1
