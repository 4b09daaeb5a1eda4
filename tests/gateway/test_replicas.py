"""Conversation-affine routing over several Rasa replicas (issue 15): rendezvous hashing, passive
and active health, the one retry of a call that never reached its replica, readiness and metrics.

The unit tests drive :class:`RasaReplicas` alone; the others run the gateway against two real fake
Rasa servers over HTTP, stop one, start it again on its port, and read what each one received.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tandem.gateway.errors import UpstreamError
from tandem.gateway.logs import LOGGER_NAME
from tandem.gateway.metrics import GatewayMetrics
from tandem.gateway.replicas import SLOW_PROBES_BEFORE_DOWN, RasaReplicas, ReplicasDown, rendezvous_score
from tandem.gateway.upstream import RasaClient
from tandem.settings import load_gateway_settings

from .conftest import BASE, say, start_session
from .fakes import TOKEN, FakeRasa, ServerThread

URLS = ["http://rasa-0:5005", "http://rasa-1:5005", "http://rasa-2:5005"]
IDS = [f"web-{i:032x}" for i in range(1000)]
LOG = logging.getLogger(LOGGER_NAME)


def _replicas(urls: list[str], metrics: GatewayMetrics | None = None) -> RasaReplicas:
    return RasaReplicas(urls, log=LOG, up_gauge=metrics.rasa_replica_up if metrics else None)


def _gauge(metrics: GatewayMetrics, index: int) -> float | None:
    return metrics.registry.get_sample_value("tandem_gateway_rasa_replica_up", {"replica": str(index)})


# --- RasaReplicas alone ----------------------------------------------------------------------------


def test_pick_is_deterministic_across_instances_processes_and_list_order() -> None:
    # blake2b (8 bytes, big-endian) of "url NUL conversation id": pinned, so a salted hash() (or any
    # other change that would move every conversation at a deploy) fails here.
    assert rendezvous_score("http://rasa-0:5005", "web-0123456789abcdef0123456789abcdef") == 3895002893691678726
    first, second = _replicas(URLS), _replicas(URLS)
    picks = [first.pick(i) for i in IDS]
    assert picks == [second.pick(i) for i in IDS] == [first.pick(i) for i in IDS]
    assert picks[:12] == [2, 1, 0, 1, 1, 1, 0, 1, 1, 0, 2, 1]
    # The score is the URL's, not the position's: reordering RASA_URL moves no conversation.
    reordered = _replicas(list(reversed(URLS)))
    assert [URLS[p] for p in picks] == [reordered.url(reordered.pick(i)) for i in IDS]


@pytest.mark.parametrize(("count", "least"), [(2, 0.40), (3, 0.20)])
def test_pick_spreads_conversations_over_the_replicas(count: int, least: float) -> None:
    replicas = _replicas(URLS[:count])
    shares = Counter(replicas.pick(i) for i in IDS)
    assert set(shares) == set(range(count))
    assert min(shares.values()) >= least * len(IDS), shares


def test_only_a_dead_replicas_conversations_move_and_they_come_back() -> None:
    replicas = _replicas(URLS)
    before = {i: replicas.pick(i) for i in IDS}
    replicas.mark_down(1, "unreachable", cause="request")
    during = {i: replicas.pick(i) for i in IDS}
    moved = [i for i in IDS if before[i] == 1]
    assert 200 <= len(moved) <= 450
    assert all(during[i] == before[i] for i in IDS if before[i] != 1)  # nobody else moves
    # The dead replica's conversations spread over both others (each goes to its second best).
    spread = Counter(during[i] for i in moved)
    assert set(spread) == {0, 2} and min(spread.values()) >= 0.3 * len(moved), spread
    replicas.mark_up(1)
    assert {i: replicas.pick(i) for i in IDS} == before


def test_with_no_healthy_replica_pick_chooses_among_all() -> None:
    replicas = _replicas(URLS)
    before = [replicas.pick(i) for i in IDS[:100]]
    for index in range(3):
        replicas.mark_down(index, "unreachable", cause="probe")
    assert [replicas.pick(i) for i in IDS[:100]] == before


def test_state_changes_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    metrics = GatewayMetrics()
    replicas = _replicas(URLS[:2], metrics)
    assert (_gauge(metrics, 0), _gauge(metrics, 1)) == (1.0, 1.0)  # up until told otherwise
    replicas.mark_down(1, "unreachable", cause="request")
    replicas.mark_down(1, "timeout", cause="probe")  # already down: no second line
    assert (_gauge(metrics, 0), _gauge(metrics, 1)) == (1.0, 0.0)
    assert replicas.states() == [{"index": 0, "up": True}, {"index": 1, "up": False, "reason": "timeout"}]
    replicas.mark_up(1)
    replicas.mark_up(1)
    assert _gauge(metrics, 1) == 1.0
    events = [(r.event, r.replica) for r in caplog.records if getattr(r, "event", "").startswith("rasa_replica")]  # type: ignore[attr-defined]
    assert events == [("rasa_replica_down", 1), ("rasa_replica_up", 1)]
    assert all("rasa-1" not in str(r.__dict__) for r in caplog.records)  # the index, never the URL


async def test_probe_all_records_each_replicas_result() -> None:
    replicas = _replicas(URLS)
    outcome: dict[int, str] = {0: "ok", 1: "down", 2: "hang"}

    async def probe(index: int) -> None:
        if outcome[index] == "down":
            raise UpstreamError("unavailable", 503, "not_ready", "unreachable")
        if outcome[index] == "hang":
            await asyncio.sleep(10)

    started = time.monotonic()
    states = await replicas.probe_all(probe, timeout=0.2)
    assert time.monotonic() - started < 2
    # A refusal takes a replica down at once; a slow answer only the third time in a row (a busy
    # replica under load is not a dead one: its conversations must not flap).
    assert states == [
        {"index": 0, "up": True},
        {"index": 1, "up": False, "reason": "unreachable"},
        {"index": 2, "up": True},
    ]
    for _ in range(SLOW_PROBES_BEFORE_DOWN - 2):
        assert (await replicas.probe_all(probe, timeout=0.2))[2] == {"index": 2, "up": True}
    assert (await replicas.probe_all(probe, timeout=0.2))[2] == {"index": 2, "up": False, "reason": "timeout"}
    outcome.update({0: "down", 1: "ok", 2: "ok"})  # 1 and 2 come back when a probe succeeds
    assert [s["up"] for s in await replicas.probe_all(probe, timeout=0.2)] == [False, True, True]
    outcome.update({1: "down", 2: "down"})
    with pytest.raises(ReplicasDown) as caught:
        await replicas.probe_all(probe, timeout=0.2)
    assert caught.value.message == "unreachable" and [s["up"] for s in caught.value.replicas] == [False] * 3


async def test_slow_probes_count_only_in_a_row() -> None:
    replicas = _replicas(URLS)
    slow = {"now": True}

    async def probe(index: int) -> None:
        if index == 0 and slow["now"]:
            raise UpstreamError("timeout", 503, "not_ready", "timeout")

    for _ in range(3):  # slow, slow, fast: the count starts again
        for _ in range(SLOW_PROBES_BEFORE_DOWN - 1):
            slow["now"] = True
            await replicas.probe_all(probe, timeout=1)
            assert replicas.is_up(0)
        slow["now"] = False
        await replicas.probe_all(probe, timeout=1)
    slow["now"] = True
    for _ in range(SLOW_PROBES_BEFORE_DOWN):
        await replicas.probe_all(probe, timeout=1)
    assert not replicas.is_up(0) and replicas.is_up(1)


# --- RASA_URL and RASA_HEALTH_INTERVAL_SECONDS -----------------------------------------------------


def test_rasa_url_takes_one_url_or_a_list() -> None:
    one = load_gateway_settings(_env_file=None, RASA_URL="http://127.0.0.1:5005/").gateway
    assert one.rasa_url_list == ["http://127.0.0.1:5005"]
    assert one.rasa_health_interval_seconds == 5.0
    several = load_gateway_settings(
        _env_file=None, RASA_URL=" http://rasa-0:5005 , https://rasa-1.internal/rasa/", RASA_HEALTH_INTERVAL_SECONDS=2
    ).gateway
    assert several.rasa_url_list == ["http://rasa-0:5005", "https://rasa-1.internal/rasa"]
    assert several.rasa_health_interval_seconds == 2.0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "RASA_URL is empty"),
        ("http://rasa-0:5005,,http://rasa-1:5005", "RASA_URL item 2 of 3 is empty"),
        ("http://rasa-0:5005,", "RASA_URL item 2 of 2 is empty"),
        ("rasa-0:5005", "must be an http:// or https:// URL"),
        ("ftp://rasa-0", "must be an http:// or https:// URL"),
        ("http://", "must be an http:// or https:// URL"),
        ("http://rasa-0:port", "RASA_URL is not a valid URL"),
        ("http://rasa-0:5005/?token=x", "without a query"),
        ("http://rasa-0:5005,http://RASA-0:5005/", "RASA_URL item 2 of 2 repeats an earlier replica"),
        ("http://rasa-0,http://rasa-0:80", "repeats an earlier replica"),
    ],
)
def test_bad_rasa_urls_are_refused_clearly(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        load_gateway_settings(_env_file=None, RASA_URL=value)


@pytest.mark.parametrize("interval", [0, -1])
def test_the_health_interval_is_positive(interval: float) -> None:
    with pytest.raises(ValidationError, match="RASA_HEALTH_INTERVAL_SECONDS"):
        load_gateway_settings(_env_file=None, RASA_HEALTH_INTERVAL_SECONDS=interval)


# --- Two real fake Rasa servers --------------------------------------------------------------------


@dataclass
class Replica:
    """A fake Rasa replica that can be stopped and started again on the same port."""

    fake: FakeRasa = field(default_factory=FakeRasa)
    server: ServerThread | None = None
    port: int = 0

    def start(self) -> Replica:
        self.server = ServerThread(self.fake.app(), port=self.port or None).start()
        self.port = self.server.port
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def turns(self, conversation: str) -> list[str]:
        return self.fake.messages_to(conversation)

    def conversation_calls(self) -> list[dict[str, Any]]:
        """The calls of conversations (turns, trackers, events, triggers): not the health probes."""
        return [c for c in self.fake.calls if c["path"].startswith(("/webhooks/", "/conversations/"))]


@pytest.fixture
def pair() -> Iterator[list[Replica]]:
    replicas = [Replica().start(), Replica().start()]
    yield replicas
    for replica in replicas:
        replica.stop()


@dataclass
class Visitor:
    client: httpx.AsyncClient
    conversation: str


@pytest.fixture
async def visitors_of() -> AsyncIterator[Callable[..., Any]]:
    """Visitors (a cookie jar each) of one app, until each replica owns ``per_replica`` of them."""
    clients: list[httpx.AsyncClient] = []

    async def make(app: FastAPI, per_replica: int = 3) -> dict[int, list[Visitor]]:
        state = app.state.gateway
        owned: dict[int, list[Visitor]] = {i: [] for i in range(len(state.rasa.replicas))}
        for _ in range(60):
            if min(len(v) for v in owned.values()) >= per_replica:
                break
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
            clients.append(client)
            session = state.codec.verify(await start_session(client))
            owned[state.rasa.replicas.pick(session.conversation_id)].append(Visitor(client, session.conversation_id))
        assert min(len(v) for v in owned.values()) >= per_replica, "rendezvous hashing gave one replica nothing"
        return owned

    yield make
    for client in clients:
        await client.aclose()


def _app(client_for: Any, settings_for: Any, pair: list[Replica], **overrides: Any) -> FastAPI:
    settings = settings_for(RASA_URL=",".join(r.url for r in pair), **overrides)
    app: FastAPI = client_for(settings).app
    return app


async def _metrics(app: FastAPI) -> str:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        return (await client.get("/metrics")).text


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


async def test_each_conversation_stays_on_its_replica(
    pair: list[Replica], client_for: Any, settings_for: Any, visitors_of: Any
) -> None:
    app = _app(client_for, settings_for, pair)
    owned = await visitors_of(app)
    for _ in range(3):
        for visitors in owned.values():
            for visitor in visitors:
                assert (await say(visitor.client, text="hello")).status_code == 200
    for visitors in owned.values():
        for visitor in visitors:
            assert (await visitor.client.get("/api/v1/history")).status_code == 200
    for index, visitors in owned.items():
        mine, other = pair[index], pair[1 - index]
        for visitor in visitors:
            assert mine.turns(visitor.conversation) == ["hello"] * 3
            assert other.turns(visitor.conversation) == []
            assert [t["sender"] for t in mine.fake.tracker_requests].count(visitor.conversation) >= 1
            assert visitor.conversation not in [t["sender"] for t in other.fake.tracker_requests]
        # Every call of a conversation carries its id (what nginx's "hash $http_x_conversation_id" reads).
        calls = mine.conversation_calls()
        assert len(calls) == 4 * len(visitors)  # three turns and one history each
        for call in calls:
            conversation = call["headers"]["x-conversation-id"]
            assert conversation in {v.conversation for v in visitors}
            assert call["path"] in ("/webhooks/gateway/webhook", f"/conversations/{conversation}/tracker")
        for request in mine.fake.requests:
            assert request["headers"]["x-conversation-id"] == request["body"]["sender"]


async def test_resume_trigger_and_tracker_go_to_the_conversations_replica(pair: list[Replica]) -> None:
    async with httpx.AsyncClient() as http:
        rasa = RasaClient(
            http,
            replicas=_replicas([r.url for r in pair]),
            api_token=TOKEN,
            turn_timeout=2.0,
            check_timeout=1.0,
        )
        conversations = IDS[:20]
        for conversation in conversations:
            await rasa.send(conversation, "hello", correlation_id="c-1", client_key="k")
            await rasa.tracker(conversation)
            await rasa.resume(conversation)
            await rasa.trigger(conversation, "handoff_cancelled", {})
        for conversation in conversations:
            mine, other = pair[rasa.replicas.pick(conversation)], pair[1 - rasa.replicas.pick(conversation)]
            paths = [c["path"] for c in mine.fake.calls if c["headers"].get("x-conversation-id") == conversation]
            assert paths == [
                "/webhooks/gateway/webhook",
                f"/conversations/{conversation}/tracker",
                f"/conversations/{conversation}/tracker/events",
                f"/conversations/{conversation}/trigger_intent",
            ]
            assert not [c for c in other.fake.calls if conversation in c["path"] or conversation in str(c["headers"])]
        assert {rasa.replicas.pick(c) for c in conversations} == {0, 1}


async def test_a_stopped_replicas_conversations_move_and_the_others_stay(
    pair: list[Replica], client_for: Any, settings_for: Any, visitors_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    app = _app(client_for, settings_for, pair)
    owned = await visitors_of(app)
    for visitors in owned.values():
        for visitor in visitors:
            assert (await say(visitor.client, text="before")).status_code == 200
    pair[0].stop()
    for visitor in owned[0]:
        response = await say(visitor.client, text="after")
        # The call never reached replica 0: it went once more, to replica 1, which answered.
        assert response.status_code == 200, response.text
        assert response.json()["messages"][0]["text"] == "You said 5 characters."
        assert pair[1].turns(visitor.conversation) == ["after"]
    for visitor in owned[1]:
        assert (await say(visitor.client, text="after")).status_code == 200
        assert pair[1].turns(visitor.conversation) == ["before", "after"]
    metrics = await _metrics(app)
    assert 'tandem_gateway_rasa_replica_up{replica="0"} 0.0' in metrics
    assert 'tandem_gateway_rasa_replica_up{replica="1"} 1.0' in metrics
    assert "tandem_gateway_upstream_errors_total{" not in metrics  # the visitors saw no error
    downs = [r for r in caplog.records if getattr(r, "event", None) == "rasa_replica_down"]
    assert [(r.replica, r.cause, r.reason) for r in downs] == [(0, "request", "unreachable")]  # type: ignore[attr-defined]
    # Only the first call found it down; the next ones went straight to replica 1.
    moved = [r for r in caplog.records if getattr(r, "event", None) == "rasa_call_moved"]
    assert [(r.from_replica, r.replica) for r in moved] == [(0, 1)]  # type: ignore[attr-defined]
    # No line holds the token (httpx's request lines, which the root level may let through, are
    # redacted); the gateway's own lines name the replica by index, never by its URL.
    assert all(TOKEN not in str(r.__dict__) for r in caplog.records)
    assert all(str(pair[0].port) not in str(r.__dict__) for r in caplog.records if r.name.startswith(LOGGER_NAME))
    # Readiness: ready while one replica is; each replica's state, no URL.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["rasa"]["replicas"] == [
        {"index": 0, "up": False, "reason": "unreachable"},
        {"index": 1, "up": True},
    ]
    assert str(pair[0].port) not in ready.text and str(pair[1].port) not in ready.text


async def test_with_every_replica_stopped_the_turn_fails_clearly(
    pair: list[Replica], client_for: Any, settings_for: Any, visitors_of: Any
) -> None:
    app = _app(client_for, settings_for, pair)
    owned = await visitors_of(app, per_replica=1)
    for replica in pair:
        replica.stop()
    for visitors in owned.values():
        response = await say(visitors[0].client, text="hello")
        assert response.status_code == 503 and response.json()["error"]["code"] == "upstream_unavailable"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503
    rasa = ready.json()["checks"]["rasa"]
    assert rasa["ok"] is False and rasa["reason"] == "unreachable"
    assert [(r["index"], r["up"]) for r in rasa["replicas"]] == [(0, False), (1, False)]


async def test_the_health_task_takes_a_replica_down_and_brings_it_back(
    pair: list[Replica], client_for: Any, settings_for: Any, visitors_of: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    app = _app(client_for, settings_for, pair, RASA_HEALTH_INTERVAL_SECONDS=0.05)
    replicas: RasaReplicas = app.state.gateway.rasa.replicas
    owned = await visitors_of(app, per_replica=2)
    assert not [c for r in pair for c in r.fake.calls if c["path"] == "/status"]  # nothing before the lifespan
    async with app.router.lifespan_context(app):
        # The task probes every replica with the readiness check (GET /status?token=...).
        await _until(lambda: all(any(c["path"] == "/status" for c in r.fake.calls) for r in pair))
        pair[0].stop()
        await _until(lambda: not replicas.is_up(0))
        assert replicas.is_up(1)
        assert 'tandem_gateway_rasa_replica_up{replica="0"} 0.0' in await _metrics(app)
        for visitor in owned[0]:
            assert (await say(visitor.client, text="while down")).status_code == 200
            assert pair[1].turns(visitor.conversation) == ["while down"]
        pair[0].start()  # the same port
        await _until(lambda: replicas.is_up(0))
        assert 'tandem_gateway_rasa_replica_up{replica="0"} 1.0' in await _metrics(app)
        for visitor in owned[0]:
            assert (await say(visitor.client, text="back")).status_code == 200
            assert pair[0].turns(visitor.conversation) == ["back"]
            assert pair[1].turns(visitor.conversation) == ["while down"]
        for visitor in owned[1]:
            assert (await say(visitor.client, text="steady")).status_code == 200
            assert pair[1].turns(visitor.conversation) == ["steady"] and pair[0].turns(visitor.conversation) == []
    changes = [
        (r.event, r.replica, getattr(r, "cause", None))  # type: ignore[attr-defined]
        for r in caplog.records
        if getattr(r, "event", None) in ("rasa_replica_down", "rasa_replica_up", "rasa_call_moved")
    ]
    # The probe saw it first: no visitor's call had to be sent again.
    assert changes == [("rasa_replica_down", 0, "probe"), ("rasa_replica_up", 0, None)]
    assert all(TOKEN not in str(r.__dict__) for r in caplog.records)
    probes = len([c for c in pair[1].fake.calls if c["path"] == "/status"])
    await asyncio.sleep(0.2)  # the lifespan has ended: so has the task
    assert len([c for c in pair[1].fake.calls if c["path"] == "/status"]) == probes


async def test_a_slow_replica_is_never_asked_again_elsewhere(
    pair: list[Replica], client_for: Any, settings_for: Any, visitors_of: Any
) -> None:
    app = _app(client_for, settings_for, pair)  # RASA_TIMEOUT_SECONDS=1
    owned = await visitors_of(app, per_replica=1)
    visitor = owned[0][0]
    pair[0].fake.mode, pair[0].fake.delay = "slow", 1.5
    response = await say(visitor.client, text="slow")
    # Replica 0 got the turn and may still run it: sending it to replica 1 could run it twice.
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"
    assert pair[0].turns(visitor.conversation) == ["slow"]
    assert pair[1].fake.calls == []
    history = await visitor.client.get("/api/v1/history")
    assert history.status_code == 504
    assert pair[1].fake.calls == []
    replicas: RasaReplicas = app.state.gateway.rasa.replicas
    assert replicas.is_up(0)  # a slow answer is not a dead replica
    assert 'tandem_gateway_rasa_replica_up{replica="0"} 1.0' in await _metrics(app)


async def test_one_url_behaves_as_one_replica(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    assert (await say(client, text="hello")).status_code == 200
    assert fake.requests[-1]["headers"]["x-conversation-id"] == fake.requests[-1]["body"]["sender"]
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["rasa"]["replicas"] == [{"index": 0, "up": True}]
    assert 'tandem_gateway_rasa_replica_up{replica="0"} 1.0' in (await client.get("/metrics")).text


# --- A replica killed while a turn is out ----------------------------------------------------------


class Dropper:
    """A replica that dies under each request: it reads the request and resets the connection
    (what a SIGKILLed Rasa does to a turn in flight). ``alive``: it still answers ``/status``
    (a replica that only dropped one connection, and may still be running the turn)."""

    def __init__(self, *, alive: bool) -> None:
        self.alive = alive
        self.requests: list[str] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> Dropper:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = (await reader.readline()).decode("latin-1")
        self.requests.append(line.strip())
        if self.alive and line.startswith("GET /status"):
            body = b'{"model_file": "models/tandem.tar.gz"}'
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % len(body))
            writer.write(b"Connection: close\r\n\r\n" + body)
            await writer.drain()
            writer.close()
            return
        await reader.read(100)
        writer.transport.abort()  # a reset, no response

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


StartDropper = Callable[..., Awaitable[Dropper]]  # the ``start_dropper`` fixture: ``await start_dropper(alive=...)``


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def start_dropper() -> AsyncIterator[StartDropper]:
    """Start a :class:`Dropper` (``await start_dropper(alive=...)``); each one is stopped after the test."""
    started: list[Dropper] = []

    async def start(*, alive: bool) -> Dropper:
        dropper = await Dropper(alive=alive).start()
        started.append(dropper)
        return dropper

    yield start
    for dropper in started:
        await dropper.stop()


def _through_dropper(
    http: httpx.AsyncClient, pair: list[Replica], dropper: Dropper
) -> tuple[RasaClient, RasaReplicas, str]:
    replicas = _replicas([pair[0].url, dropper.url])
    conversation = next(c for c in IDS if replicas.pick(c) == 1)  # one the dropper serves
    rasa = RasaClient(http, replicas=replicas, api_token=TOKEN, turn_timeout=3.0, check_timeout=1.0)
    return rasa, replicas, conversation


async def test_a_turn_whose_replica_dies_under_it_is_answered_by_another(
    pair: list[Replica], http: httpx.AsyncClient, start_dropper: StartDropper
) -> None:
    dropper = await start_dropper(alive=False)
    rasa, replicas, conversation = _through_dropper(http, pair, dropper)
    replies = await rasa.send(conversation, "hello", correlation_id="turn-1", client_key="k")
    assert [r.get("text") for r in replies] == ["You said 5 characters."]
    # The dead replica got the turn (and its probe); it is down, and the turn ran once, elsewhere.
    assert dropper.requests[0].startswith("POST /webhooks/gateway/webhook")
    assert not replicas.is_up(1) and replicas.pick(conversation) == 0
    assert pair[0].turns(conversation) == ["hello"]
    # The tracker was read first: had the dead replica saved the turn, its answer would be used.
    calls = [c["path"] for c in pair[0].conversation_calls()]
    assert calls == [f"/conversations/{conversation}/tracker", "/webhooks/gateway/webhook"]


async def test_a_turn_the_dead_replica_had_saved_is_not_sent_again(
    pair: list[Replica], http: httpx.AsyncClient, start_dropper: StartDropper
) -> None:
    dropper = await start_dropper(alive=False)
    rasa, _, conversation = _through_dropper(http, pair, dropper)
    # What the dead replica saved before dying: the tracker (shared) holds the turn's answer.
    user = {"event": "user", "text": "hello", "timestamp": time.time(), "metadata": {"correlation_id": "turn-2"}}
    pair[0].fake.events.setdefault(conversation, []).append(user)
    pair[0].fake.log_bot(conversation, [{"text": "Saved before the crash."}], time.time())
    replies = await rasa.send(conversation, "hello", correlation_id="turn-2", client_key="k")
    assert [r.get("text") for r in replies] == ["Saved before the crash."]
    assert pair[0].turns(conversation) == []  # never sent a second time


async def test_a_dropped_turn_on_a_replica_that_still_answers_is_not_sent_elsewhere(
    pair: list[Replica], http: httpx.AsyncClient, start_dropper: StartDropper
) -> None:
    dropper = await start_dropper(alive=True)
    rasa, replicas, conversation = _through_dropper(http, pair, dropper)
    with pytest.raises(UpstreamError) as caught:
        await rasa.send(conversation, "hello", correlation_id="turn-3", client_key="k")
    assert caught.value.code == "upstream_unavailable" and caught.value.delivered
    # It may still be running the turn there: not resent, the replica stays.
    assert replicas.is_up(1) and pair[0].turns(conversation) == []
    assert any(r.startswith("GET /status") for r in dropper.requests)


async def test_httpx_request_lines_to_rasa_never_hold_the_token(
    pair: list[Replica], client_for: Any, settings_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs each request's URL at INFO and Rasa's API takes its token as ``?token=``: with the
    process's level at INFO (the root logger), the gateway's probes and history reads still show
    no token."""
    caplog.set_level(logging.INFO)
    app = _app(client_for, settings_for, pair)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        await start_session(client)
        assert (await client.get("/api/v1/history")).status_code == 200
        await app.state.gateway.rasa.check_rasa()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("token=<redacted>" in line for line in lines), lines
    assert all(TOKEN not in str(r.__dict__) for r in caplog.records)
