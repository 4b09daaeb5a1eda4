"""``python -m benchmarks.load.faults``: faults injected into production tandem under a steady load
(issue 15), each with a recovery figure; results in benchmarks/load/results/faults/.

    .venv/bin/python -m benchmarks.load.faults
    .venv/bin/python -m benchmarks.load.faults --sessions 20 --phase-seconds 30 --faults "rasa-kill actions-restart"

The production stack (a fresh PostgreSQL database, Redis, 2 Rasa replicas with an action server each,
the gateway) is started once. ``--sessions`` virtual customers talk to it through the gateway for
the whole run, each the booking script with think times, a new conversation as soon as one ends, so
the load stays steady while the faults come one after the other. Each fault has a phase: the load
runs ``LEAD_SECONDS``, the fault is injected (in a thread: the load goes on meanwhile), the load runs
for the rest of ``--phase-seconds`` and, if needed, until every process is healthy again. The
faults:

- ``rasa-kill``: SIGKILL to Rasa replica 0's process group, started again 5 s later (as ``make
  run``'s supervisor does; the gateway moves its conversations meanwhile);
- ``actions-restart``: SIGTERM to action server 0, started again once it exited;
- ``redis-restart``: ``redis-cli shutdown nosave``, then ``redis-server`` with the arguments it ran
  with (from ``CONFIG GET``; the flags of .ci/run as a fallback);
- ``postgres-restart``: ``pg_ctlcluster <version> main restart``;
- ``llm-hang``: the LLM endpoint (a local fake, configured for the whole run when this fault is
  asked for) accepts requests and never answers, for the phase less the lead and a window.

Redis and PostgreSQL are started again at the end whatever happens (an error, Ctrl-C).

Every turn is recorded (sent, answered, HTTP status, the error code of the body, whether the body
is the documented error shape) and classified by :func:`classify`. Per fault: the turns before /
during / after it, errors by status and code, the ones that must never happen (a 500, an error
that is not the documented JSON, a 200 without a bot message, no HTTP answer), the error window and
the recovery time (:func:`recovery_seconds`). After the run every conversation's history in
PostgreSQL is checked (:func:`check_history`): every turn that got a 200 is stored exactly once, in
order, with the replies its client got; a turn that failed may be stored once or not at all.

The functions before "the run" below are pure (tests/unit/test_load_faults.py).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from benchmarks.load import launcher
from benchmarks.load.loadgen import (
    BOOKING_SCRIPT,
    TIMEOUT_SECONDS,
    gateway_conversation_id,
    make_client,
    reply_texts,
    resolve_step,
    think_seconds,
)
from benchmarks.load.ordering import StoredEvent, check_turns, read_events
from benchmarks.load.stats import percentile

RESULTS = Path(__file__).resolve().parent / "results" / "faults"
# With llm-hang in --faults the whole run has an LLM (a local fake that answers at once until the
# fault makes it accept connections and never answer).
FAULTS = ("rasa-kill", "actions-restart", "redis-restart", "postgres-restart", "llm-hang")
# The step of the booking script nobody understands: the fallback chain (and its LLM) answers it.
FALLBACK_STEP = "asdf qwerty"
LEAD_SECONDS = 10.0  # load before the fault, in each phase
RASA_RESTART_DELAY = 5.0  # a killed replica is started again after this (the supervisor's first delay)
WINDOW_SECONDS = 10.0  # the recovery window
OK_SHARE = 0.99  # recovered: a window with at least this share of turns OK
WINDOW_STEP = 1.0  # windows start every second after the fault
MIN_WINDOW_TURNS = 5  # a window with fewer turns says nothing (it is not "recovered")
WARM_UP_CONVERSATIONS = 4  # before the clock, not recorded
HEALTHY_WAIT_SECONDS = 300.0  # after a phase, at most this long until every process is healthy again
# Errors a client should retry (after ``Retry-After`` when given): rate limited, upstream failed,
# temporarily unavailable, upstream timeout.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

# The outcomes of a request, as :func:`classify` names them. The last four must never happen.
OUTCOMES = ("ok", "retryable", "refused", "server_error", "bad_error", "silent", "no_answer")
NEVER = ("server_error", "bad_error", "silent", "no_answer")
OUTCOME_MEANING = {
    "ok": "200 with at least one bot message (a session: 200 with a token)",
    "retryable": f"the documented error shape with status {'/'.join(map(str, sorted(RETRYABLE_STATUSES)))}",
    "refused": "the documented error shape with another status (4xx): clear, but not to be retried as is",
    "server_error": "status 500, whatever the body",
    "bad_error": "an error status whose body is not the documented JSON error shape (or another 5xx)",
    "silent": "200 without a bot message (or without the documented body)",
    "no_answer": "no HTTP answer within the timeout, or the connection broke",
}
# The ordering check's kinds (:func:`check_history`): violations, then what is only counted.
VIOLATIONS = ("missing", "duplicated", "out_of_order", "text_differs", "interleaved", "failed_duplicated")
NOTED = ("failed_stored", "failed_not_stored", "unexpected", "concurrent", "extra_session_start")
# The flags of .ci/run: how the CI (and this machine) starts Redis when it is not running.
CI_REDIS_ARGV = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
REDIS_CONFIG_KEYS = ("bind", "port", "save", "appendonly", "dir", "logfile")


# --- classification ---------------------------------------------------------------------------------


def error_shape(body: Any) -> bool:
    """Whether ``body`` is the gateway's documented error: ``{"error": {"code": str, "message": str, ...}}``."""
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and bool(error["code"])
        and isinstance(error.get("message"), str)
        and bool(error["message"])
    )


