"""Start and stop the bots' processes for the load benchmark, on loopback and on free ports.

The stock bot is ``rasa init``'s starter bot (trained once into ``var/bench/stock``, then reused),
served by ``rasa run`` with its own (in-memory) stores and its REST channel. Tandem is started as
``make run`` starts it (scripts/run.sh, tests/stack.py): a fresh SQLite business database migrated
and seeded with the demo data, the action server, the Rasa server with the project's
``endpoints.yml`` / ``credentials.yml`` (SQLite tracker store, in-memory lock store, the gateway
channel only), newly generated tokens, and the website gateway in front of it.

Every process gets its own session (process group), so Ctrl-C reaches this program alone and
:meth:`Services.close` stops each group (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
APP_PYTHON = ROOT / ".venv" / "bin" / "python"
TANDEM_MODEL = ROOT / "models" / "tandem.tar.gz"
WORK = ROOT / "var" / "bench"
STOCK_DIR = WORK / "stock"
LOGS = WORK / "logs"
HOST = "127.0.0.1"

QUIET = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "RASA_TELEMETRY_ENABLED": "false",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    "PYTHONUNBUFFERED": "1",  # log lines reach the files at once (the stage timings read them)
}
# The gateway's per-address, per-session and new-session rate limits protect production from one
# client; here every virtual customer comes from 127.0.0.1 and one session sends ~50 turns a minute.
NO_LIMIT = "1000000/minute"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """One started process (the leader of its own process group) and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        if not self.alive():
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class Services:
    """What this run started; :meth:`close` stops all of it, last started first."""

    started: list[Service] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> Service:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        service = Service(name, process, log)
        self.started.append(service)
        return service

    def close(self) -> None:
        while self.started:
            self.started.pop().stop()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until_up(service: Service, url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{service.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{service.name} did not answer at {url} within {seconds} s:\n{service.tail()}")


def base_env() -> dict[str, str]:
    env = {**os.environ, **QUIET}
    # The embedded default of `make run`: no Redis, no metrics port, no LLM.
    for name in ("REDIS_URL", "ACTION_METRICS_PORT", "LLM_MODEL", "LLM_BASE_URL"):
        env.pop(name, None)
    return env


# --- the stock bot --------------------------------------------------------------------------------


def stock_model() -> Path | None:
    models = sorted((STOCK_DIR / "models").glob("*.tar.gz"))
    return models[-1] if models else None


def prepare_stock(log: Path | None = None) -> Path:
    """``rasa init --no-prompt`` into var/bench/stock (trains the starter bot) unless a model is there."""
    model = stock_model()
    if model is not None:
        return model
    if STOCK_DIR.exists():
        shutil.rmtree(STOCK_DIR)  # a half-made project from an interrupted run
    STOCK_DIR.mkdir(parents=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = log or LOGS / "stock-init.log"
    with log.open("wb") as out:
        done = subprocess.run(
            [str(RASA), "init", "--no-prompt", "--init-dir", str(STOCK_DIR)],
            cwd=ROOT,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    model = stock_model()
    if done.returncode != 0 or model is None:
        raise RuntimeError(f"rasa init failed ({done.returncode}); see {log}")
    return model


@dataclass
class StockBot:
    url: str
    rasa: Service


def start_stock(services: Services, model: Path) -> StockBot:
    port = free_port()
    rasa = services.start(
        "stock-rasa",
        [
            str(RASA),
            "run",
            "--enable-api",
            "-p",
            str(port),
            "--interface",
            HOST,
            "--model",
            str(model),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
        ],
        env=base_env(),
        cwd=STOCK_DIR,
    )
    url = f"http://{HOST}:{port}"
    wait_until_up(rasa, f"{url}/", 240)
    return StockBot(url, rasa)


# --- tandem -----------------------------------------------------------------------------------------


@dataclass
class TandemBot:
    rasa_url: str
    gateway_url: str
    token: str
    actions: Service
    rasa: Service
    gateway: Service


def tandem_model(pipeline: str = "minilm") -> Path:
    """The model of a pipeline as scripts/pipeline.sh names it: models/tandem[-<pipeline>].tar.gz."""
    return TANDEM_MODEL if pipeline == "minilm" else ROOT / "models" / f"tandem-{pipeline}.tar.gz"


def start_tandem(services: Services, model: Path = TANDEM_MODEL) -> TandemBot:
    if not model.exists():
        raise RuntimeError(f"no trained model at {model}: run `make train` (PIPELINE=... for another pipeline)")
    work = WORK / "tandem"
    if work.exists():
        shutil.rmtree(work)  # a fresh business database and tracker store every run
    work.mkdir(parents=True)
    action_port, rasa_port, gateway_port = free_port(), free_port(), free_port()
    token = secrets.token_hex(32)
    env = {
        **base_env(),
        "DATABASE_URL": f"sqlite:///{work / 'tandem.db'}",
        "ACTION_SERVER_URL": f"http://{HOST}:{action_port}/webhook",
        "TRACKER_DB_DIALECT": "sqlite",
        "TRACKER_DB_URL": f"sqlite:///{work / 'rasa_tracker.db'}",
        "LOCK_STORE_TYPE": "in_memory",
        "LOCK_STORE_HOST": HOST,
        "LOCK_STORE_PORT": "6379",
        "LOCK_STORE_DB": "1",
        "PYTHONPATH": str(ROOT),
        "RASA_API_TOKEN": token,
        "ACTION_SERVER_TOKEN": secrets.token_hex(32),
    }
    LOGS.mkdir(parents=True, exist_ok=True)
    with (LOGS / "tandem-setup.log").open("wb") as out:
        for command in (["migrate"], ["seed", "--demo"]):
            subprocess.run(
                [str(APP_PYTHON), "-m", "tandem.cli", *command],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    actions = services.start(
        "tandem-actions",
        [str(APP_PYTHON), "-m", "actions.server", "--host", HOST, "--port", str(action_port)],
        env=env,
        cwd=ROOT,
    )
    wait_until_up(actions, f"http://{HOST}:{action_port}/health", 60)
    rasa = services.start(
        "tandem-rasa",
        [
            str(RASA),
            "run",
            "--model",
            str(model),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
            "--enable-api",
            "--auth-token",
            token,
            "--interface",
            HOST,
            "--port",
            str(rasa_port),
        ],
        env=env,
        cwd=ROOT,
    )
    rasa_url = f"http://{HOST}:{rasa_port}"
    wait_until_up(rasa, f"{rasa_url}/", 240)
    gateway_env = {
        **env,
        "RASA_URL": rasa_url,
        "GATEWAY_SECRET": secrets.token_hex(32),
        "GATEWAY_RATE_LIMIT_SESSION": NO_LIMIT,
        "GATEWAY_RATE_LIMIT_ADDRESS": NO_LIMIT,
        "GATEWAY_RATE_LIMIT_NEW_SESSION": NO_LIMIT,
    }
    gateway = services.start(
        "tandem-gateway",
        [str(APP_PYTHON), "-m", "tandem.gateway", "--host", HOST, "--port", str(gateway_port)],
        env=gateway_env,
        cwd=ROOT,
    )
    gateway_url = f"http://{HOST}:{gateway_port}"
    wait_until_up(gateway, f"{gateway_url}/healthz", 60)
    return TandemBot(rasa_url, gateway_url, token, actions, rasa, gateway)
