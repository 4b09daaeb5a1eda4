"""The real stack for end-to-end and browser tests: a migrated and seeded SQLite database, the
action server and the Rasa server started as real processes from the trained model (``make train``
builds it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pika
import pytest

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "tandem.tar.gz"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
ARTIFACTS = ROOT / "tests" / "artifacts"
AMQP_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up in {seconds} s:\n{log.read_text()[-4000:]}")


def start_action_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """``python -m actions.server`` on 127.0.0.1:``port`` with ``env``, its output in ``log``;
    :func:`wait_until_up` on ``/health`` tells when it serves, :func:`stop` ends it."""
    return subprocess.Popen(
        [sys.executable, "-m", "actions.server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass
class Stack:
    rasa_url: str
    action_url: str
    token: str
    env: dict[str, str]
    database_url: str

    def say(self, sender: str, message: Any, *, metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Send one message over the gateway's channel, as the gateway does; the bot's replies."""
        response = httpx.post(
            f"{self.rasa_url}/webhooks/gateway/webhook",
            json={"sender": sender, "message": message, "metadata": metadata or {"channel": "rest"}},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return list(response.json())

    def tracker(self, sender: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.rasa_url}/conversations/{sender}/tracker", params={"token": self.token}, timeout=30
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def slots(self, sender: str) -> dict[str, Any]:
        return dict(self.tracker(sender)["slots"])


def texts(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text", "") for r in replies)


def buttons(replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for r in replies for b in r.get("buttons", [])]


def new_sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


def start_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start the stack (a generator: the `stack` fixture of tests/conftest.py shares one per run)."""
    if not MODEL.exists():
        pytest.fail(f"no trained model at {MODEL}: run `make train` (make test does it)")
    work = tmp_path_factory.mktemp("stack")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    action_port, rasa_port = free_port(), free_port()
    token = uuid.uuid4().hex
    action_token = uuid.uuid4().hex
    database_url = f"sqlite:///{work / 'tandem.db'}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ACTION_SERVER_URL": f"http://127.0.0.1:{action_port}/webhook",
        "TRACKER_DB_DIALECT": "sqlite",
        "TRACKER_DB_URL": f"sqlite:///{work / 'tracker.db'}",
        "LOCK_STORE_TYPE": "in_memory",
        "LOCK_STORE_HOST": "127.0.0.1",
        "LOCK_STORE_PORT": "6379",
        "LOCK_STORE_DB": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0",  # as make run serves (scripts/run.sh)
        "RASA_TELEMETRY_ENABLED": "false",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONPATH": str(ROOT),
        "RASA_API_TOKEN": token,
        "ACTION_SERVER_TOKEN": action_token,
        # Rasa streams every event to RabbitMQ (a queue of this run's own; tests/e2e/test_analytics.py
        # consumes it). RabbitMQ is a real dependency of the e2e tests, like PostgreSQL and Redis.
        "EVENT_BROKER_URL": AMQP_URL,
        "EVENT_BROKER_QUEUE": f"tandem-e2e-{uuid.uuid4().hex[:10]}",
    }
    for name in ("REDIS_URL", "ACTION_METRICS_PORT", "LLM_MODEL", "LLM_BASE_URL"):
        env.pop(name, None)  # the embedded default: no Redis, no metrics port, no LLM
    for command in (["migrate"], ["seed", "--demo"]):
        subprocess.run([sys.executable, "-m", "tandem.cli", *command], cwd=ROOT, env=env, check=True)
    action_log = ARTIFACTS / "actions.log"
    rasa_log = ARTIFACTS / "rasa.log"
    actions = start_action_server(env, action_port, action_log)
    rasa = None
    try:
        wait_until_up(f"http://127.0.0.1:{action_port}/health", actions, action_log, 60)
        rasa = subprocess.Popen(
            [
                str(RASA),
                "run",
                "--model",
                str(MODEL),
                "--endpoints",
                "endpoints.yml",
                "--credentials",
                "credentials.yml",
                "--enable-api",
                "--auth-token",
                token,
                "--interface",
                "127.0.0.1",
                "--port",
                str(rasa_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=rasa_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until_up(f"http://127.0.0.1:{rasa_port}/", rasa, rasa_log, 240)
        yield Stack(f"http://127.0.0.1:{rasa_port}", f"http://127.0.0.1:{action_port}", token, env, database_url)
    finally:
        if rasa is not None:
            stop(rasa)
        stop(actions)
        delete_queue(env["EVENT_BROKER_QUEUE"])


def delete_queue(name: str) -> None:
    """Remove a test run's RabbitMQ queue (and what is left in it)."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        connection.channel().queue_delete(name)
    finally:
        connection.close()


def sample_day() -> date:
    """The travel date of sample conversation 1 ("... on 25 January ..."), kept inside the seeded
    schedule whenever the tests run: 25 January while that is close enough, else 60 days ahead."""
    today = datetime.now(ZoneInfo("Asia/Bangkok")).date()
    january = date(today.year + (today.month > 1 or today.day > 25), 1, 25)
    return january if 1 <= (january - today).days <= 150 else today + timedelta(days=60)


def sample_1_text() -> str:
    day = sample_day()
    return f"Book a flight from Bangkok to Phuket on {day.day} {day:%B} for 2 people"