def classify(status: int | None, body: Any, transport_error: str | None = None) -> tuple[str, str | None]:
    """A turn's outcome (one of :data:`OUTCOMES`) and its code: the error body's ``code``, or the
    transport error (``timeout``, ``connection``), or ``bad_body`` / ``empty_reply`` for a silent 200.

    ``body`` is the parsed JSON (None when the body is not JSON)."""
    if status is None:
        return "no_answer", transport_error or "connection"
    if status == 200:
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return "silent", "bad_body"
        if not messages:
            return "silent", "empty_reply"
        return "ok", None
    shaped = error_shape(body)
    code = str(body["error"]["code"]) if shaped else None
    if status == 500:
        return "server_error", code
    if not shaped:
        return "bad_error", None
    if status in RETRYABLE_STATUSES:
        return "retryable", code
    if 400 <= status < 500:
        return "refused", code
    return "bad_error", code


def classify_session(status: int | None, body: Any, transport_error: str | None = None) -> tuple[str, str | None]:
    """A session opening's outcome: ok is a 2xx with a token; errors as :func:`classify`."""
    if status is not None and 200 <= status < 300:
        token = body.get("token") if isinstance(body, dict) else None
        return ("ok", None) if isinstance(token, str) and token else ("silent", "bad_body")
    return classify(status, body, transport_error)


@dataclass(frozen=True)
class Request:
    """One request of a virtual customer: a turn (``index`` ≥ 0, its step of the script) or a
    session opening (``index`` -1). Times are seconds since the run's start."""

    conversation: int
    index: int
    text: str
    sent: float
    answered: float
    status: int | None
    outcome: str
    code: str | None
    error_shape: bool
    correlation_id: str | None = None
    reply_texts: tuple[str, ...] = ()
    retry_after: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def is_turn(self) -> bool:
        return self.index >= 0

    @property
    def latency_s(self) -> float:
        return self.answered - self.sent


def status_code_key(request: Request) -> str:
    """``"503 upstream_unavailable"``, ``"500 -"``, ``"no answer timeout"``: how errors are counted."""
    if request.status is None:
        return f"no answer {request.code or '-'}"
    return f"{request.status} {request.code or '-'}"


# --- the numbers of a fault -------------------------------------------------------------------------


def recovery_seconds(
    turns: Sequence[tuple[float, bool]],
    fault_at: float,
    end: float,
    *,
    window: float = WINDOW_SECONDS,
    share: float = OK_SHARE,
    step: float = WINDOW_STEP,
    min_turns: int = MIN_WINDOW_TURNS,
) -> float | None:
    """Seconds from ``fault_at`` to the start of the first ``window``-second window (starting every
    ``step`` s from the fault on, ending by ``end``) whose turns, by the time they were sent, are at
    least ``share`` OK and number at least ``min_turns``; None when no such window fits before
    ``end``. ``turns`` are (time sent, ok) pairs. 0: the service did not falter."""
    ordered = sorted(turns)
    times = [t for t, _ in ordered]
    oks = [0]
    for _, ok in ordered:
        oks.append(oks[-1] + (1 if ok else 0))
    k = 0
    while True:
        start = fault_at + k * step
        if start + window > end + 1e-9:
            return None
        low = bisect.bisect_left(times, start)
        high = bisect.bisect_left(times, start + window)
        count = high - low
        if count >= min_turns and (oks[high] - oks[low]) >= share * count - 1e-9:
            return round(start - fault_at, 3)
        k += 1


def error_window(requests: Iterable[Request], fault_at: float, end: float) -> dict[str, Any]:
    """The failed turns answered from ``fault_at`` to ``end``: how many, and the first and last
    failure's answer time relative to the fault (an error is seen when it is answered; a turn in
    flight when the fault came fails after it)."""
    failed = sorted(r.answered for r in requests if r.is_turn and not r.ok and fault_at <= r.answered < end)
    if not failed:
        return {"failed": 0, "first_s": None, "last_s": None, "seconds": 0.0}
    return {
        "failed": len(failed),
        "first_s": round(failed[0] - fault_at, 2),
        "last_s": round(failed[-1] - fault_at, 2),
        "seconds": round(failed[-1] - failed[0], 2),
    }


def segment(requests: Sequence[Request], start: float, end: float) -> dict[str, Any]:
    """The turns sent in [start, end): counts, outcomes, errors by status and code, latency."""
    turns = [r for r in requests if r.is_turn and start <= r.sent < end]
    latencies = [r.latency_s for r in turns]
    failed = [r for r in turns if not r.ok]
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    return {
        "from_s": round(start, 2),
        "to_s": round(end, 2),
        "turns": len(turns),
        "ok": len(turns) - len(failed),
        "failed": len(failed),
        "ok_share": round((len(turns) - len(failed)) / len(turns), 4) if turns else None,
        "by_outcome": dict(sorted(Counter(r.outcome for r in turns).items())),
        "errors_by_status_code": dict(sorted(Counter(status_code_key(r) for r in failed).items())),
        "p50_s": None if p50 is None else round(p50, 3),
        "p95_s": None if p95 is None else round(p95, 3),
        "max_s": round(max(latencies), 3) if latencies else None,
    }


