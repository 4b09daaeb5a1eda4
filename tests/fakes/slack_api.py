"""A fake Slack Web API: ``POST /api/chat.postMessage`` and ``POST /api/chat.update``, over real HTTP.

Like Slack it wants ``Authorization: Bearer xoxb-...`` (``not_authed`` / ``invalid_auth``), a JSON
body, a channel, and text or blocks; it answers HTTP 200 with ``{"ok": false, "error": ...}`` for
every platform error. It enforces Block Kit's limits (from Slack's reference): at most 50 blocks,
at most 25 elements per ``actions`` block, button text (``plain_text``) 1-75 characters, ``value``
at most 2,000, ``action_id`` unique in its block and at most 255, ``block_id`` unique in the message
and at most 255, section text at most 3,000, image blocks with an ``image_url`` and ``alt_text``.
A violation is ``{"ok": false, "error": "invalid_blocks", "errors": [...]}``.

Tests can make the next N requests answer 429 with ``Retry-After`` (``rate_limit``), answer slowly
(``delay``), or answer a given error (``fail_with``). Every request is recorded (``requests``),
the accepted messages too (``posted``, ``updates``, and ``messages`` by ``(channel, ts)``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SLACK_TOKEN = "xoxb-fake-slack-token-0001"
KNOWN_BLOCKS = {"section", "actions", "image", "context", "divider", "header"}


def _check_text_object(obj: Any, where: str, *, limit: int, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must be a text object [json-pointer:{where}]"]
    if plain_only and obj["type"] != "plain_text":
        return [f"must be plain_text [json-pointer:{where}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(text) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}/text]"]
    return []


def _check_button(element: Any, where: str, action_ids: set[str]) -> list[str]:
    errors: list[str] = []
    if not isinstance(element, dict) or element.get("type") != "button":
        return [f"unsupported element type [json-pointer:{where}]"]
    errors += _check_text_object(element.get("text"), f"{where}/text", limit=75, plain_only=True)
    value = element.get("value")
    if value is not None and (not isinstance(value, str) or len(value) > 2000):
        errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or not 0 < len(action_id) <= 255:
            errors.append(f"must be less than 256 characters [json-pointer:{where}/action_id]")
        elif action_id in action_ids:
            errors.append(f"duplicate action_id [json-pointer:{where}/action_id]")
        else:
            action_ids.add(action_id)
    return errors


def block_errors(blocks: Any) -> list[str]:
    """What Slack would say is wrong with ``blocks`` (an empty list: nothing)."""
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > 50:
        errors.append("must be less than 51 items [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCKS:
            errors.append(f"unsupported type [json-pointer:{where}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 0 < len(block_id) <= 255:
                errors.append(f"must be less than 256 characters [json-pointer:{where}/block_id]")
            elif block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            block_ids.add(str(block_id))
        kind = block["type"]
        if kind == "section":
            errors += _check_text_object(block.get("text"), f"{where}/text", limit=3000)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                errors.append(f"must provide at least 1 item [json-pointer:{where}/elements]")
                continue
            if len(elements) > 25:
                errors.append(f"must be less than 26 items [json-pointer:{where}/elements]")
            action_ids: set[str] = set()
            for j, element in enumerate(elements):
                errors += _check_button(element, f"{where}/elements/{j}", action_ids)
        elif kind == "image":
            url, alt = block.get("image_url"), block.get("alt_text")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 3000:
                errors.append(f"invalid url [json-pointer:{where}/image_url]")
            if not isinstance(alt, str) or not 0 < len(alt) <= 2000:
                errors.append(f"must be 1-2000 characters [json-pointer:{where}/alt_text]")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 0 < len(elements) <= 10:
                errors.append(f"must provide 1-10 items [json-pointer:{where}/elements]")
            else:
                for j, element in enumerate(elements):
                    errors += _check_text_object(element, f"{where}/elements/{j}", limit=3000)
    return errors


@dataclass
class FakeSlack:
    token: str = SLACK_TOKEN
    rate_limited: int = 0
    retry_after: int = 1
    delay: float = 0.0
    fail_with: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        self.rate_limited, self.retry_after, self.delay, self.fail_with = 0, 1, 0.0, None
        self.requests.clear()
        self.posted.clear()
        self.updates.clear()
        self.messages.clear()

    def rate_limit(self, times: int, retry_after: int = 1) -> None:
        """The next ``times`` requests answer 429 with ``Retry-After: retry_after``."""
        self.rate_limited, self.retry_after = times, retry_after

    def _error(self, error: str, **extra: Any) -> JSONResponse:
        return JSONResponse({"ok": False, "error": error, **extra})

    def _check(self, request: Request, body: Any, *, update: bool) -> JSONResponse | None:
        authorization = request.headers.get("authorization")
        if not authorization:
            return self._error("not_authed")
        if authorization != f"Bearer {self.token}":
            return self._error("invalid_auth")
        if not isinstance(body, dict):
            return self._error("invalid_json")
        if self.fail_with:
            return self._error(self.fail_with)
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel:
            return self._error("channel_not_found")
        if update and (channel, body.get("ts")) not in self.messages:
            return self._error("message_not_found")
        text, blocks = body.get("text"), body.get("blocks")
        if not (isinstance(text, str) and text) and not blocks:
            return self._error("no_text")
        if isinstance(text, str) and len(text) > 40_000:
            return self._error("msg_too_long")
        if blocks is not None:
            errors = block_errors(blocks)
            if errors:
                return self._error("invalid_blocks", errors=errors)
        return None

    def app(self) -> Starlette:
        async def method(request: Request) -> Response:
            name = request.path_params["method"]
            raw = await request.body()
            try:
                body: Any = json.loads(raw) if "application/json" in request.headers.get("content-type", "") else None
            except ValueError:
                body = None
            record: dict[str, Any] = {"method": name, "headers": dict(request.headers), "body": body}
            self.requests.append(record)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.rate_limited > 0:
                self.rate_limited -= 1
                record["status"] = 429
                return JSONResponse(
                    {"ok": False, "error": "ratelimited"}, 429, headers={"Retry-After": str(self.retry_after)}
                )
            record["status"] = 200
            if name not in ("chat.postMessage", "chat.update"):
                return self._error("unknown_method")
            problem = self._check(request, body, update=name == "chat.update")
            if problem is not None:
                return problem
            if name == "chat.update":
                key = (body["channel"], body["ts"])
                self.messages[key] = body
                self.updates.append(body)
                return JSONResponse({"ok": True, "channel": key[0], "ts": key[1], "text": body.get("text", "")})
            n = next(self._ts)
            ts = f"{1_700_000_000 + n}.{n:06d}"
            self.messages[(body["channel"], ts)] = body
            self.posted.append({**body, "ts": ts})
            return JSONResponse({"ok": True, "channel": body["channel"], "ts": ts, "message": {**body, "ts": ts}})

        return Starlette(routes=[Route("/api/{method}", method, methods=["POST"])])
