"""A fake Rasa server (the gateway channel, tracker, status) and action server health, over real HTTP.

Tests switch its ``mode`` to make it slow, fail, or answer garbage; it records what the gateway sent.
The gateway channel (``POST /webhooks/gateway/webhook``, tandem_rasa/channel.py) needs
``Authorization: Bearer <RASA_API_TOKEN>`` like the real one; the REST channel is not served.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

CABIN_BUTTONS = [
    {"title": "Economy", "payload": '/inform{"cabin": "economy"}'},
    {"title": "Business", "payload": '/inform{"cabin": "business"}'},
]
RATING_BUTTONS = [{"title": str(n), "payload": f'/rate{{"rating": {n}}}'} for n in range(1, 6)]
TOKEN = "fake-rasa-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_script(message: str) -> list[dict[str, Any]]:
    """A tiny bot: "book ..." offers cabins, "bye" asks for a rating, payloads are acknowledged."""
    if message.lower().startswith("book"):
        return [{"text": "Which cabin would you like?", "buttons": CABIN_BUTTONS}]
    if message.lower() == "bye":
        return [
            {"text": "Thanks for flying with Andaman Air. Goodbye!"},
            {"text": "Before you go: how would you rate this conversation?", "buttons": RATING_BUTTONS},
        ]
    if message.lower() == "human":
        return [
            {"text": "I've passed your conversation to our support team (ticket #7)."},
            {"custom": {"handoff": {"state": "pending", "ticket_id": 7}}},
        ]
    if message.lower() == "picture":
        return [{"image": "https://images.example/a320.png"}]
    if message.startswith("/"):
        return [{"text": f"Got {message}"}]
    return [{"text": f"You said {len(message)} characters."}]


@dataclass
class FakeRasa:
    """State of the fake servers; ``mode`` is ok | slow | error | garbage | unavailable."""

    mode: str = "ok"
    delay: float = 2.0
    script: Callable[[str], list[dict[str, Any]]] = default_script
    requests: list[dict[str, Any]] = field(default_factory=list)
    tracker_requests: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def reset(self) -> None:
        self.mode = "ok"
        self.delay = 2.0
        self.script = default_script
        self.requests.clear()
        self.tracker_requests.clear()
        self.events.clear()

    def app(self) -> Starlette:
        async def webhook(request: Request) -> Response:
            body = await request.json()
            self.requests.append({"path": request.url.path, "body": body, "headers": dict(request.headers)})
            if request.headers.get("authorization") != f"Bearer {TOKEN}":
                return JSONResponse({"message": "unauthorized"}, 401)
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            if self.mode == "error":
                return JSONResponse({"message": "Traceback (most recent call last): secret internals"}, 500)
            if self.mode == "unavailable":
                return PlainTextResponse("bad gateway", 502)
            if self.mode == "garbage":
                return PlainTextResponse("<html>definitely not JSON</html>", 200)
            sender, message = body["sender"], body["message"]
            replies = [{"recipient_id": sender, **r} for r in self.script(message)]
            now = time.time()
            log = self.events.setdefault(sender, [])
            log.append({"event": "user", "text": message, "timestamp": now, "metadata": body.get("metadata")})
            for reply in replies:
                data = {k: v for k, v in reply.items() if k not in ("text", "recipient_id")}
                log.append({"event": "bot", "text": reply.get("text"), "data": data, "timestamp": now})
            return JSONResponse(replies)

        async def tracker(request: Request) -> Response:
            self.tracker_requests.append({"sender": request.path_params["sender"], "query": dict(request.query_params)})
            if request.query_params.get("token") != TOKEN:
                return JSONResponse({"message": "unauthorized"}, 401)
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            sender = request.path_params["sender"]
            return JSONResponse({"sender_id": sender, "events": self.events.get(sender, [])})

        async def status(request: Request) -> Response:
            if request.query_params.get("token") != TOKEN:
                return JSONResponse({"message": "unauthorized"}, 401)
            return JSONResponse({"model_file": "models/tandem.tar.gz", "model_id": "x"})

        async def root(request: Request) -> Response:
            return PlainTextResponse("Hello from Rasa: 3.6.21")

        async def health(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        return Starlette(
            routes=[
                Route("/webhooks/gateway/webhook", webhook, methods=["POST"]),
                Route("/conversations/{sender}/tracker", tracker),
                Route("/status", status),
                Route("/", root),
                Route("/health", health),
            ]
        )


class ServerThread:
    """Runs an ASGI app with uvicorn in a daemon thread on a free port."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