def fault_numbers(
    requests: Sequence[Request], *, phase_start: float, fault_at: float, phase_end: float
) -> dict[str, Any]:
    """One phase: before the fault, during it (the fault → recovery), after recovery; the error
    window, the recovery seconds, and the outcomes that must be 0 (turns and session openings)."""
    in_phase = [r for r in requests if phase_start <= r.sent < phase_end]
    turns = [(r.sent, r.ok) for r in in_phase if r.is_turn and r.sent >= fault_at]
    recovery = recovery_seconds(turns, fault_at, phase_end)
    recovered_at = phase_end if recovery is None else fault_at + recovery
    opens = [r for r in in_phase if not r.is_turn]
    never = Counter(r.outcome for r in in_phase if r.outcome in NEVER)
    return {
        "before": segment(in_phase, phase_start, fault_at),
        "during": segment(in_phase, fault_at, recovered_at),
        "after": segment(in_phase, recovered_at, phase_end),
        "whole_phase": segment(in_phase, phase_start, phase_end),
        "error_window": error_window(in_phase, fault_at, phase_end),
        "recovery_s": recovery,
        "recovered": recovery is not None,
        "must_be_zero": {kind: never.get(kind, 0) for kind in NEVER},
        "session_opens": {
            "attempted": len(opens),
            "by_outcome": dict(sorted(Counter(r.outcome for r in opens).items())),
            "errors_by_status_code": dict(sorted(Counter(status_code_key(r) for r in opens if not r.ok).items())),
        },
    }


def timeline(requests: Iterable[Request], end: float) -> dict[str, list[int]]:
    """Turns OK and failed per second of the run, by the second they were sent."""
    seconds = int(end) + 1
    ok, failed = [0] * seconds, [0] * seconds
    for r in requests:
        if not r.is_turn or not 0 <= r.sent < seconds:
            continue
        (ok if r.ok else failed)[int(r.sent)] += 1
    return {"ok": ok, "failed": failed}


# --- the history check ------------------------------------------------------------------------------


def check_history(sent: Sequence[Request], events: Iterable[StoredEvent]) -> Counter[str]:
    """One conversation's stored history against its client's turns (``sent``, in the order sent).

    The rule under faults: every turn that got a 200 (``ok``) is stored exactly once (else
    ``missing`` / ``duplicated``), with the text sent (``text_differs``), after every earlier 200
    turn of the conversation (``out_of_order``), followed by exactly the bot texts its client got
    (``interleaved``); a turn that failed may be stored once or not at all (``failed_stored`` /
    ``failed_not_stored``, only counted), never twice (``failed_duplicated``). Only counted too:
    user events nobody can be matched to beyond the turns whose id the client never learnt
    (``unexpected``), turns whose events overlap in time (``concurrent``: a failed turn a dead
    replica was still running may overlap the next one), and more than one ``session_started``.
    The kinds of :data:`VIOLATIONS` break the rule, those of :data:`NOTED` do not (the walk is
    :func:`benchmarks.load.ordering.check_turns`'s, ``count_failed``; session openings are left out)."""
    return check_turns(
        [r for r in sent if r.is_turn],
        events,
        ok=lambda r: r.ok,
        order=lambda r: r.index,
        count_failed=True,
    )


def check_histories(
    requests: Sequence[Request], senders: Mapping[int, str], events: Mapping[str, Sequence[StoredEvent]]
) -> dict[str, Any]:
    """Every conversation (``senders``: conversation number → Rasa's sender id): counts by kind, the
    conversations with a violation, a few examples, and whether the rule holds."""
    by_conversation: dict[int, list[Request]] = {}
    for r in requests:
        if r.is_turn:
            by_conversation.setdefault(r.conversation, []).append(r)
    total: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    broken = 0
    for number, sender in sorted(senders.items()):
        sent = sorted(by_conversation.get(number, []), key=lambda r: r.index)
        found = check_history(sent, events.get(sender, []))
        total.update(found)
        if any(found.get(kind) for kind in VIOLATIONS):
            broken += 1
            if len(examples) < 5:
                examples.append({"conversation": number, "sender": sender, "found": dict(sorted(found.items()))})
    violations = sum(total.get(kind, 0) for kind in VIOLATIONS)
    return {
        "conversations": len(senders),
        "turns": sum(len(by_conversation.get(n, [])) for n in senders),
        "ok_turns": sum(1 for n in senders for r in by_conversation.get(n, []) if r.ok),
        "violations": violations,
        "by_kind": {kind: total.get(kind, 0) for kind in VIOLATIONS},
        "noted": {kind: total.get(kind, 0) for kind in NOTED},
        "conversations_with_violations": broken,
        "examples": examples,
        "holds": violations == 0,
    }


# --- the servers' command lines ---------------------------------------------------------------------


def redis_argv(config: Mapping[str, str], executable: str = "redis-server") -> list[str]:
    """``redis-server`` with the settings a running server reports (``CONFIG GET`` of
    :data:`REDIS_CONFIG_KEYS`), daemonized; ``bind`` may list several addresses."""
    argv = [executable, "--daemonize", "yes"]
    bind = config.get("bind", "").split()
    if bind:
        argv += ["--bind", *bind]
    for key in ("port", "save", "appendonly", "dir", "logfile"):
        if key in config:
            argv += [f"--{key}", config[key]]
    return argv


def postgres_version(root: Path = Path("/etc/postgresql")) -> str:
    """The newest PostgreSQL version with a ``main`` cluster under ``root`` (``/etc/postgresql/15/main``)."""
    versions = [p.name for p in root.iterdir() if (p / "main").is_dir()] if root.is_dir() else []
    if not versions:
        raise RuntimeError(f"no PostgreSQL cluster 'main' under {root}")
    return max(versions, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split(".")))


# --- the run ----------------------------------------------------------------------------------------


class Clock:
    """Seconds since the run's start (monotonic), and the wall time of that start."""

    def __init__(self) -> None:
        self.zero = time.monotonic()
        self.wall = datetime.now(UTC)

    def now(self) -> float:
        return time.monotonic() - self.zero


def log(message: str) -> None:
    print(message, flush=True)


