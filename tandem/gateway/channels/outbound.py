"""Clients of Slack's Web API and Telegram's Bot API over a shared ``httpx.AsyncClient``.

Posting a message is not idempotent, so the one failure retried is the one that says the message
was *not* posted: HTTP 429 (Slack's ``Retry-After`` header; Telegram's
``parameters.retry_after``). The client waits that long (at most ``max_wait_seconds``; a longer
wait is not slept through but raised, with ``retry_after``, for the caller to schedule) and tries
again, at most ``max_attempts`` times in all. Everything else (a timeout, a 5xx, a connection
that broke after the request went out) may or may not have posted: it is raised as
:class:`PlatformError` and logged, never retried blindly. Platform error bodies (Slack's
``{"ok": false, "error": "invalid_blocks"}`` with HTTP 200, Telegram's ``{"ok": false,
"error_code": 400, "description": "Bad Request: ..."}``) become :class:`PlatformError` too.

Every call has a timeout. Tokens never reach logs or errors: Slack's travels in the
``Authorization`` header, Telegram's is part of the URL, so no URL is logged or put into an
exception. httpx itself logs every request's URL at INFO (``HTTP Request: POST
https://api.telegram.org/bot<token>/sendMessage``): the composition root installs
:class:`BotTokenRedactor` on the ``httpx`` logger (or keeps it at WARNING). The base URLs are
parameters so that tests point them at local fakes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import httpx

__all__ = [
    "DEFAULT_SLACK_API_BASE_URL",
    "DEFAULT_TELEGRAM_API_BASE_URL",
    "BotTokenRedactor",
    "PlatformError",
    "SlackWebApi",
    "TelegramBotApi",
    "redact_httpx_urls",
]

DEFAULT_SLACK_API_BASE_URL = "https://slack.com/api"
DEFAULT_TELEGRAM_API_BASE_URL = "https://api.telegram.org"
DEFAULT_MAX_WAIT_SECONDS = 30.0
DEFAULT_MAX_ATTEMPTS = 3
_DEFAULT_RETRY_AFTER = 1
_MAX_DESCRIPTION_CHARS = 200

Platform = Literal["slack", "telegram"]
Sleep = Callable[[float], Awaitable[None]]

_log = logging.getLogger(__name__)
_BOT_TOKEN_IN_URL = re.compile(r"/bot[0-9]+:[A-Za-z0-9_-]+")
# Rasa's HTTP API takes its token in the query string (``/status?token=...``).
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"']+")


class BotTokenRedactor(logging.Filter):
    """Rewrites secrets in URLs of a log line (httpx logs request URLs at INFO): ``/bot<id>:<secret>``
    (Telegram's Bot API) to ``/bot<redacted>``, ``?token=<secret>`` (Rasa's HTTP API) to
    ``?token=<redacted>``. Install it with :func:`redact_httpx_urls`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message or "token=" in message:
            redacted = _TOKEN_IN_QUERY.sub(r"\1<redacted>", _BOT_TOKEN_IN_URL.sub("/bot<redacted>", message))
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


def redact_httpx_urls() -> None:
    """Put a :class:`BotTokenRedactor` on the ``httpx`` logger, once per process (idempotent)."""
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, BotTokenRedactor) for f in httpx_log.filters):
        httpx_log.addFilter(BotTokenRedactor())


