"""Start and stop the bots' processes for the load benchmark, on loopback and on free ports.

The stock bot is ``rasa init``'s starter bot (trained once into ``var/bench/stock``, then reused),
served by ``rasa run`` with its own (in-memory) stores and its REST channel. Tandem is started as
``make run`` starts it (scripts/run.sh, tests/stack.py): a fresh SQLite business database migrated
and seeded with the demo data, the action server, the Rasa server with the project's
``endpoints.yml`` / ``credentials.yml`` (SQLite tracker store, in-memory lock store, the gateway
channel only), newly generated tokens, and the website gateway in front of it.

In production mode (issue 15) as ``make run`` with ``DATABASE_URL`` on PostgreSQL and ``REDIS_URL``
(scripts/env.sh): a fresh PostgreSQL database for the business data and Rasa's tracker (dropped at
the end), Redis under a key prefix of this run, a Redis lock store (the atomic one, or Rasa's stock
``redis`` store as the control that fails), ``replicas`` Rasa servers each with its own action
server, and the gateway routing each conversation to one replica.

Every process gets its own session (process group), so Ctrl-C reaches this program alone and
:meth:`Services.close` stops each group (SIGTERM, then SIGKILL after a grace period), then runs
the clean-ups (dropping the database, deleting this run's Redis keys).
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
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
APP_PYTHON = ROOT / ".venv" / "bin" / "python"
TANDEM_MODEL = ROOT / "models" / "tandem.tar.gz"
WORK = ROOT / "var" / "bench"
STOCK_DIR = WORK / "stock"
LOGS = WORK / "logs"
HOST = "127.0.0.1"
# Production mode's servers (issue 15): the maintenance database of a PostgreSQL server (a fresh
# database is created beside it per run) and a Redis server.
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", f"postgresql://postgres@{HOST}:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", f"redis://{HOST}:6379/0")
# The lock stores of production mode: tandem's atomic one, and Rasa's own (the control that fails;
# it takes a host name, not a URL, and db 1 as Rasa's default).
LOCK_STORES = {
    "atomic": {"LOCK_STORE_TYPE": "tandem_rasa.lock_store.AtomicRedisLockStore"},
    "redis": {"LOCK_STORE_TYPE": "redis", "LOCK_STORE_HOST": HOST, "LOCK_STORE_PORT": "6379", "LOCK_STORE_DB": "1"},
}

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
    # How it was started, so that it can be started again (benchmarks/load/faults.py).
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None

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
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], *, env: dict[str, str], cwd: Path) -> Service:
        LOGS.mkdir(parents=True, exist_ok=True)
        log = LOGS / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        service = Service(name, process, log, argv=list(argv), env=dict(env), cwd=cwd)
        self.started.append(service)
        return service

    def restart(self, service: Service) -> Service:
        """``service`` started again as it was (argv, environment, directory), its log appended to;
        the new process takes the old one's place (it is stopped first if still alive), so
        :meth:`close` stops the new one in the same order."""
        if service.cwd is None:
            raise ValueError(f"{service.name} was not started by Services.start: no command to start again")
        service.stop()
        with service.log.open("ab") as out:
            process = subprocess.Popen(
                service.argv,
                cwd=service.cwd,
                env=service.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        again = Service(service.name, process, service.log, argv=service.argv, env=service.env, cwd=service.cwd)
        for i, known in enumerate(self.started):
            if known is service:
                self.started[i] = again
                break
        else:
            self.started.append(again)
        return again

    def on_close(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` when the services are closed, after every process has stopped."""
        self.cleanups.append(cleanup)

    def close(self) -> None:
        while self.started:
            self.started.pop().stop()
        while self.cleanups:
            cleanup = self.cleanups.pop()
            try:
                cleanup()
            except Exception as error:  # a clean-up must not hide the run's own error
                print(f"  (clean-up failed: {type(error).__name__}: {error})", flush=True)

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


