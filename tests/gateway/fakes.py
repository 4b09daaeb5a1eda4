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
from starlette.middleware import Middleware
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


def default_trigger(intent: str, entities: dict[str, Any]) -> list[dict[str, Any]]:
    """What the real bot says on the gateway's external intents (domain.yml, actions/handoff_back.py)."""
    ended = {"custom": {"handoff": {"state": "ended"}}}
    if intent == "handoff_returned":
        name = entities.get("agent_name", "Our agent")
        return [
            {"text": f"{name} marked this as solved. Is there anything else I can help you with?"},
            ended,
            {"text": "Before you go: how would you rate this conversation?", "buttons": RATING_BUTTONS},
        ]
    if intent == "handoff_expired":
        return [{"text": "I'm sorry, none of our agents is free right now.", **ended}]
    if intent == "handoff_cancelled":
        return [{"text": "Okay, I've withdrawn the request for an agent. I'm back: how can I help?", **ended}]
    if intent == "refund_decided":
        return [{"text": f"Refund {entities.get('refund_decision')} for {entities.get('booking_ref')}."}]
    return []


def _pauses(replies: list[dict[str, Any]]) -> bool:
    """Whether the bot's replies hand the conversation over (action_handoff pauses it)."""
    for reply in replies:
        custom = reply.get("custom")
        handoff = custom.get("handoff") if isinstance(custom, dict) else None
        if isinstance(handoff, dict) and handoff.get("state") == "pending":
            return True
    return False


