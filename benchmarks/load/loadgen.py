"""The load generator: N concurrent virtual sessions, each its own conversation, over one httpx
AsyncClient with a connection per session.

Each session sends its scripted conversation one turn after the other (the next turn leaves when
the previous answer arrived: no think time), so N sessions keep up to N turns in flight. A turn
fails when it gets no HTTP answer within the timeout, a status other than 200, a body that is not
the expected JSON, or no bot message where the script expects one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from benchmarks.load.stats import Turn

TIMEOUT_SECONDS = 60.0

# Utterances the stock starter bot's data knows: greet, mood_unhappy (utter_cheer_up +
# utter_did_that_help), affirm (utter_happy), bot_challenge (rule), goodbye (rule).
STOCK_SCRIPT = ["hi", "I am sad", "yes", "are you a bot?", "bye"]
# A realistic mix tandem's model handles deterministically (tests/e2e/test_conversations.py): a
# greeting, a flight status (form + action server + business database), an FAQ answer (action
# server, knowledge base), thanks and goodbye; a sixth turn and beyond go on with capabilities.
TANDEM_SCRIPT = [
    "hi",
    "Is AN204 on time today?",
    "how much baggage can I take?",
    "thanks",
    "bye",
    "what can you do?",
]


class Target(Protocol):
    """How one bot is talked to."""

    name: str
    script: list[str]

    async def open_session(self, client: httpx.AsyncClient, number: int) -> Any: ...

    async def send(self, client: httpx.AsyncClient, session: Any, text: str) -> tuple[int, Any]:
        """One turn: the HTTP status and the bot's messages (a list), or raise httpx errors."""
        ...


def _messages(response: httpx.Response) -> Any:
    return response.json() if response.status_code == 200 else None


@dataclass
class RestTarget:
    """Rasa's REST channel (the stock bot): ``POST /webhooks/rest/webhook``."""

    url: str
    name: str = "stock"
    script: list[str] = field(default_factory=lambda: list(STOCK_SCRIPT))

    async def open_session(self, client: httpx.AsyncClient, number: int) -> str:
        return f"load-{uuid.uuid4().hex[:16]}"

    async def send(self, client: httpx.AsyncClient, session: str, text: str) -> tuple[int, Any]:
        response = await client.post(f"{self.url}/webhooks/rest/webhook", json={"sender": session, "message": text})
        return response.status_code, _messages(response)


@dataclass
class GatewayChannelTarget:
    """Tandem's Rasa server through its one input channel, as the gateway calls it."""

    url: str
    token: str
    name: str = "tandem"
    script: list[str] = field(default_factory=lambda: list(TANDEM_SCRIPT))

    async def open_session(self, client: httpx.AsyncClient, number: int) -> tuple[str, str]:
        return f"load-{uuid.uuid4().hex[:16]}", uuid.uuid4().hex  # sender, client key (32 hex)

    async def send(self, client: httpx.AsyncClient, session: tuple[str, str], text: str) -> tuple[int, Any]:
        sender, client_key = session
        body = {
            "sender": sender,
            "message": text,
            "metadata": {"channel": "website", "client": client_key, "correlation_id": uuid.uuid4().hex},
        }
        response = await client.post(
            f"{self.url}/webhooks/gateway/webhook", json=body, headers={"Authorization": f"Bearer {self.token}"}
        )
        return response.status_code, _messages(response)


@dataclass
class WebsiteGatewayTarget:
    """The website gateway's API (what website customers use): a bearer session, then messages."""

    url: str
    name: str = "tandem-gateway"
    script: list[str] = field(default_factory=lambda: list(TANDEM_SCRIPT))

    async def open_session(self, client: httpx.AsyncClient, number: int) -> str:
        response = await client.post(f"{self.url}/api/v1/session", json={"mode": "bearer"})
        response.raise_for_status()
        return str(response.json()["token"])

    async def send(self, client: httpx.AsyncClient, session: str, text: str) -> tuple[int, Any]:
        response = await client.post(
            f"{self.url}/api/v1/messages", json={"text": text}, headers={"Authorization": f"Bearer {session}"}
        )
        body = _messages(response)
        return response.status_code, body.get("messages") if isinstance(body, dict) else None


def make_client(connections: int, timeout: float = TIMEOUT_SECONDS) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=connections + 10, max_keepalive_connections=connections + 10),
    )


async def timed_turn(target: Target, client: httpx.AsyncClient, session: Any, number: int, index: int) -> Turn:
    text = target.script[index % len(target.script)]
    started = time.perf_counter()
    status: int | None = None
    replies = 0
    error: str | None = None
    try:
        status, messages = await target.send(client, session, text)
        if status != 200:
            error = f"status_{status}"
        elif not isinstance(messages, list):
            error = "bad_body"
        else:
            replies = len(messages)
            if replies == 0:  # every scripted utterance expects an answer
                error = "empty_reply"
    except httpx.TimeoutException:
        error = "timeout"
    except (httpx.HTTPError, ValueError):
        error = "connection"
    return Turn(number, index, text, (time.perf_counter() - started) * 1000, status, replies, error)


async def run_level(
    target: Target, *, sessions: int, turns: int, duration: float | None, timeout: float = TIMEOUT_SECONDS
) -> tuple[list[Turn], float]:
    """``sessions`` concurrent conversations of ``turns`` turns; the turns and the level's wall time.

    Sessions (gateway tokens, sender ids) are opened before the clock starts. With ``duration``,
    no session starts a new turn once that many seconds have passed (turns in flight finish)."""
    async with make_client(sessions, timeout) as client:
        handles = await asyncio.gather(*(target.open_session(client, n) for n in range(sessions)))
        started = time.perf_counter()
        deadline = started + duration if duration else None

        async def conversation(number: int) -> list[Turn]:
            done = []
            for index in range(turns):
                if deadline is not None and time.perf_counter() >= deadline:
                    break
                done.append(await timed_turn(target, client, handles[number], number, index))
            return done

        results = await asyncio.gather(*(conversation(n) for n in range(sessions)))
        wall = time.perf_counter() - started
    return [t for r in results for t in r], wall
