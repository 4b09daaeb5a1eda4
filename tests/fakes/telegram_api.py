"""A fake Telegram Bot API: ``POST /bot<token>/<method>`` over real HTTP.

Methods: ``sendMessage``, ``sendPhoto``, ``editMessageReplyMarkup``, ``answerCallbackQuery``,
``setWebhook``. Like Telegram it answers ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error_code": 400, "description": "Bad Request: ..."}`` (401 for a wrong token, 404 for an unknown
method), and enforces the Bot API's rules: ``parse_mode: HTML`` text must parse (only Telegram's
tags, only ``&lt; &gt; &amp; &quot;`` and numeric entities, no bare ``<``/``&``), the text is 1-4,096
characters *after entity parsing* (counted in UTF-16 code units, as Telegram counts), every
inline button has text and ``callback_data`` of 1-64 bytes, at most 100 buttons, a keyboard edit
must change something, ``answerCallbackQuery`` text is at most 200 characters, and the webhook
secret is 1-256 characters of ``A-Za-z0-9_-``.

Tests can make the next N requests answer 429 (``parameters.retry_after``, as Telegram does),
answer slowly (``delay``), and read what was received (``requests``) and accepted (``sent``,
``edits``, ``answers``, ``webhook``, ``keyboards`` by ``(chat_id, message_id)``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

TELEGRAM_TOKEN = "123456789:fake-telegram-token"
ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


class EntityError(ValueError):
    pass


class _TelegramHtml(HTMLParser):
    """Telegram's HTML mode, strictly: the visible text, or :class:`EntityError`."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityError(f'Unsupported start tag "{tag}"')
        values = dict(attrs)
        if tag == "a" and not values.get("href"):
            raise EntityError("Can't find href in the a tag")
        if tag == "span" and values.get("class") != "tg-spoiler":
            raise EntityError("Tag span must have class tg-spoiler")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise EntityError(f'Unmatched end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data or "&" in data:
            raise EntityError("Unsupported character: escape <, > and & as entities")
        self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in NAMED_ENTITIES:
            raise EntityError(f'Unsupported HTML entity "&{name};"')
        self.parts.append(NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        self.parts.append(chr(int(name[1:], 16) if name.lower().startswith("x") else int(name)))


def visible_text(text: str, parse_mode: str | None) -> str:
    """The message text after entity parsing (raises :class:`EntityError` like Telegram would)."""
    if parse_mode is None:
        return text
    if parse_mode != "HTML":
        raise EntityError(f"unsupported parse_mode {parse_mode!r} in this fake")
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    if parser.stack:
        raise EntityError(f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"')
    return "".join(parser.parts)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def keyboard_error(markup: Any) -> str | None:
    """What Telegram would say about an inline keyboard, or None when it is fine."""
    if markup is None:
        return None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return "can't parse inline keyboard button: InlineKeyboardMarkup must be an Array of Arrays"
    buttons = [button for row in rows for button in row]
    if len(buttons) > 100:
        return "reply markup is too long"
    for button in buttons:
        if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
            return "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
        data = button.get("callback_data")
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
            return "BUTTON_DATA_INVALID"
    return None


def _normal(markup: Any) -> Any:
    """No keyboard and an empty keyboard are the same thing to Telegram."""
    return markup if isinstance(markup, dict) and markup.get("inline_keyboard") else None


@dataclass
class FakeTelegram:
    token: str = TELEGRAM_TOKEN
    rate_limited: int = 0
    retry_after: int = 1
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    webhook: dict[str, Any] | None = None
    keyboards: dict[tuple[int, int], Any] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        self.rate_limited, self.retry_after, self.delay, self.webhook = 0, 1, 0.0, None
        for log in (self.requests, self.sent, self.edits, self.answers):
            log.clear()
        self.keyboards.clear()

    def rate_limit(self, times: int, retry_after: int = 1) -> None:
        """The next ``times`` requests answer 429 with ``parameters.retry_after``."""
        self.rate_limited, self.retry_after = times, retry_after

    @staticmethod
    def _bad(description: str, code: int = 400) -> JSONResponse:
        prefix = {400: "Bad Request: ", 403: "Forbidden: "}.get(code, "")
        return JSONResponse({"ok": False, "error_code": code, "description": prefix + description}, code)

    @staticmethod
    def _ok(result: Any, **extra: Any) -> JSONResponse:
        return JSONResponse({"ok": True, "result": result, **extra})

    def _message(self, body: dict[str, Any], **content: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        chat_id = body["chat_id"]
        self.keyboards[(chat_id, message_id)] = body.get("reply_markup")
        self.sent.append({**body, "message_id": message_id})
        return {"message_id": message_id, "date": 1_700_000_000, "chat": {"id": chat_id, "type": "private"}, **content}

    def _send_message(self, body: dict[str, Any]) -> JSONResponse:
        if not isinstance(body.get("chat_id"), int | str) or body.get("chat_id") in ("", None):
            return self._bad("chat_id is empty")
        text = body.get("text")
        if not isinstance(text, str):
            return self._bad("message text is empty")
        try:
            visible = visible_text(text, body.get("parse_mode"))
        except EntityError as error:
            return self._bad(f"can't parse entities: {error}")
        if not visible.strip():
            return self._bad("message text is empty")
        if utf16_length(visible) > 4096:
            return self._bad("message is too long")
        problem = keyboard_error(body.get("reply_markup"))
        if problem:
            return self._bad(problem)
        return self._ok(self._message(body, text=visible))

    def _send_photo(self, body: dict[str, Any]) -> JSONResponse:
        photo = body.get("photo")
        if body.get("chat_id") in ("", None):
            return self._bad("chat_id is empty")
        if not isinstance(photo, str) or not photo.startswith(("http://", "https://")):
            return self._bad("wrong remote file identifier specified: Wrong padding in the string")
        return self._ok(self._message(body, photo=[{"file_id": "fake", "width": 1, "height": 1}]))

    def _edit_markup(self, body: dict[str, Any]) -> JSONResponse:
        key = (body.get("chat_id"), body.get("message_id"))
        if key not in self.keyboards:
            return self._bad("message to edit not found")
        markup = body.get("reply_markup")
        problem = keyboard_error(markup)
        if problem:
            return self._bad(problem)
        if _normal(markup) == _normal(self.keyboards[key]):
            return self._bad(
                "message is not modified: specified new message content and reply markup are exactly the same "
                "as a current content and reply markup of the message"
            )
        self.keyboards[key] = markup
        self.edits.append(body)
        return self._ok({"message_id": key[1], "chat": {"id": key[0], "type": "private"}})

    def _answer(self, body: dict[str, Any]) -> JSONResponse:
        if not isinstance(body.get("callback_query_id"), str) or not body["callback_query_id"]:
            return self._bad("query is too old and response timeout expired or query ID is invalid")
        text = body.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > 200):
            return self._bad("MESSAGE_TOO_LONG")
        self.answers.append(body)
        return self._ok(True)

    def _set_webhook(self, body: dict[str, Any]) -> JSONResponse:
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith("https://"):
            return self._bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = body.get("secret_token")
        if secret is not None and (not isinstance(secret, str) or not SECRET.fullmatch(secret)):
            return self._bad("secret token contains unallowed characters")
        allowed = body.get("allowed_updates")
        if allowed is not None and (not isinstance(allowed, list) or not all(isinstance(u, str) for u in allowed)):
            return self._bad("can't parse allowed updates")
        self.webhook = body
        return self._ok(True, description="Webhook was set")

    def app(self) -> Starlette:
        handlers = {
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageReplyMarkup": self._edit_markup,
            "answerCallbackQuery": self._answer,
            "setWebhook": self._set_webhook,
        }

        async def method(request: Request) -> Response:
            token, name = request.path_params["token"], request.path_params["method"]
            try:
                body: Any = json.loads(await request.body())
            except ValueError:
                body = None
            record: dict[str, Any] = {"method": name, "body": body, "token_ok": token == self.token}
            self.requests.append(record)
            if self.delay:
                await asyncio.sleep(self.delay)
            if token != self.token:
                record["status"] = 401
                return self._bad("Unauthorized", 401)
            if self.rate_limited > 0:
                self.rate_limited -= 1
                record["status"] = 429
                return JSONResponse(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {self.retry_after}",
                        "parameters": {"retry_after": self.retry_after},
                    },
                    429,
                )
            handler = handlers.get(name)
            if handler is None:
                record["status"] = 404
                return self._bad("Not Found", 404)
            if not isinstance(body, dict):
                record["status"] = 400
                return self._bad("request body must be a JSON object")
            response = handler(body)
            record["status"] = response.status_code
            return response

        return Starlette(routes=[Route("/bot{token}/{method}", method, methods=["POST"])])
