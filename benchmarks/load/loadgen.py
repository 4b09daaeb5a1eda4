"""The load generator: N concurrent virtual sessions, each its own conversation, over one httpx
AsyncClient with a connection per session.

Each session sends its scripted conversation one turn after the other: the next turn leaves when
the previous answer arrived, at once (no think time) or after a think time drawn around a mean
(``think``). In the adversarial mode (issue 15) a session sends bursts of 2-3 turns at once instead,
each to a random Rasa replica. A turn fails when it gets no HTTP answer within the timeout, a status
other than 200, a body that is not the expected JSON, or no bot message where the script expects
one. Every turn keeps its correlation id and the texts of its replies, for the ordering check
(benchmarks/load/ordering.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import httpx

from benchmarks.load.stats import Turn

TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Button:
    """A script step that clicks a button of the previous reply: the first whose title contains
    ``title`` (any case) sends its payload; without one, ``fallback`` is typed instead."""

    title: str
    fallback: str

    def __str__(self) -> str:
        return f"[button {self.title}]"


Step = str | Button

# Utterances the stock starter bot's data knows: greet, mood_unhappy (utter_cheer_up +
# utter_did_that_help), affirm (utter_happy), bot_challenge (rule), goodbye (rule).
STOCK_SCRIPT: list[Step] = ["hi", "I am sad", "yes", "are you a bot?", "bye"]
# A realistic mix tandem's model handles deterministically (tests/e2e/test_conversations.py): a
# greeting, a flight status (form + action server + business database), an FAQ answer (action
# server, knowledge base), thanks and goodbye; a sixth turn and beyond go on with capabilities.
TANDEM_SCRIPT: list[Step] = [
    "hi",
    "Is AN204 on time today?",
    "how much baggage can I take?",
    "thanks",
    "bye",
    "what can you do?",
]
# Production runs through the gateway (issue 15): a booking form filled one slot per turn with the
# cabin chosen by its button (DOMAIN.md, sample conversation 2; the flight offered is not taken, so
# no seats are held), a booking lookup (sample 3), an FAQ, a message nobody understands, goodbye.
BOOKING_SCRIPT: list[Step] = [
    "I want to fly to Chiang Mai",
    "Bangkok",
    "next friday",
    "just me",
    Button("business", fallback="business"),
    "What's the status of booking AB12CD?",
    "Smith",
    "how much luggage can I bring?",
    "asdf qwerty",
    "thanks, bye",
]


@dataclass(frozen=True)
class Answer:
    """One turn's HTTP answer: its status, the bot's messages (a list, or None for a body that is
    not the expected JSON) and the turn's correlation id when known."""

    status: int
    messages: Any
    correlation_id: str | None = None


class Target(Protocol):
    """How one bot is talked to."""

    name: str
    script: list[Step]

    async def open_session(self, client: httpx.AsyncClient, number: int) -> Any: ...

    async def send(self, client: httpx.AsyncClient, session: Any, text: str) -> Answer:
        """One turn (``text`` starting with "/" is a button's payload); raises httpx errors."""
        ...

    def sender(self, session: Any) -> str | None:
        """Rasa's sender id of a session (its conversation in the tracker store), if known."""
        ...


def _messages(response: httpx.Response) -> Any:
    return response.json() if response.status_code == 200 else None


def _channel_body(sender: str, client_key: str, text: str, correlation_id: str) -> dict[str, Any]:
    return {
        "sender": sender,
        "message": text,
        "metadata": {"channel": "website", "client": client_key, "correlation_id": correlation_id},
    }


@dataclass
class RestTarget:
    """Rasa's REST channel (the stock bot): ``POST /webhooks/rest/webhook``."""

    url: str
    name: str = "stock"
    script: list[Step] = field(default_factory=lambda: list(STOCK_SCRIPT))

    async def open_session(self, client: httpx.AsyncClient, number: int) -> str:
        return f"load-{uuid.uuid4().hex[:16]}"

    async def send(self, client: httpx.AsyncClient, session: str, text: str) -> Answer:
        response = await client.post(f"{self.url}/webhooks/rest/webhook", json={"sender": session, "message": text})
        return Answer(response.status_code, _messages(response))

    def sender(self, session: str) -> str | None:
        return session