def serving_env() -> dict[str, str]:
    """What scripts/run.sh adds for tandem's Rasa servers: TensorFlow's oneDNN kernels off unless set."""
    return {"TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "0")}


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
    """A started tandem: its Rasa replicas (replica i calls action server i), the gateway, and
    what the ordering check needs (the tracker store's URL, the gateway's session secret)."""

    rasa_urls: list[str]
    gateway_url: str
    token: str
    action_services: list[Service]
    rasa_services: list[Service]
    gateway: Service
    gateway_secret: str
    tracker_url: str  # SQLAlchemy URL (app venv drivers) of the database holding Rasa's `events`
    config: dict[str, Any]
    tag: str  # this run's mark in the sender ids it chooses (adversarial levels)
    senders: set[str] = field(default_factory=set)  # every sender of the levels (Redis clean-up)

    @property
    def rasa_url(self) -> str:
        return self.rasa_urls[0]

    @property
    def rasa(self) -> Service:
        return self.rasa_services[0]

    @property
    def actions(self) -> Service:
        return self.action_services[0]

    def roles(self, loadgen: int) -> dict[str, int | tuple[int, ...]]:
        """The processes to sample: ``rasa`` and ``actions`` are all replicas together; with more
        than one replica each also has its own role (``rasa#0``, ``rasa#1``, ...: details, not
        added to the totals)."""
        roles: dict[str, int | tuple[int, ...]] = {
            "rasa": tuple(s.pid for s in self.rasa_services),
            "actions": tuple(s.pid for s in self.action_services),
            "gateway": self.gateway.pid,
            "loadgen": loadgen,
        }
        if len(self.rasa_services) > 1:
            for i, (rasa, actions) in enumerate(zip(self.rasa_services, self.action_services, strict=True)):
                roles[f"rasa#{i}"] = rasa.pid
                roles[f"actions#{i}"] = actions.pid
        return roles


def tandem_model(pipeline: str = "minilm") -> Path:
    """The model of a pipeline as scripts/pipeline.sh names it: models/tandem[-<pipeline>].tar.gz."""
    return TANDEM_MODEL if pipeline == "minilm" else ROOT / "models" / f"tandem-{pipeline}.tar.gz"


def create_database(services: Services, name: str) -> str:
    """A new PostgreSQL database ``name`` beside :data:`POSTGRES_ADMIN_URL`'s (its URL without a
    driver), dropped with its connections when ``services`` close."""
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    services.on_close(drop)
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def delete_redis_keys(prefix: str, lock_keys: Callable[[], Iterable[str]]) -> None:
    """This run's keys: the gateway's and the actions' (``prefix*``, :data:`REDIS_URL`'s db) and the
    lock stores' of its conversations (Rasa's ``lock:<id>`` in db 1, tandem's ``atomic_lock:<id>``;
    both normally go when a turn ends, a failing control may leave some)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    rasa_locks = redis.Redis(host=HOST, port=6379, db=1, socket_timeout=5, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        senders = list(lock_keys())
        for start in range(0, max(len(keys), len(senders)), 500):
            if keys[start : start + 500]:
                client.delete(*keys[start : start + 500])
            chunk = senders[start : start + 500]
            if chunk:
                client.delete(*(f"atomic_lock:{s}" for s in chunk))
                rasa_locks.delete(*(f"lock:{s}" for s in chunk))
    finally:
        client.close()
        rasa_locks.close()


def action_urls(action_ports: Sequence[int], replica: int) -> dict[str, str]:
    """Rasa replica ``replica``'s action servers, as scripts/run.sh gives them: its own
    (``replica`` mod M) and the others as fallbacks for calls that never reached it."""
    count = len(action_ports)
    urls = [f"http://{HOST}:{action_ports[(replica + j) % count]}/webhook" for j in range(count)]
    return {"ACTION_SERVER_URL": urls[0], "ACTION_SERVER_FALLBACK_URLS": ",".join(urls[1:])}


def start_tandem(
    services: Services,
    model: Path = TANDEM_MODEL,
    *,
    replicas: int = 1,
    production: bool = False,
    lock_store: str = "atomic",
    extra_env: dict[str, str] | None = None,
) -> TandemBot:
    """Tandem as ``make run`` serves it: embedded (SQLite, in-memory lock store, one Rasa process),
    or ``production`` (PostgreSQL + Redis, ``lock_store`` of :data:`LOCK_STORES`, ``replicas`` Rasa
    servers with an action server each, the gateway routing over all of them). ``extra_env`` is
    added to every process's environment (e.g. ``LLM_MODEL`` / ``LLM_BASE_URL`` of a local fake)."""
    if not model.exists():
        raise RuntimeError(f"no trained model at {model}: run `make train` (PIPELINE=... for another pipeline)")
    if replicas < 1:
        raise ValueError(f"replicas must be 1 or more, not {replicas}")
    if replicas > 1 and not production:
        raise ValueError("several Rasa replicas need production mode (PostgreSQL tracker store, Redis lock store)")
    if lock_store not in LOCK_STORES:
        raise ValueError(f"lock_store is one of {sorted(LOCK_STORES)}, not {lock_store!r}")
    work = WORK / "tandem"
    if work.exists():
        shutil.rmtree(work)  # a fresh business database and tracker store every run
    work.mkdir(parents=True)
    tag = uuid.uuid4().hex[:10]
    action_ports = [free_port() for _ in range(replicas)]
    rasa_ports = [free_port() for _ in range(replicas)]
    gateway_port = free_port()
    token = secrets.token_hex(32)
    env = {
        **base_env(),
        **(extra_env or {}),
        "PYTHONPATH": str(ROOT),
        "RASA_API_TOKEN": token,
        "ACTION_SERVER_TOKEN": secrets.token_hex(32),
        "ACTION_SERVER_URL": f"http://{HOST}:{action_ports[0]}/webhook",  # replica i: action server i
    }
    senders: set[str] = set()
    if production:
        # As scripts/env.sh derives them from DATABASE_URL and REDIS_URL.
        database = create_database(services, f"tandem_bench_{tag}")
        redis_prefix = f"bench{tag}:"
        services.on_close(lambda: delete_redis_keys(redis_prefix, lambda: sorted(senders)))
        env |= {
            "DATABASE_URL": database.replace("postgresql://", "postgresql+psycopg://", 1),
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": redis_prefix,
            "TRACKER_DB_DIALECT": "postgresql",
            "TRACKER_DB_URL": database,  # Rasa's SQLAlchemy 1.4 speaks psycopg2
            "LOCK_STORE_HOST": REDIS_URL,
            "LOCK_STORE_PORT": "6379",
            "LOCK_STORE_DB": "1",
            **LOCK_STORES[lock_store],
        }
        tracker_url = env["DATABASE_URL"]
    else:
        tracker_url = f"sqlite:///{work / 'rasa_tracker.db'}"
        env |= {
            "DATABASE_URL": f"sqlite:///{work / 'tandem.db'}",
            "TRACKER_DB_DIALECT": "sqlite",
            "TRACKER_DB_URL": tracker_url,
            "LOCK_STORE_TYPE": "in_memory",
            "LOCK_STORE_HOST": HOST,
            "LOCK_STORE_PORT": "6379",
            "LOCK_STORE_DB": "1",
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

    def name(role: str, index: int) -> str:
        return f"tandem-{role}" if replicas == 1 else f"tandem-{role}-{index}"

    actions = [
        services.start(
            name("actions", i),
            [str(APP_PYTHON), "-m", "actions.server", "--host", HOST, "--port", str(port)],
            env=env,
            cwd=ROOT,
        )
        for i, port in enumerate(action_ports)
    ]
    for service, port in zip(actions, action_ports, strict=True):
        wait_until_up(service, f"http://{HOST}:{port}/health", 60)
    # The replicas load their models side by side (as scripts/run.sh starts them).
    rasas = [
        services.start(
            name("rasa", i),
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
                str(port),
            ],
            env={**env, **serving_env(), **action_urls(action_ports, i)},
            cwd=ROOT,
        )
        for i, port in enumerate(rasa_ports)
    ]
    rasa_urls = [f"http://{HOST}:{port}" for port in rasa_ports]
    for service, url in zip(rasas, rasa_urls, strict=True):
        wait_until_up(service, f"{url}/", 240 * replicas)
    secret = secrets.token_hex(32)
    gateway_env = {
        **env,
        "RASA_URL": ",".join(rasa_urls),
        "GATEWAY_SECRET": secret,
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
    config = {
        "replicas": replicas,
        "production": production,
        "tracker_store": "postgresql" if production else "sqlite",
        "lock_store": lock_store if production else "in_memory",
    }
    return TandemBot(
        rasa_urls=rasa_urls,
        gateway_url=gateway_url,
        token=token,
        action_services=actions,
        rasa_services=rasas,
        gateway=gateway,
        gateway_secret=secret,
        tracker_url=tracker_url,
        config=config,
        tag=tag,
        senders=senders,
    )