def redis_cli(*args: str, timeout: float = 5.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["redis-cli", "-h", launcher.HOST, "-p", "6379", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def redis_up() -> bool:
    try:
        return redis_cli("ping", timeout=3).stdout.strip() == "PONG"
    except (subprocess.TimeoutExpired, OSError):
        return False


def redis_config() -> dict[str, str]:
    """The running server's settings of :data:`REDIS_CONFIG_KEYS` (``CONFIG GET`` answers key, value lines)."""
    config: dict[str, str] = {}
    for key in REDIS_CONFIG_KEYS:
        lines = redis_cli("config", "get", key).stdout.split("\n")
        if len(lines) >= 2 and lines[0].strip() == key:
            config[key] = lines[1].strip()
    return config


def start_redis(argv: list[str]) -> None:
    executable = shutil.which(argv[0]) or argv[0]
    if "--dir" in argv[:-1]:
        Path(argv[argv.index("--dir") + 1]).mkdir(parents=True, exist_ok=True)
    # No pipes: a daemon that kept one open would make run() wait for it.
    subprocess.run(
        [executable, *argv[1:]], cwd="/", check=True, timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while not redis_up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer within 30 s: {shlex.join(argv)}")
        time.sleep(0.2)


def ensure_redis(argv: list[str] | None = None) -> None:
    """Redis answers on 6379: started (with ``argv``, else the flags of .ci/run) when it does not."""
    if not redis_up():
        log("  (Redis is not running: starting it)")
        start_redis(argv or CI_REDIS_ARGV)


def postgres_up() -> bool:
    import psycopg

    try:
        with psycopg.connect(launcher.POSTGRES_ADMIN_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def wait_postgres(seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not postgres_up():
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not accept connections within {seconds} s")
        time.sleep(0.2)


def pg_ctlcluster(version: str, action: str) -> None:
    """``pg_ctlcluster <version> main <action>``, its output in var/bench/logs/faults-postgres.log
    (a file, not a pipe: the server it starts must not hold our pipe open)."""
    launcher.LOGS.mkdir(parents=True, exist_ok=True)
    with (launcher.LOGS / "faults-postgres.log").open("ab") as out:
        subprocess.run(
            ["pg_ctlcluster", version, "main", action], check=True, timeout=120, stdout=out, stderr=subprocess.STDOUT
        )


def ensure_postgres() -> None:
    """PostgreSQL's main cluster runs: started when ``pg_ctlcluster status`` says it does not."""
    version = postgres_version()
    status = subprocess.run(
        ["pg_ctlcluster", version, "main", "status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    if status.returncode != 0:
        log("  (PostgreSQL is not running: starting it)")
        pg_ctlcluster(version, "start")
    wait_postgres()


def port_of(service: launcher.Service) -> str:
    return service.argv[service.argv.index("--port") + 1]


class HangingLlm:
    """A local OpenAI-compatible endpoint (tests/fallback/fake_llm.py) that answers at once, or,
    while :attr:`hanging`, accepts the request and never answers (until it is stopped)."""

    def __init__(self) -> None:
        from tests.fallback.fake_llm import FakeLlmServer, Step, reply

        self.hanging = False
        self.calls = 0
        self.hung_calls = 0
        self.server = FakeLlmServer()

        def respond(body: dict[str, Any]) -> Any:
            self.calls += 1
            if self.hanging:
                self.hung_calls += 1
                return Step(delay=24 * 3600.0)
            return Step(content=reply(answer=None, confidence=0.2))

        self.server.responder = respond

    def env(self) -> dict[str, str]:
        """The model's settings for every process: this endpoint, no cache and no token budgets in
        the way (every customer of the load comes from one address; the fallback step is the same
        text in every conversation)."""
        return {
            "LLM_MODEL": "fake-hanging-llm",
            "LLM_BASE_URL": self.server.base_url,
            "LLM_CACHE_MAX_ENTRIES": "0",
            "LLM_CACHE_TTL_SECONDS": "0",
            "LLM_BUDGET_TOKENS_PER_CLIENT": "1000000000",
            "LLM_BUDGET_TOKENS_PER_DAY": "1000000000",
            "LLM_BUDGET_TOKENS_PER_CONVERSATION": "1000000000",
        }

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.hanging = False
        # Hung requests are not waited for (uvicorn would wait for them, up to the join's 10 s).
        self.server._server.force_exit = True
        self.server.stop()


@dataclass
class Stack:
    """The started stack and what the faults do to it; every event is timed on the run's clock."""

    services: launcher.Services
    bot: launcher.TandemBot
    clock: Clock
    redis_argv: list[str] = field(default_factory=lambda: list(CI_REDIS_ARGV))
    events: list[dict[str, Any]] = field(default_factory=list)
    llm: HangingLlm | None = None
    llm_hang_seconds: float = 0.0

    def event(self, fault: str, what: str) -> float:
        at = self.clock.now()
        self.events.append({"fault": fault, "at_s": round(at, 2), "what": what})
        log(f"  [{at:7.1f} s] {fault}: {what}")
        return at

    # The faults: each returns the time it was injected.

    def rasa_kill(self) -> float:
        rasa = self.bot.rasa_services[0]
        os.killpg(rasa.pid, signal.SIGKILL)
        at = self.event("rasa-kill", f"SIGKILL to Rasa replica 0 (pid {rasa.pid})")
        rasa.process.wait(timeout=30)
        time.sleep(max(0.0, RASA_RESTART_DELAY - (self.clock.now() - at)))
        again = self.services.restart(rasa)
        self.bot.rasa_services[0] = again
        self.event("rasa-kill", f"Rasa replica 0 started again (pid {again.pid})")
        launcher.wait_until_up(again, f"{self.bot.rasa_urls[0]}/", 300)
        self.event("rasa-kill", "Rasa replica 0 answers")
        return at

    def actions_restart(self) -> float:
        actions = self.bot.action_services[0]
        os.killpg(actions.pid, signal.SIGTERM)
        at = self.event("actions-restart", f"SIGTERM to action server 0 (pid {actions.pid})")
        try:
            actions.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(actions.pid, signal.SIGKILL)
            actions.process.wait(timeout=10)
            self.event("actions-restart", "action server 0 ignored SIGTERM for 30 s: killed")
        self.event("actions-restart", f"action server 0 exited ({actions.process.returncode})")
        again = self.services.restart(actions)
        self.bot.action_services[0] = again
        launcher.wait_until_up(again, f"http://{launcher.HOST}:{port_of(again)}/health", 60)
        self.event("actions-restart", f"action server 0 answers (pid {again.pid})")
        return at

    def redis_restart(self) -> float:
        config = redis_config()
        if config:
            self.redis_argv = redis_argv(config)
        redis_cli("shutdown", "nosave")
        at = self.event("redis-restart", "redis-cli shutdown nosave")
        deadline = time.monotonic() + 10
        while redis_up() and time.monotonic() < deadline:
            time.sleep(0.1)
        start_redis(self.redis_argv)
        self.event("redis-restart", f"Redis answers again ({shlex.join(self.redis_argv)})")
        return at

    def postgres_restart(self) -> float:
        version = postgres_version()
        at = self.event("postgres-restart", f"pg_ctlcluster {version} main restart")
        pg_ctlcluster(version, "restart")
        self.event("postgres-restart", "pg_ctlcluster returned")
        wait_postgres()
        self.event("postgres-restart", "PostgreSQL accepts connections")
        return at

    def llm_hang(self) -> float:
        if self.llm is None:
            raise RuntimeError("no fake LLM: the stack was started without one")
        self.llm.hanging = True
        at = self.event("llm-hang", f"the LLM endpoint hangs (accepts, never answers) for {self.llm_hang_seconds:g} s")
        time.sleep(self.llm_hang_seconds)
        self.llm.hanging = False
        self.event("llm-hang", "the LLM endpoint answers again")
        return at

    def inject(self, fault: str) -> float:
        actions: dict[str, Callable[[], float]] = {
            "llm-hang": self.llm_hang,
            "rasa-kill": self.rasa_kill,
            "actions-restart": self.actions_restart,
            "redis-restart": self.redis_restart,
            "postgres-restart": self.postgres_restart,
        }
        return actions[fault]()

    def healthy(self) -> bool:
        """Every process answers: each Rasa replica, each action server, Redis, PostgreSQL, and the
        gateway's ``/readyz``."""
        try:
            for service, url in zip(self.bot.rasa_services, self.bot.rasa_urls, strict=True):
                if not service.alive() or httpx.get(f"{url}/", timeout=3).status_code != 200:
                    return False
            for service in self.bot.action_services:
                health = f"http://{launcher.HOST}:{port_of(service)}/health"
                if not service.alive() or httpx.get(health, timeout=3).status_code != 200:
                    return False
            ready = httpx.get(f"{self.bot.gateway_url}/readyz", timeout=5)
        except httpx.HTTPError:
            return False
        return ready.status_code == 200 and redis_up() and postgres_up()

    def wait_healthy(self, seconds: float) -> float | None:
        """Seconds until :meth:`healthy` (None: not within ``seconds``)."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            if self.healthy():
                return round(time.monotonic() - started, 1)
            time.sleep(1)
        return None


@dataclass
class Load:
    """The steady load: ``sessions`` virtual customers through the gateway, each the booking script
    with think times, a new conversation when one ends, until :attr:`stop` is set."""

    gateway_url: str
    secret: str
    clock: Clock
    sessions: int
    think: float
    timeout: float = TIMEOUT_SECONDS
    seed: int = 0
    requests: list[Request] = field(default_factory=list)
    senders: dict[int, str] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    conversations: int = 0
    transport: httpx.AsyncBaseTransport | None = None  # tests: a mock gateway

    async def post(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], token: str | None
    ) -> tuple[int | None, Any, httpx.Headers | None, str | None]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await client.post(f"{self.gateway_url}{path}", json=body, headers=headers)
        except httpx.TimeoutException:
            return None, None, None, "timeout"
        except httpx.HTTPError:
            return None, None, None, "connection"
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        return response.status_code, parsed, response.headers, None

    def record(
        self,
        number: int,
        index: int,
        text: str,
        sent: float,
        status: int | None,
        body: Any,
        headers: httpx.Headers | None,
        outcome: str,
        code: str | None,
        *,
        turn: bool = False,
        messages: Any = None,
    ) -> None:
        """Records a request answered now (what :meth:`post` returned, classified). A turn (``turn``)
        also keeps the gateway's correlation id and the texts of the bot's ``messages``."""
        self.requests.append(
            Request(
                number,
                index,
                text,
                sent,
                self.clock.now(),
                status,
                outcome,
                code,
                error_shape(body),
                correlation_id=headers.get("x-correlation-id") if turn and headers is not None else None,
                reply_texts=reply_texts(messages),
                retry_after=headers.get("retry-after") if headers is not None else None,
            )
        )

    async def open_session(self, client: httpx.AsyncClient, number: int) -> str | None:
        sent = self.clock.now()
        status, body, headers, transport = await self.post(client, "/api/v1/session", {"mode": "bearer"}, None)
        outcome, code = classify_session(status, body, transport)
        self.record(number, -1, "(session)", sent, status, body, headers, outcome, code)
        return str(body["token"]) if outcome == "ok" else None

    async def turn(self, client: httpx.AsyncClient, number: int, index: int, token: str, text: str) -> Any:
        """One turn, recorded; the bot's messages when it is OK (else None)."""
        sent = self.clock.now()
        body_in = {"payload": text} if text.startswith("/") else {"text": text}
        status, body, headers, transport = await self.post(client, "/api/v1/messages", body_in, token)
        outcome, code = classify(status, body, transport)
        messages = body.get("messages") if outcome == "ok" and isinstance(body, dict) else None
        self.record(number, index, text, sent, status, body, headers, outcome, code, turn=True, messages=messages)
        return messages

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def customer(self, client: httpx.AsyncClient, slot: int) -> None:
        rng = random.Random(f"{self.seed}-{slot}")
        await self.pause(rng.uniform(0, max(self.think, 0.5)))  # the customers do not all start at once
        while not self.stop.is_set():
            number = self.conversations
            self.conversations += 1
            token = await self.open_session(client, number)
            if token is None:
                await self.pause(1.0)  # a failed opening is tried again, as a widget would
                continue
            # A token is v1.<session id>.<issued at>.<signature>.
            self.senders[number] = gateway_conversation_id(self.secret, token.split(".")[1])
            previous: Any = None
            for index, step in enumerate(BOOKING_SCRIPT):
                await self.pause(think_seconds(rng, self.think))
                if self.stop.is_set():
                    break
                previous = await self.turn(client, number, index, token, resolve_step(step, previous))

    async def run(self) -> None:
        async with make_client(self.sessions, self.timeout, self.transport) as client:
            await asyncio.gather(*(self.customer(client, slot) for slot in range(self.sessions)))


async def warm_up(gateway_url: str, conversations: int) -> None:
    """A few booking conversations side by side, not recorded (both replicas' first turns are slow)."""
    async with make_client(conversations) as client:

        async def one() -> None:
            response = await client.post(f"{gateway_url}/api/v1/session", json={"mode": "bearer"})
            response.raise_for_status()
            headers = {"Authorization": f"Bearer {response.json()['token']}"}
            previous: Any = None
            for step in BOOKING_SCRIPT:
                text = resolve_step(step, previous)
                body = {"payload": text} if text.startswith("/") else {"text": text}
                answer = await client.post(f"{gateway_url}/api/v1/messages", json=body, headers=headers)
                if answer.status_code != 200:
                    raise RuntimeError(f"warm-up turn {text!r} answered {answer.status_code}: {answer.text[:200]}")
                previous = answer.json().get("messages")

        await asyncio.gather(*(one() for _ in range(conversations)))


def progress_line(load: Load, since: int) -> str:
    recent = load.requests[since:]
    failed = Counter(r.outcome for r in recent if not r.ok)
    return f"{len(recent)} requests, {sum(failed.values())} failed" + (
        f" ({', '.join(f'{k} {v}' for k, v in sorted(failed.items()))})" if failed else ""
    )


async def run_phases(stack: Stack, load: Load, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The load for the whole run, the faults one after the other (each in a thread)."""
    await warm_up(load.gateway_url, WARM_UP_CONVERSATIONS)
    runner = asyncio.create_task(load.run())
    phases: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(min(5.0, args.phase_seconds / 4))  # every customer under way
        for fault in args.faults:
            phase_start = stack.clock.now()
            mark = len(load.requests)
            log(f"==> phase {fault}: load from {phase_start:.1f} s, the fault in {LEAD_SECONDS:.0f} s")
            await asyncio.sleep(LEAD_SECONDS)
            error: str | None = None
            fault_at = stack.clock.now()
            try:
                fault_at = await asyncio.to_thread(stack.inject, fault)
            except Exception as exc:  # a fault that could not be injected or healed is a result too
                error = f"{type(exc).__name__}: {exc}"
                stack.event(fault, f"failed: {error}")
            injected_for = stack.clock.now() - fault_at
            # Every process healthy again (the fault's own steps wait for what they restart; this
            # also waits for the rest: the gateway's readiness, Redis, PostgreSQL).
            healthy_wait = await asyncio.to_thread(stack.wait_healthy, HEALTHY_WAIT_SECONDS)
            healthy_at = None if healthy_wait is None else stack.clock.now()
            # The rest of the phase, and at least a recovery window and 5 s after everything is back
            # (turns may fail when a replica returns and its conversations move back to it).
            until = phase_start + args.phase_seconds
            if healthy_at is not None:
                until = max(until, healthy_at + WINDOW_SECONDS + 5)
            if until > stack.clock.now():
                await asyncio.sleep(until - stack.clock.now())
            phase_end = stack.clock.now()
            back = "never" if healthy_at is None else f"{healthy_at - fault_at:.1f} s after the fault"
            log(f"  phase {fault}: {progress_line(load, mark)}; every process healthy: {back}")
            phases.append(
                {
                    "fault": fault,
                    "phase_start_s": round(phase_start, 2),
                    "fault_at_s": round(fault_at, 2),
                    "fault_at_utc": (stack.clock.wall + timedelta(seconds=fault_at)).isoformat(timespec="seconds"),
                    "phase_end_s": round(phase_end, 2),
                    "injection_s": round(injected_for, 2),
                    "injection_error": error,
                    "healthy_after_s": None if healthy_at is None else round(healthy_at - fault_at, 1),
                    "events": [e for e in stack.events if e["fault"] == fault],
                }
            )
            if healthy_wait is None:
                log(f"  (not every process is healthy {HEALTHY_WAIT_SECONDS:.0f} s after phase {fault}: stopping)")
                break
    finally:
        load.stop.set()
        await runner
    return phases


# --- the report -------------------------------------------------------------------------------------


def fmt_s(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def fmt_latency(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def fmt_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) if counts else "—"


def render(results: dict[str, Any]) -> str:
    """table.md: a row per fault, then the history check."""
    lines = [
        "# Faults mid-load (issue 15)",
        "",
        f"`{results['command']}` · {results['date']} · commit `{results['git_commit'][:12]}`"
        f"{' + uncommitted changes' if results['git_changes'] else ''} · {results['config']['sessions']} sessions,"
        f" think {results['config']['think_s']:g} s, phases of {results['config']['phase_seconds']:g} s,"
        f" 2 Rasa replicas, PostgreSQL tracker store, atomic Redis lock store",
        "",
        "Turns by the time they were sent: *before* the fault, *during* (the fault → recovery), *after*"
        f" recovery. Recovery = the fault → the start of the first {WINDOW_SECONDS:g} s window with ≥"
        f" {OK_SHARE:.0%} of its turns OK (at least {MIN_WINDOW_TURNS} turns). Error window = first → last"
        " failed turn answered after the fault (seconds after it). Must be 0: 500s, errors that are not the"
        " documented JSON, 200s without a bot message, turns without an HTTP answer.",
        "",
        "| fault | turns before / during / after | OK during | errors by status and code | must be 0"
        " (500 · non-JSON · silent · no answer) | error window | recovery | every process healthy | p95 before"
        " / during / after | session openings failed |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for phase in results["faults"]:
        b, d, a = phase["before"], phase["during"], phase["after"]
        zero = phase["must_be_zero"]
        window = phase["error_window"]
        errors = fmt_counts(phase["whole_phase"]["errors_by_status_code"])
        window_text = (
            "none"
            if not window["failed"]
            else f"{window['failed']} turns, {window['first_s']:.1f} → {window['last_s']:.1f} s"
        )
        failed_note = f" (injection failed: {phase['injection_error']})" if phase["injection_error"] else ""
        ok_during = "—" if d["ok_share"] is None else f"{d['ok_share']:.1%}"
        opens = phase["session_opens"]
        opens_failed = opens["attempted"] - opens["by_outcome"].get("ok", 0)
        lines.append(
            f"| {phase['fault']}{failed_note}"
            f" | {b['turns']} / {d['turns']} / {a['turns']}"
            f" | {ok_during}"
            f" | {errors}"
            f" | {zero['server_error']} · {zero['bad_error']} · {zero['silent']} · {zero['no_answer']}"
            f" | {window_text}"
            f" | {fmt_s(phase['recovery_s']) if phase['recovered'] else 'not within the phase'}"
            f" | {fmt_s(phase['healthy_after_s'])}"
            f" | {fmt_latency(b['p95_s'])} / {fmt_latency(d['p95_s'])} / {fmt_latency(a['p95_s'])}"
            f" | {opens_failed} of {opens['attempted']}"
            + (f" ({fmt_counts(opens['errors_by_status_code'])})" if opens_failed else "")
            + " |"
        )
    lines += [
        "",
        f"The fallback step (“{FALLBACK_STEP}”: the fallback chain, and its LLM when there is one), turns sent"
        " from the fault to the phase's end:",
        "",
    ]
    for phase in results["faults"]:
        fallback = phase.get("fallback_step")
        if fallback:
            lines.append(
                f"- {phase['fault']}: {fallback['turns']} turns, {fallback['ok']} OK,"
                f" p95 {fmt_latency(fallback['p95_s'])}, max {fmt_latency(fallback['max_s'])}"
            )
    history = results["history"]
    lines += [
        "",
        "## The history check",
        "",
        "Every conversation's events in PostgreSQL after the run: every turn that got a 200 is stored"
        " exactly once, in order, followed by the replies its client got; a failed turn may be stored"
        " once or not at all, never twice.",
        "",
        f"{history['conversations']} conversations, {history['turns']} turns ({history['ok_turns']} OK):"
        f" **{history['violations']} violations** ({'holds' if history['holds'] else 'does not hold'}).",
        "",
        "| " + " | ".join(VIOLATIONS) + " |",
        "|" + "---|" * len(VIOLATIONS),
        "| " + " | ".join(str(history["by_kind"][k]) for k in VIOLATIONS) + " |",
        "",
        "Only counted: " + ", ".join(f"{k} {v}" for k, v in history["noted"].items()) + ".",
        "",
    ]
    if history["examples"]:
        lines += ["Examples:", ""] + [f"- {json.dumps(e)}" for e in history["examples"]] + [""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> bool:
    """timeline.png: turns OK and failed per second, the faults marked; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = results["timeline"]
    seconds = list(range(len(series["ok"])))
    figure, axes = plt.subplots(figsize=(12, 4))
    axes.bar(seconds, series["ok"], width=1.0, color="#4c9f70", label="OK")
    axes.bar(seconds, series["failed"], width=1.0, bottom=series["ok"], color="#d1495b", label="failed")
    for phase in results["faults"]:
        axes.axvline(phase["fault_at_s"], color="black", linestyle="--", linewidth=1)
        axes.text(phase["fault_at_s"], axes.get_ylim()[1] * 0.95, f" {phase['fault']}", fontsize=8, va="top")
        for event in phase.get("events", [])[1:]:  # started again, answers again, ...
            axes.axvline(event["at_s"], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("seconds since the run started (turns by the second they were sent)")
    axes.set_ylabel("turns per second")
    axes.set_title("Faults mid-load: turns OK and failed per second (dashed: a fault; dotted: its later steps)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=launcher.ROOT, capture_output=True, text=True, check=False)
    return done.stdout


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.faults", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument("--sessions", type=int, default=40, help="concurrent virtual customers (default 40)")
    parser.add_argument("--think", type=float, default=2.0, help="mean seconds between a session's turns (default 2)")
    parser.add_argument("--phase-seconds", type=float, default=45.0, help="load per phase, s (default 45)")
    parser.add_argument("--faults", default=" ".join(FAULTS), help=f'faults in order (default "{" ".join(FAULTS)}")')
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="per turn, s (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="results directory (default benchmarks/load/results/faults)"
    )
    parser.add_argument("--render", action="store_true", help="only redo table.md and timeline.png from results.json")
    args = parser.parse_args(argv)
    args.faults = str(args.faults).replace(",", " ").split()
    unknown = [f for f in args.faults if f not in FAULTS]
    if unknown or not args.faults:
        parser.error(f"--faults: one or more of {', '.join(FAULTS)} (not {', '.join(unknown) or 'none'})")
    if args.sessions < 1:
        parser.error("--sessions: 1 or more")
    if args.phase_seconds < LEAD_SECONDS + WINDOW_SECONDS:
        parser.error(f"--phase-seconds: at least {LEAD_SECONDS + WINDOW_SECONDS:g} (the lead and one window)")
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "table.md").write_text(render(results))
    if not plot(results, out / "timeline.png"):
        log("  (no matplotlib: timeline.png not drawn)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        write(json.loads((args.out / "results.json").read_text()), args.out)
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    tree = {
        "git_commit": git("rev-parse", "HEAD").strip(),
        "git_changes": [ln[3:] for ln in git("status", "--porcelain").splitlines()],
    }
    started = time.monotonic()
    ensure_redis()
    ensure_postgres()
    saved_redis = redis_argv(redis_config()) if redis_up() else list(CI_REDIS_ARGV)
    try:
        with launcher.Services() as services:
            try:
                log("==> tandem in production mode: a fresh PostgreSQL database, Redis, 2 Rasa replicas, gateway")
                llm = HangingLlm() if "llm-hang" in args.faults else None
                if llm is not None:
                    llm.start()
                    services.on_close(llm.stop)
                bot = launcher.start_tandem(
                    services,
                    launcher.TANDEM_MODEL,
                    replicas=2,
                    production=True,
                    extra_env=llm.env() if llm is not None else None,
                )
                log(f"==> tandem up: Rasa {', '.join(bot.rasa_urls)}, gateway {bot.gateway_url}")
                clock = Clock()
                stack = Stack(
                    services,
                    bot,
                    clock,
                    redis_argv=saved_redis,
                    llm=llm,
                    llm_hang_seconds=args.phase_seconds - LEAD_SECONDS - WINDOW_SECONDS,
                )
                load = Load(
                    bot.gateway_url, bot.gateway_secret, clock, args.sessions, args.think, args.timeout, args.seed
                )
                phases = asyncio.run(run_phases(stack, load, args))
                end = clock.now()
                bot.senders.update(load.senders.values())  # the launcher's Redis clean-up
                log(f"==> load stopped at {end:.1f} s: {len(load.requests)} requests; checking the histories")
                ensure_redis(saved_redis)
                ensure_postgres()
                time.sleep(3)  # turns a client gave up on may still be finishing
                events = read_events(bot.tracker_url, load.senders.values())
                history = check_histories(load.requests, load.senders, events)
            finally:
                ensure_redis(saved_redis)  # the clean-ups need both, and so does everyone else
                ensure_postgres()
    except KeyboardInterrupt:
        print("\n==> interrupted: every process this run started is stopped; no results written", file=sys.stderr)
        return 130
    finally:
        ensure_redis(saved_redis)
        ensure_postgres()
    results: dict[str, Any] = {
        "command": shlex.join(
            ["python", "-m", "benchmarks.load.faults", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_started_utc": clock.wall.isoformat(timespec="seconds"),
        **tree,
        "config": {
            "sessions": args.sessions,
            "think_s": args.think,
            "phase_seconds": args.phase_seconds,
            "lead_s": LEAD_SECONDS,
            "rasa_restart_delay_s": RASA_RESTART_DELAY,
            "window_s": WINDOW_SECONDS,
            "ok_share": OK_SHARE,
            "min_window_turns": MIN_WINDOW_TURNS,
            "timeout_s": args.timeout,
            "faults": args.faults,
            "replicas": 2,
            "lock_store": "atomic",
            "script": [str(s) for s in BOOKING_SCRIPT],
            "redis_argv": saved_redis,
            "llm": None
            if llm is None
            else {"endpoint": "local fake (hangs in llm-hang)", "calls": llm.calls, "hung_calls": llm.hung_calls},
        },
        "outcomes": OUTCOME_MEANING,
        "faults": [
            {
                **phase,
                **fault_numbers(
                    load.requests,
                    phase_start=phase["phase_start_s"],
                    fault_at=phase["fault_at_s"],
                    phase_end=phase["phase_end_s"],
                ),
                # The fallback chain's turns (the LLM's, when there is one) from the fault on.
                "fallback_step": segment(
                    [r for r in load.requests if r.text == FALLBACK_STEP], phase["fault_at_s"], phase["phase_end_s"]
                ),
            }
            for phase in phases
        ],
        "history": history,
        "totals": {
            "requests": len(load.requests),
            "turns": sum(1 for r in load.requests if r.is_turn),
            "by_outcome": dict(sorted(Counter(r.outcome for r in load.requests if r.is_turn).items())),
            "conversations": len(load.senders),
            "wall_s": round(end, 1),
        },
        "timeline": timeline(load.requests, end),
        "requests": [asdict(r) for r in load.requests],
    }
    write(results, args.out)
    log(f"==> done in {(time.monotonic() - started) / 60:.1f} min: {args.out}/results.json, table.md, timeline.png")
    for phase in results["faults"]:
        log(
            f"  {phase['fault']}: before/during/after {phase['before']['turns']}/{phase['during']['turns']}/"
            f"{phase['after']['turns']} turns; errors {fmt_counts(phase['whole_phase']['errors_by_status_code'])};"
            f" must be 0: {fmt_counts(phase['must_be_zero'])}; recovery {fmt_s(phase['recovery_s'])}"
        )
    log(f"  history: {history['violations']} violations ({fmt_counts(history['by_kind'])})")
    log(f"  only counted: {fmt_counts(history['noted'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