@dataclass
class GatewayChannelTarget:
    """Tandem's Rasa server through its one input channel, as the gateway calls it."""

    url: str
    token: str
    name: str = "tandem"
    script: list[Step] = field(default_factory=lambda: list(TANDEM_SCRIPT))
    prefix: str = "load"

    async def open_session(self, client: httpx.AsyncClient, number: int) -> tuple[str, str]:
        return f"{self.prefix}-{uuid.uuid4().hex[:16]}", uuid.uuid4().hex  # sender, client key (32 hex)

    async def send(self, client: httpx.AsyncClient, session: tuple[str, str], text: str) -> Answer:
        sender, client_key = session
        correlation_id = uuid.uuid4().hex
        response = await client.post(
            f"{self.url}/webhooks/gateway/webhook",
            json=_channel_body(sender, client_key, text, correlation_id),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return Answer(response.status_code, _messages(response), correlation_id)

    def sender(self, session: tuple[str, str]) -> str | None:
        return session[0]


@dataclass
class RandomReplicaTarget:
    """The adversarial mode (issue 15): the gateway bypassed, each turn posted to the gateway channel
    of a random Rasa replica, so one conversation's turns meet on several replicas at once.

    The turns of one burst (:meth:`start_burst`) go to a random permutation of the replicas (a
    burst of 2 on 2 replicas: one each), so every burst contends across processes, where only the
    shared lock store can keep the turns apart; a turn outside a burst goes to any replica."""

    urls: list[str]
    token: str
    name: str = "tandem-adversarial"
    script: list[Step] = field(default_factory=lambda: list(BOOKING_SCRIPT))
    prefix: str = "adv"
    rng: random.Random = field(default_factory=random.Random)

    async def open_session(self, client: httpx.AsyncClient, number: int) -> AdversarialSession:
        return AdversarialSession(f"{self.prefix}-{uuid.uuid4().hex[:16]}", uuid.uuid4().hex)

    def start_burst(self, session: AdversarialSession, size: int) -> None:
        """The replicas of the next ``size`` turns: a random permutation, repeated as needed."""
        order = self.rng.sample(self.urls, len(self.urls))
        session.replicas = [order[k % len(order)] for k in range(size)]

    async def send(self, client: httpx.AsyncClient, session: AdversarialSession, text: str) -> Answer:
        # Taken before the first await: the turns of a burst start in order and take theirs in order.
        url = session.replicas.pop(0) if session.replicas else self.rng.choice(self.urls)
        correlation_id = uuid.uuid4().hex
        response = await client.post(
            f"{url}/webhooks/gateway/webhook",
            json=_channel_body(session.sender, session.client_key, text, correlation_id),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return Answer(response.status_code, _messages(response), correlation_id)

    def sender(self, session: AdversarialSession) -> str | None:
        return session.sender


@dataclass
class AdversarialSession:
    """A conversation of the adversarial mode: its sender id, client key, and the replicas the
    turns of its current burst go to."""

    sender: str
    client_key: str
    replicas: list[str] = field(default_factory=list)


@dataclass
class WebsiteGatewayTarget:
    """The website gateway's API (what website customers use): a bearer session, then messages.

    With the gateway's ``secret``, :meth:`sender` derives Rasa's sender id of a session as the
    gateway does (:func:`gateway_conversation_id`)."""

    url: str
    name: str = "tandem-gateway"
    script: list[Step] = field(default_factory=lambda: list(TANDEM_SCRIPT))
    secret: str | None = None

    async def open_session(self, client: httpx.AsyncClient, number: int) -> str:
        response = await client.post(f"{self.url}/api/v1/session", json={"mode": "bearer"})
        response.raise_for_status()
        return str(response.json()["token"])

    async def send(self, client: httpx.AsyncClient, session: str, text: str) -> Answer:
        body = {"payload": text} if text.startswith("/") else {"text": text}
        response = await client.post(
            f"{self.url}/api/v1/messages", json=body, headers={"Authorization": f"Bearer {session}"}
        )
        # The turn id is the correlation id; the gateway sends it as a header on errors too.
        correlation_id = response.headers.get("x-correlation-id")
        reply = _messages(response)
        messages = reply.get("messages") if isinstance(reply, dict) else None
        return Answer(response.status_code, messages, correlation_id)

    def sender(self, session: str) -> str | None:
        if self.secret is None:
            return None
        # A token is v1.<session id>.<issued at>.<signature>.
        return gateway_conversation_id(self.secret, session.split(".")[1])


def gateway_conversation_id(secret: str, session_id: str) -> str:
    """Rasa's sender id of a gateway session: ``SessionCodec.conversation_id`` of
    tandem/gateway/sessions.py, restated so that the load generator does not import the gateway's
    app (its package loads FastAPI, SQLAlchemy, ...; the load generator's RSS and CPU are measured).
    tests/unit/test_load_ordering.py checks that the two agree."""
    digest = hmac.new(secret.encode("utf-8"), b"conversation:" + session_id.encode("ascii"), hashlib.sha256)
    return f"web-{digest.hexdigest()[:32]}"


def make_client(
    connections: int, timeout: float = TIMEOUT_SECONDS, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=connections + 10, max_keepalive_connections=connections + 10),
        transport=transport,
    )


def resolve_step(step: Step, previous: Any) -> str:
    """What a step sends: its text, or the payload of the button it clicks in ``previous`` (the
    bot's messages of the turn before)."""
    if isinstance(step, str):
        return step
    messages = previous if isinstance(previous, list) else []
    buttons = [b for m in messages if isinstance(m, dict) for b in m.get("buttons") or [] if isinstance(b, dict)]
    for button in buttons:
        title, payload = button.get("title"), button.get("payload")
        if isinstance(title, str) and isinstance(payload, str) and step.title.lower() in title.lower():
            return payload
    return step.fallback


def reply_texts(messages: Any) -> tuple[str, ...]:
    """The texts of the bot's messages (those without text, e.g. only buttons, are left out)."""
    if not isinstance(messages, list):
        return ()
    return tuple(m["text"] for m in messages if isinstance(m, dict) and isinstance(m.get("text"), str) and m["text"])


async def send_turn(
    target: Target,
    client: httpx.AsyncClient,
    session: Any,
    number: int,
    index: int,
    text: str,
    burst: int | None = None,
) -> tuple[Turn, Any]:
    """One timed turn and the bot's messages (None when the turn failed)."""
    started = time.perf_counter()
    status: int | None = None
    replies = 0
    error: str | None = None
    messages: Any = None
    correlation_id: str | None = None
    try:
        answer = await target.send(client, session, text)
        status, messages, correlation_id = answer.status, answer.messages, answer.correlation_id
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
    turn = Turn(
        number,
        index,
        text,
        (time.perf_counter() - started) * 1000,
        status,
        replies,
        error,
        correlation_id=correlation_id,
        reply_texts=reply_texts(messages) if error is None else (),
        burst=index if burst is None else burst,
    )
    return turn, messages


async def timed_turn(target: Target, client: httpx.AsyncClient, session: Any, number: int, index: int) -> Turn:
    """Turn ``index`` of the target's script (a button step is typed: there is no previous reply)."""
    text = resolve_step(target.script[index % len(target.script)], None)
    turn, _ = await send_turn(target, client, session, number, index, text)
    return turn


def think_seconds(rng: random.Random, mean: float, distribution: str = "exponential") -> float:
    """A think time of mean ``mean``: exponential (arrivals of a Poisson process) or uniform on
    [0, 2 × mean]; 0 for a mean of 0."""
    if mean <= 0:
        return 0.0
    if distribution == "uniform":
        return rng.uniform(0.0, 2 * mean)
    if distribution == "exponential":
        return rng.expovariate(1 / mean)
    raise ValueError(f"think distribution is exponential or uniform, not {distribution!r}")


class Progress:
    """A progress line on stderr while a level runs: turns done, errors, elapsed. Rewritten in
    place on a terminal; otherwise one line every ``every`` seconds (logs stay readable)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None, every: float = 10.0) -> None:
        self.label, self.total = label, total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = 1.0 if self.tty else every
        self.done = self.errors = self.in_flight = 0
        self.started = time.perf_counter()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        return (
            f"  … {self.label}: {self.done}/{self.total} turns, {self.errors} errors, "
            f"{self.in_flight} in flight, {elapsed:.0f} s"
        )

    def add(self, turn: Turn) -> None:
        self.done += 1
        self.errors += turn.error is not None

    def _write(self, end: str) -> None:
        self.stream.write(("\r" + self.line() + "\033[K" if self.tty else self.line()) + end)
        self.stream.flush()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self._write("" if self.tty else "\n")

    def finish(self) -> None:
        if self.tty:
            self._write("\n")


@dataclass
class LevelRun:
    """What a level did: every attempted turn, its wall time, and each session's sender id."""

    turns: list[Turn]
    wall_seconds: float
    senders: list[str | None]


async def run_level(
    target: Target,
    *,
    sessions: int,
    turns: int,
    duration: float | None,
    timeout: float = TIMEOUT_SECONDS,
    think: float = 0.0,
    think_distribution: str = "exponential",
    bursts: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LevelRun:
    """``sessions`` concurrent conversations of ``turns`` turns; the turns and the level's wall time.

    Sessions (gateway tokens, sender ids) are opened before the clock starts. With ``think``, each
    session waits a think time (:func:`think_seconds`) before each of its turns, the first included
    (so the sessions do not all start at once). With ``bursts`` (e.g. ``(2, 3)``), a session sends
    that many consecutive turns of its script at once, a burst after the previous one answered.
    With ``duration``, no session starts a new turn once that many seconds have passed (turns in
    flight finish)."""
    width = max(bursts) if bursts else 1
    meter = Progress(f"{target.name} {sessions} sessions", sessions * turns) if progress else None
    async with make_client(sessions * width, timeout, transport) as client:
        opening = asyncio.Semaphore(50)  # sessions are opened before the clock, 50 at a time

        async def open_one(number: int) -> Any:
            async with opening:
                return await target.open_session(client, number)

        handles = await asyncio.gather(*(open_one(n) for n in range(sessions)))
        started = time.perf_counter()
        deadline = started + duration if duration else None
        if meter is not None:
            meter.started = started
        ticker = asyncio.create_task(meter.run()) if meter is not None else None

        async def one(number: int, index: int, text: str, burst: int) -> tuple[Turn, Any]:
            if meter is not None:
                meter.in_flight += 1
            try:
                turn, messages = await send_turn(target, client, handles[number], number, index, text, burst)
            finally:
                if meter is not None:
                    meter.in_flight -= 1
            if meter is not None:
                meter.add(turn)
            return turn, messages

        async def conversation(number: int) -> list[Turn]:
            rng = random.Random(f"{seed}-{number}")
            done: list[Turn] = []
            previous: Any = None
            index = burst = 0
            while index < turns:
                pause = think_seconds(rng, think, think_distribution)
                if deadline is not None:
                    pause = min(pause, max(0.0, deadline - time.perf_counter()))
                if pause:
                    await asyncio.sleep(pause)
                if deadline is not None and time.perf_counter() >= deadline:
                    break
                size = min(rng.randint(min(bursts), max(bursts)) if bursts else 1, turns - index)
                steps = [target.script[(index + k) % len(target.script)] for k in range(size)]
                texts = [resolve_step(step, previous) for step in steps]
                start_burst = getattr(target, "start_burst", None)
                if bursts and start_burst is not None:
                    start_burst(handles[number], size)  # e.g. which replica each turn of it goes to
                answered = await asyncio.gather(*(one(number, index + k, t, burst) for k, t in enumerate(texts)))
                done.extend(turn for turn, _ in answered)
                previous = answered[-1][1]
                index += size
                burst += 1
            return done

        try:
            results = await asyncio.gather(*(conversation(n) for n in range(sessions)))
        finally:
            if ticker is not None:
                ticker.cancel()
            if meter is not None:
                meter.finish()
        wall = time.perf_counter() - started
    return LevelRun([t for r in results for t in r], wall, [target.sender(h) for h in handles])
