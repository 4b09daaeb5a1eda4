"""`make run` as a user starts it: every server it starts listens on loopback only, the internal
ports refuse callers without their tokens, and a visitor's turn still goes all the way through
(gateway → Rasa's gateway channel → action server, each hop authenticated), and the turn can be
followed by its correlation id through the gateway's, the action server's (to the tool) and the
analytics consumer's logs (make run streams Rasa's events to RabbitMQ when EVENT_BROKER_URL is set)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.security.listening import is_loopback, listening_of
from tests.stack import AMQP_URL, MODEL, ROOT, delete_queue, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    if not MODEL.exists():
        pytest.fail(f"no trained model at {MODEL}: run `make train` (make test does it)")
    work = tmp_path_factory.mktemp("make-run")
    ports = {
        name: str(free_port())
        for name in ("RASA_PORT", "ACTION_PORT", "GATEWAY_PORT", "ACTION_METRICS_PORT", "PROCESS_METRICS_PORT")
    }
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LLM_MODEL", "LLM_BASE_URL")},
        **ports,
        "DATABASE_URL": f"sqlite:///{work / 'tandem.db'}",
        "TRACKER_DB_URL": f"sqlite:///{work / 'tracker.db'}",
        "ACTION_SERVER_URL": f"http://127.0.0.1:{ports['ACTION_PORT']}/webhook",
        "EXPIRE_HOLDS_EVERY_SECONDS": "5",
        # A token may start with "-" (token_urlsafe did, and `--auth-token <token>` then broke make run).
        "RASA_API_TOKEN": "-" + uuid.uuid4().hex,
        "EVENT_BROKER_URL": AMQP_URL,
        "EVENT_BROKER_QUEUE": f"tandem-make-run-{uuid.uuid4().hex[:10]}",
    }
    log = work / "make-run.log"
    process = subprocess.Popen(
        ["bash", "scripts/run.sh"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    gateway = f"http://127.0.0.1:{ports['GATEWAY_PORT']}"
    try:
        _wait_until_running(process, log)
    except BaseException:
        _stop(process)
        raise
    env["GATEWAY_URL"] = gateway
    env["LOG"] = str(log)
    yield process, env
    _stop(process)
    delete_queue(env["EVENT_BROKER_QUEUE"])


def _wait_until_running(process: subprocess.Popen[bytes], log: Path) -> None:
    # Long enough for a retraining on a loaded machine (CI trains before the tests: none then).
    deadline = time.monotonic() + 900
    while True:
        if process.poll() is not None:
            pytest.fail(f"make run exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if "Andaman Air assistant is running." in log.read_text():
            break
        if time.monotonic() > deadline:
            pytest.fail(f"make run did not come up:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the whole process group, as in a terminal; then make sure nothing is left."""
    with contextlib.suppress(ProcessLookupError):  # make run may have exited already
        os.killpg(process.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def test_nothing_listens_on_a_non_loopback_address(make_run: tuple[subprocess.Popen[bytes], dict[str, str]]) -> None:
    process, env = make_run
    sockets = listening_of(process.pid)
    ports = {int(env[name]) for name in ("RASA_PORT", "ACTION_PORT", "GATEWAY_PORT", "ACTION_METRICS_PORT")}
    assert ports <= {port for _, _, port in sockets}, (ports, sockets)
    exposed = [s for s in sockets if not is_loopback(s[1])]
    assert not exposed, exposed


def test_internal_ports_refuse_callers_without_tokens(make_run: tuple[subprocess.Popen[bytes], dict[str, str]]) -> None:
    _, env = make_run
    rasa = f"http://127.0.0.1:{env['RASA_PORT']}"
    actions = f"http://127.0.0.1:{env['ACTION_PORT']}"
    assert httpx.post(f"{rasa}/webhooks/gateway/webhook", json={"sender": "x", "message": "hi"}).status_code == 401
    assert httpx.post(f"{rasa}/webhooks/rest/webhook", json={"sender": "x", "message": "hi"}).status_code == 404
    assert httpx.get(f"{rasa}/conversations/x/tracker").status_code == 401
    assert httpx.post(f"{actions}/webhook", json={"next_action": "action_get_booking"}).status_code == 401
    assert httpx.get(f"http://127.0.0.1:{env['ACTION_METRICS_PORT']}/metrics").status_code == 401
    assert httpx.get(f"http://127.0.0.1:{env['PROCESS_METRICS_PORT']}/metrics").status_code == 401
    # The generated secrets were written to a private file and never printed.
    secrets_file = ROOT / "var" / "secrets.env"
    assert secrets_file.stat().st_mode & 0o077 == 0
    output = Path(env["LOG"]).read_text()
    for line in secrets_file.read_text().splitlines():
        assert line.split("=", 1)[1] not in output


def test_a_visitor_turn_goes_through_every_hop(make_run: tuple[subprocess.Popen[bytes], dict[str, str]]) -> None:
    _, env = make_run
    gateway = env["GATEWAY_URL"]
    session = httpx.post(f"{gateway}/api/v1/session", json={"mode": "bearer"}, timeout=10)
    assert session.status_code == 200, session.text
    headers = {"Authorization": f"Bearer {session.json()['token']}"}
    # A flight status turn runs a custom action (the action server, over its token) and reads the DB.
    reply = httpx.post(
        f"{gateway}/api/v1/messages", json={"text": "is AN204 on time today?"}, headers=headers, timeout=60
    )
    assert reply.status_code == 200, reply.text
    text = " ".join(m.get("text") or "" for m in reply.json()["messages"])
    assert "AN204" in text, text


def _lines(path: Path, correlation: str) -> list[dict[str, Any]]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if correlation in line:
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def test_one_turn_is_followed_by_its_correlation_id_in_every_log(
    make_run: tuple[subprocess.Popen[bytes], dict[str, str]],
) -> None:
    _, env = make_run
    gateway = env["GATEWAY_URL"]
    session = httpx.post(f"{gateway}/api/v1/session", json={"mode": "bearer"}, timeout=10)
    headers = {"Authorization": f"Bearer {session.json()['token']}"}
    reply = httpx.post(
        f"{gateway}/api/v1/messages", json={"text": "is AN305 on time today?"}, headers=headers, timeout=60
    )
    assert reply.status_code == 200, reply.text
    correlation = reply.headers["X-Correlation-Id"]
    logs = ROOT / "var" / "log"
    deadline = time.monotonic() + 60
    while not _lines(logs / "analytics.log", correlation) and time.monotonic() < deadline:
        time.sleep(0.5)  # the consumer takes what arrived within a second as one batch
    gateway_lines = _lines(logs / "gateway.log", correlation)
    action_lines = _lines(logs / "actions.log", correlation)
    analytics_lines = _lines(logs / "analytics.log", correlation)
    assert any(line.get("event") == "turn" for line in gateway_lines), gateway_lines
    assert {"action_flight_status"} <= {line.get("action") for line in action_lines if line.get("event") == "action"}
    [tool] = [line for line in action_lines if line.get("event") == "tool"]
    assert (tool["tool"], tool["outcome"], tool["correlation_id"]) == ("flight_status", "ok", correlation)
    assert [line.get("event") for line in analytics_lines] == ["analytics_turn"], analytics_lines
    # No message text in any of them.
    for line in (*gateway_lines, *action_lines, *analytics_lines):
        assert "on time today" not in json.dumps(line)


def test_the_rasa_process_is_measured_from_proc(make_run: tuple[subprocess.Popen[bytes], dict[str, str]]) -> None:
    _, env = make_run
    secrets = dict(line.split("=", 1) for line in (ROOT / "var" / "secrets.env").read_text().splitlines())
    token = os.environ.get("PROCESS_METRICS_TOKEN") or secrets["PROCESS_METRICS_TOKEN"]
    url = f"http://127.0.0.1:{env['PROCESS_METRICS_PORT']}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            text = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).text
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the process exporter did not answer"
            time.sleep(0.5)
    samples = {}
    for line in text.splitlines():
        if line.startswith("tandem_process_") and "{" in line:
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['tandem_process_up{process="rasa-0"}'] == 1.0
    assert samples['tandem_process_up{process="actions-0"}'] == 1.0
    # A loaded Rasa model holds hundreds of MiB; the action server tens.
    assert samples['tandem_process_resident_memory_bytes{process="rasa-0"}'] > 300 * 2**20
    assert samples['tandem_process_cpu_seconds_total{process="rasa-0"}'] > 1.0
