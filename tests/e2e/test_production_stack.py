"""`make run` in production mode, as the README says to start it: PostgreSQL (business data and
Rasa's tracker store), Redis (locks, limits), two Rasa replicas and two action servers behind the
gateway. Conversations are served through the gateway; one replica is killed in the middle of
forms; every conversation carries on from where it was (the tracker lives in PostgreSQL, the
atomic lock store serialises the turns); the supervisor starts the replica again; afterwards
every conversation's history holds each message once, in order."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tandem.gateway.replicas import RasaReplicas
from tandem.gateway.sessions import SessionCodec
from tests.integration.conftest import REDIS_URL, fresh_database_url
from tests.security.listening import is_loopback, listening_of
from tests.stack import MODEL, ROOT, free_port

pytestmark = pytest.mark.e2e

REPLICAS = 2
SESSIONS = 8
# A form, one slot per turn (sample conversation 2): each turn depends on the ones before.
FORM = [
    ("I want to fly to Chiang Mai", "from"),
    ("Bangkok", "date"),
    ("next friday", "How many passengers"),
    ("just me", "Which cabin"),
]


def _free_ports(count: int) -> int:
    """A base port with ``count`` consecutive free ports (replica i listens on base + i)."""
    for _ in range(50):
        base = free_port()
        if base + count > 65535:
            continue
        try:
            for offset in range(count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not MODEL.exists():
        pytest.fail(f"no trained model at {MODEL}: run `make train` (make test does it)")
    work = tmp_path_factory.mktemp("production")
    with fresh_database_url("tandem_production") as database_url:
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("LLM_MODEL", "LLM_BASE_URL")},
            # The switch: PostgreSQL and Redis. Everything else follows from it (scripts/env.sh).
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": f"t{uuid.uuid4().hex[:8]}:",
            "RASA_REPLICAS": str(REPLICAS),
            "ACTION_REPLICAS": "2",
            "RASA_PORT": str(_free_ports(REPLICAS)),
            "ACTION_PORT": str(_free_ports(2)),
            "ACTION_METRICS_PORT": str(_free_ports(2)),
            "GATEWAY_PORT": str(free_port()),
            # Known to the test, so it can tell which replica serves a session (rendezvous hashing).
            "GATEWAY_SECRET": f"production-test-{uuid.uuid4().hex}",
            "RASA_HEALTH_INTERVAL_SECONDS": "1",
            "EXPIRE_HOLDS_EVERY_SECONDS": "30",
            # One test client opens every session and retries failed turns.
            "GATEWAY_RATE_LIMIT_NEW_SESSION": "100/minute",
            "GATEWAY_RATE_LIMIT_SESSION": "600/minute",
        }
        for name in ("TANDEM_MODE", "TRACKER_DB_URL", "TRACKER_DB_DIALECT", "LOCK_STORE_TYPE", "LOCK_STORE_HOST"):
            env.pop(name, None)  # derived by scripts/env.sh from the two URLs
        env.pop("ACTION_SERVER_URL", None)
        log = work / "make-run.log"
        process = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for(lambda: "Andaman Air assistant is running." in log.read_text(), process, log, 900)
            yield {"process": process, "env": env, "log": log, "database_url": database_url}
        finally:
            _stop(process)


def _wait_for(condition: Any, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"make run exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _texts(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return " ".join(m.get("text") or "" for m in response.json()["messages"])


def test_production_mode_serves_conversations_through_a_replica_kill(production: dict[str, Any]) -> None:
    env, process, log = production["env"], production["process"], production["log"]
    output = log.read_text()
    assert "mode: production" in output and "lock store: tandem_rasa.lock_store.AtomicRedisLockStore" in output
    assert "Rasa tracker store: postgresql" in output
    # Every server listens on loopback only: 2 Rasa replicas, 2 action servers, the gateway.
    rasa_ports = [int(env["RASA_PORT"]) + i for i in range(REPLICAS)]
    sockets = listening_of(process.pid)
    assert set(rasa_ports) | {int(env["ACTION_PORT"]), int(env["ACTION_PORT"]) + 1} <= {p for _, _, p in sockets}
    assert not [s for s in sockets if not is_loopback(s[1])]

    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    with httpx.Client(base_url=gateway, timeout=90) as client:
        sessions = []
        for _ in range(SESSIONS):
            token = client.post("/api/v1/session", json={"mode": "bearer"}).json()["token"]
            sessions.append({"Authorization": f"Bearer {token}"})
        # The first half of the form on whichever replica each conversation is routed to.
        for message, expected in FORM[:2]:
            for headers in sessions:
                assert expected in _texts(client.post("/api/v1/messages", json={"text": message}, headers=headers))

        # Kill replica 0 (SIGKILL: no goodbye); its conversations move, the others stay.
        victim = next(pid for pid, _, port in listening_of(process.pid) if port == rasa_ports[0])
        os.kill(victim, signal.SIGKILL)
        for message, expected in FORM[2:3]:
            for headers in sessions:
                reply = client.post("/api/v1/messages", json={"text": message}, headers=headers)
                # A turn sent to the dead replica before the gateway noticed is retried elsewhere when
                # it was never delivered; nothing else may fail.
                assert expected in _texts(reply), reply.text

        # The supervisor starts the replica again; the gateway sees it healthy and routes to it.
        _wait_for(lambda: "rasa:0" in log.read_text() and "starting it again" in log.read_text(), process, log, 60)

        def replica_back() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{rasa_ports[0]}/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(replica_back, process, log, 600)
        time.sleep(3)  # a few health-check periods (RASA_HEALTH_INTERVAL_SECONDS=1)
        for message, expected in FORM[3:]:
            for headers in sessions:
                assert expected in _texts(client.post("/api/v1/messages", json={"text": message}, headers=headers))

    # Every conversation's history, from Rasa's tracker in PostgreSQL: each message once, in order.
    url = production["database_url"]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT sender_id, data::json->>'text' FROM events WHERE type_name = 'user' ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    histories: dict[str, list[str]] = {}
    for sender, message in rows:
        histories.setdefault(sender, []).append(message)
    assert len(histories) == SESSIONS, histories
    for history in histories.values():
        assert history == [message for message, _ in FORM], history


def test_a_replica_whose_action_server_is_gone_uses_the_other_one(production: dict[str, Any]) -> None:
    """Action server 0 dies (SIGKILL): replica 0's calls, refused there, go to action server 1
    (ACTION_SERVER_FALLBACK_URLS, set by make run), so no turn fails meanwhile."""
    env, process, log = production["env"], production["process"], production["log"]
    port = int(env["ACTION_PORT"])
    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    with httpx.Client(base_url=gateway, timeout=90) as client:
        replica_of = _router(env)
        sessions, on_replica_0 = [], 0
        while on_replica_0 < 2:  # two on replica 0, maybe some on 1
            token = client.post("/api/v1/session", json={"mode": "bearer"}).json()["token"]
            sessions.append({"Authorization": f"Bearer {token}"})
            on_replica_0 += replica_of(token) == 0
        (victim,) = [pid for pid, _, p in listening_of(process.pid) if p == port]
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: _refused(port), process, log, 10)
        for message, expected in FORM[:2]:
            for headers in sessions:
                assert expected in _texts(client.post("/api/v1/messages", json={"text": message}, headers=headers))
    assert "ran on another action server" in (ROOT / "var/log" / "rasa-0.log").read_text()
    _wait_for(lambda: not _refused(port), process, log, 120)  # the supervisor started it again


def _router(env: dict[str, str]) -> Callable[[str], int]:
    """The replica the gateway routes a session token to while both are up (the gateway's own rule)."""
    codec = SessionCodec(env["GATEWAY_SECRET"].encode("utf-8"), ttl_seconds=3600)
    urls = [f"http://127.0.0.1:{int(env['RASA_PORT']) + i}" for i in range(REPLICAS)]
    replicas = RasaReplicas(urls, log=logging.getLogger(__name__))

    def replica_of(token: str) -> int:
        session = codec.verify(token)
        assert session is not None
        return replicas.pick(session.conversation_id)

    return replica_of


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_turn_without_its_action_server_fails_clearly_and_is_answered_when_sent_again(
    production: dict[str, Any],
) -> None:
    """Both action servers die (SIGKILL); the supervisor starts them again. A turn meanwhile is a
    retryable 503 ``turn_failed`` (Rasa alone would answer 200 with nothing and save the failed
    turn); nothing of it is saved; sent again once the servers are back, it is answered, and each
    conversation's history holds each message once."""
    env, process, log = production["env"], production["process"], production["log"]
    action_ports = [int(env["ACTION_PORT"]) + i for i in range(2)]
    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"

    with httpx.Client(base_url=gateway, timeout=90) as client:
        sessions = []
        for _ in range(3):
            token = client.post("/api/v1/session", json={"mode": "bearer"}).json()["token"]
            sessions.append({"Authorization": f"Bearer {token}"})
        message, expected = FORM[0]
        # Both running (the test before may have left one starting again).
        _wait_for(lambda: not any(_refused(port) for port in action_ports), process, log, 120)
        victims = [pid for pid, _, port in listening_of(process.pid) if port in action_ports]
        assert len(victims) == 2
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: all(_refused(port) for port in action_ports), process, log, 10)
        replies = [client.post("/api/v1/messages", json={"text": message}, headers=h) for h in sessions]
        for reply in replies:
            if reply.status_code != 200:
                assert reply.status_code == 503, reply.text
                error = reply.json()["error"]
                assert error["code"] == "turn_failed" and reply.headers["Retry-After"] == str(error["retry_after"])
        # The first turn surely found no action server (the supervisor waits a second before starting one).
        assert replies[0].status_code == 503, [r.status_code for r in replies]
        # Sent again until answered (what the widget's retry does, after Retry-After): each once.
        deadline = time.monotonic() + 240
        for headers, reply in zip(sessions, replies, strict=True):
            while reply.status_code != 200:
                assert reply.status_code == 503, f"{reply.text}\n{log.read_text()[-4000:]}"
                assert time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(int(reply.headers["Retry-After"]))
                reply = client.post("/api/v1/messages", json={"text": message}, headers=headers)
            assert expected in _texts(reply)
            follow = client.post("/api/v1/messages", json={"text": FORM[1][0]}, headers=headers)
            assert FORM[1][1] in _texts(follow)

        for headers in sessions:
            history = client.get("/api/v1/history", headers=headers).json()["messages"]
            users = [m["text"] for m in history if m["role"] == "user"]
            assert users == [FORM[0][0], FORM[1][0]], users
            bots = " ".join(m["text"] or "" for m in history if m["role"] == "bot")
            assert expected in bots and FORM[1][1] in bots
    assert "actions:0" in log.read_text() and "starting it again" in log.read_text()