@dataclass
class FakeRasa:
    """State of the fake servers; ``mode`` is ok | slow | error | garbage | unavailable."""

    mode: str = "ok"
    delay: float = 2.0
    script: Callable[[str], list[dict[str, Any]]] = default_script
    requests: list[dict[str, Any]] = field(default_factory=list)
    tracker_requests: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # Like Rasa's ConversationPaused: a paused conversation's messages are logged, never answered.
    paused: set[str] = field(default_factory=set)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    trigger_script: Callable[[str, dict[str, Any]], list[dict[str, Any]]] = default_trigger
    # Called with the sender for "human" (as action_handoff opens a ticket): the ticket id announced.
    on_handoff: Callable[[str], int] | None = None
    # Every HTTP request received, on any route: method, path and headers (lower-case names).
    calls: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.mode = "ok"
        self.delay = 2.0
        self.script = default_script
        self.trigger_script = default_trigger
        self.on_handoff = None
        self.requests.clear()
        self.tracker_requests.clear()
        self.events.clear()
        self.paused.clear()
        self.triggers.clear()
        self.resumed.clear()
        self.calls.clear()

    def log_bot(self, sender: str, replies: list[dict[str, Any]], now: float) -> None:
        """The bot's replies as tracker ``bot`` events (what the history reads)."""
        for reply in replies:
            data = {k: v for k, v in reply.items() if k not in ("text", "recipient_id")}
            self.events.setdefault(sender, []).append(
                {"event": "bot", "text": reply.get("text"), "data": data, "timestamp": now}
            )

    def messages_to(self, sender: str) -> list[str]:
        """The customer messages Rasa received for ``sender`` (what a handoff must keep away)."""
        return [r["body"]["message"] for r in self.requests if r["body"].get("sender") == sender]

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
            if self.mode == "turn_failed":  # tandem_rasa/channel.py: the turn failed, nothing saved
                return JSONResponse({"error": "turn_failed"}, 500)
            if self.mode == "garbage":
                return PlainTextResponse("<html>definitely not JSON</html>", 200)
            sender, message = body["sender"], body["message"]
            now = time.time()
            log = self.events.setdefault(sender, [])
            log.append({"event": "user", "text": message, "timestamp": now, "metadata": body.get("metadata")})
            if sender in self.paused:
                return JSONResponse([])
            if message.lower() == "human" and self.on_handoff is not None:
                ticket_id = self.on_handoff(sender)
                script: list[dict[str, Any]] = [
                    {"text": f"I've passed your conversation to our support team (ticket #{ticket_id})."},
                    {"custom": {"handoff": {"state": "pending", "ticket_id": ticket_id}}},
                ]
            else:
                script = self.script(message)
            replies = [{"recipient_id": sender, **r} for r in script]
            if _pauses(replies):
                self.paused.add(sender)
            self.log_bot(sender, replies, now)
            return JSONResponse(replies)

        async def tracker(request: Request) -> Response:
            self.tracker_requests.append({"sender": request.path_params["sender"], "query": dict(request.query_params)})
            if request.query_params.get("token") != TOKEN:
                return JSONResponse({"message": "unauthorized"}, 401)
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            sender = request.path_params["sender"]
            return JSONResponse({"sender_id": sender, "events": self.events.get(sender, [])})

        async def tracker_events(request: Request) -> Response:
            if request.query_params.get("token") != TOKEN:
                return JSONResponse({"message": "unauthorized"}, 401)
            if self.mode == "unavailable":
                return PlainTextResponse("bad gateway", 502)
            if self.mode == "turn_failed":  # tandem_rasa/channel.py: the turn failed, nothing saved
                return JSONResponse({"error": "turn_failed"}, 500)
            sender = request.path_params["sender"]
            body = await request.json()
            for event in body if isinstance(body, list) else [body]:
                if event.get("event") == "resume":
                    self.paused.discard(sender)
                    self.resumed.append(sender)
            return JSONResponse({"sender_id": sender, "events": self.events.get(sender, [])})

        async def trigger_intent(request: Request) -> Response:
            if request.query_params.get("token") != TOKEN:
                return JSONResponse({"message": "unauthorized"}, 401)
            if self.mode == "unavailable":
                return PlainTextResponse("bad gateway", 502)
            if self.mode == "turn_failed":  # tandem_rasa/channel.py: the turn failed, nothing saved
                return JSONResponse({"error": "turn_failed"}, 500)
            sender = request.path_params["sender"]
            body = await request.json()
            self.triggers.append({"sender": sender, "name": body.get("name"), "entities": body.get("entities")})
            if sender in self.paused:  # Rasa predicts nothing in a paused conversation
                return JSONResponse({"tracker": {}, "messages": []})
            replies = [
                {"recipient_id": sender, **r} for r in self.trigger_script(body["name"], body.get("entities") or {})
            ]
            self.log_bot(sender, replies, time.time())
            return JSONResponse({"tracker": {}, "messages": replies})

        async def status(request: Request) -> Response:
            if request.query_params.get("token") != TOKEN:
                return JSONResponse({"message": "unauthorized"}, 401)
            return JSONResponse({"model_file": "models/tandem.tar.gz", "model_id": "x"})

        async def root(request: Request) -> Response:
            return PlainTextResponse("Hello from Rasa: 3.6.21")

        async def health(request: Request) -> Response:
            return JSONResponse({"status": "ok"})

        return Starlette(
            middleware=[Middleware(_RecordCalls, calls=self.calls)],
            routes=[
                Route("/webhooks/gateway/webhook", webhook, methods=["POST"]),
                Route("/conversations/{sender}/tracker", tracker),
                Route("/conversations/{sender}/tracker/events", tracker_events, methods=["POST"]),
                Route("/conversations/{sender}/trigger_intent", trigger_intent, methods=["POST"]),
                Route("/status", status),
                Route("/", root),
                Route("/health", health),
            ],
        )


class _RecordCalls:
    """ASGI middleware: appends each HTTP request's method, path and headers to ``calls``."""

    def __init__(self, app: Any, calls: list[dict[str, Any]]) -> None:
        self.app = app
        self.calls = calls

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.calls.append({"method": scope["method"], "path": scope["path"], "headers": headers})
        await self.app(scope, receive, send)


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