class PlatformError(Exception):
    """A call that did not succeed: ``code`` is Slack's ``error`` (``invalid_blocks``,
    ``ratelimited``...), Telegram's ``error_code`` (``"400"``, ``"403"``...), or ours: ``timeout``,
    ``connection_error``, ``http_<status>``, ``bad_response``. ``retry_after`` is set for a 429."""

    def __init__(
        self,
        platform: Platform,
        code: str,
        *,
        method: str,
        retry_after: int | None = None,
        status: int | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(f"{platform} {method}: {code}")
        self.platform = platform
        self.code = code
        self.method = method
        self.retry_after = retry_after
        self.status = status
        self.description = description


def _seconds(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


class _JsonApi:
    """POST a JSON body, retry only a 429, return the decoded JSON object (``ok`` not yet checked)."""

    platform: Platform
    default_base_url: str

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        bot_token: str = "",
        timeout: float = 10.0,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not self._token_ok(bot_token):
            raise ValueError(f"a {self.platform.capitalize()} bot token is required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._base = (base_url or self.default_base_url).rstrip("/")
        self._token = bot_token
        self._client = client
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._max_wait = max_wait_seconds
        self._sleep = sleep

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}(base_url={self._base!r})"

    @staticmethod
    def _token_ok(token: str) -> bool:
        return bool(token)

    def _url(self, method: str) -> str:
        raise NotImplementedError

    def _headers(self) -> dict[str, str]:
        return {}

    def _retry_after(self, response: httpx.Response, data: Any) -> int | None:
        raise NotImplementedError

    def _fail(self, method: str, code: str, **details: Any) -> PlatformError:
        error = PlatformError(self.platform, code, method=method, **details)
        # No URL, body or token in the line: the platform, the method and what went wrong.
        _log.warning(
            "platform call failed",
            extra={
                "platform": self.platform,
                "method": method,
                "code": code,
                "status": error.status,
                "retry_after": error.retry_after,
            },
        )
        return error

    async def _post(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._client.post(
                    self._url(method), json=body, headers=self._headers(), timeout=self._timeout
                )
            except httpx.TimeoutException:
                raise self._fail(method, "timeout") from None
            except httpx.HTTPError:
                raise self._fail(method, "connection_error") from None
            data: Any
            try:
                data = response.json()
            except ValueError:
                data = None
            if response.status_code == 429:
                retry_after = self._retry_after(response, data)
                wait = _DEFAULT_RETRY_AFTER if retry_after is None else retry_after
                if attempt < self._max_attempts and wait <= self._max_wait:
                    _log.info(
                        "platform rate limit: waiting",
                        extra={"platform": self.platform, "method": method, "retry_after": wait, "attempt": attempt},
                    )
                    await self._sleep(wait)
                    continue
                raise self._fail(method, "ratelimited", status=429, retry_after=wait)
            if response.status_code >= 500:
                raise self._fail(method, f"http_{response.status_code}", status=response.status_code)
            if not isinstance(data, dict):
                raise self._fail(method, "bad_response", status=response.status_code)
            return data
        raise AssertionError("unreachable: the last attempt returns or raises")


class SlackWebApi(_JsonApi):
    """``chat.postMessage`` and ``chat.update`` with a bot token (``xoxb-...``)."""

    platform: Platform = "slack"
    default_base_url = DEFAULT_SLACK_API_BASE_URL

    def _url(self, method: str) -> str:
        return f"{self._base}/{method}"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json; charset=utf-8"}

    def _retry_after(self, response: httpx.Response, data: Any) -> int | None:
        return _seconds(response.headers.get("Retry-After"))

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """One Web API method; its JSON answer when ``ok`` is true, else :class:`PlatformError`."""
        data = await self._post(method, body)
        if data.get("ok") is not True:
            error = data.get("error")
            raise self._fail(method, error if isinstance(error, str) and error else "unknown_error")
        return data

    async def post_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """``chat.postMessage``; the answer has the message's ``channel`` and ``ts`` (to update it)."""
        return await self.call("chat.postMessage", body)

    async def update(self, body: dict[str, Any]) -> dict[str, Any]:
        """``chat.update`` (``channel``, ``ts``, new ``text``/``blocks``)."""
        return await self.call("chat.update", body)


class TelegramBotApi(_JsonApi):
    """The Bot API methods the Telegram door uses, with the bot's token."""

    platform: Platform = "telegram"
    default_base_url = DEFAULT_TELEGRAM_API_BASE_URL

    @staticmethod
    def _token_ok(token: str) -> bool:
        return bool(token) and "/" not in token  # it is part of the URL path

    def _url(self, method: str) -> str:
        return f"{self._base}/bot{self._token}/{method}"

    def _retry_after(self, response: httpx.Response, data: Any) -> int | None:
        parameters = data.get("parameters") if isinstance(data, dict) else None
        from_body = _seconds(parameters.get("retry_after")) if isinstance(parameters, dict) else None
        return from_body if from_body is not None else _seconds(response.headers.get("Retry-After"))

    async def call(self, method: str, body: dict[str, Any]) -> Any:
        """One Bot API method; its ``result`` when ``ok`` is true, else :class:`PlatformError`."""
        data = await self._post(method, body)
        if data.get("ok") is not True:
            code = _seconds(data.get("error_code"))
            description = data.get("description")
            raw_parameters = data.get("parameters")
            parameters = raw_parameters if isinstance(raw_parameters, dict) else {}
            raise self._fail(
                method,
                str(code) if code is not None else "unknown_error",
                status=code,
                retry_after=_seconds(parameters.get("retry_after")),
                description=description[:_MAX_DESCRIPTION_CHARS] if isinstance(description, str) else None,
            )
        return data.get("result")

    async def send_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """``sendMessage``; the sent Message (its ``message_id`` is needed to edit the keyboard)."""
        result = await self.call("sendMessage", body)
        if not isinstance(result, dict):
            raise self._fail("sendMessage", "bad_response")
        return result

    async def send_photo(self, body: dict[str, Any]) -> dict[str, Any]:
        result = await self.call("sendPhoto", body)
        if not isinstance(result, dict):
            raise self._fail("sendPhoto", "bad_response")
        return result

    async def edit_reply_markup(self, body: dict[str, Any]) -> Any:
        return await self.call("editMessageReplyMarkup", body)

    async def answer_callback_query(self, body: dict[str, Any]) -> Any:
        return await self.call("answerCallbackQuery", body)

    async def set_webhook(
        self, url: str, secret: str, allowed_updates: Sequence[str] = ("message", "callback_query")
    ) -> Any:
        """Register the webhook with its secret (1-256 of ``A-Z a-z 0-9 _ -``, Telegram's rule)."""
        if not (0 < len(secret) <= 256 and all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)):
            raise ValueError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if not url.startswith("https://"):
            raise ValueError("Telegram sends webhooks to https:// URLs only")
        body = {"url": url, "secret_token": secret, "allowed_updates": list(allowed_updates)}
        return await self.call("setWebhook", body)
