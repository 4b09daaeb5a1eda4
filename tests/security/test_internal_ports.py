"""Finding 1: the action server was open (0.0.0.0, no authentication) and trusted any tracker;
Rasa's REST channel trusted any sender and metadata; the metrics port answered anyone.

Now: the action server (actions/server.py) binds loopback and runs actions only for bearers of
ACTION_SERVER_TOKEN with a JSON body; Rasa listens only to the gateway's channel (token); the
action server's metrics need ACTION_METRICS_TOKEN.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select

from tandem.db.models import AuditLog
from tandem.metrics_http import serve_metrics
from tests.security.listening import is_loopback, listening_of
from tests.stack import ROOT, free_port, start_action_server, stop, wait_until_up

TOKEN = "t0k3n-" + uuid.uuid4().hex


def forged_call(action: str, slots: dict[str, Any]) -> dict[str, Any]:
    """What an attacker posts: a made-up tracker asking for a booking with a guessed surname."""
    return {
        "next_action": action,
        "sender_id": "attacker",
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": "attacker",
            "slots": slots,
            "latest_message": {"text": "yes", "intent": {"name": "affirm", "confidence": 1.0}, "entities": []},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


@pytest.fixture
def action_server(db: Any, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Any]]:
    port = free_port()
    log = tmp_path / "actions.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db.settings.database.database_url,
        "ACTION_SERVER_TOKEN": TOKEN,
    }
    process = start_action_server(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process, log, 60)
    except BaseException:
        stop(process)
        raise
    yield url, process, db
    stop(process)


def audit_rows(db: Any) -> int:
    with db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(AuditLog)) or 0)


def test_a_forged_tracker_without_the_token_runs_nothing(action_server: Any) -> None:
    url, _, db = action_server
    call = forged_call("action_get_booking", {"booking_ref": "AB12CD", "last_name": "Smith"})
    before = audit_rows(db)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"X-Token": TOKEN}):
        response = httpx.post(f"{url}/webhook", json=call, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert "AB12CD" not in response.text
    # The list of actions is not public either.
    assert httpx.get(f"{url}/actions", timeout=10).status_code == 401
    assert audit_rows(db) == before  # no tool ran


def test_a_text_plain_post_from_a_web_page_is_refused(action_server: Any) -> None:
    """Sanic parses a text/plain body as JSON; a cross-site form/fetch can send text/plain without a
    preflight. With or without the token, only application/json runs."""
    url, _, db = action_server
    import json

    body = json.dumps(forged_call("action_get_booking", {"booking_ref": "AB12CD", "last_name": "Smith"}))
    no_token = httpx.post(f"{url}/webhook", content=body, headers={"Content-Type": "text/plain"}, timeout=10)
    assert no_token.status_code == 401
    with_token = httpx.post(
        f"{url}/webhook",
        content=body,
        headers={"Content-Type": "text/plain", "Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert with_token.status_code == 415
    assert "access-control-allow-origin" not in {k.lower() for k in with_token.headers}
    assert audit_rows(db) == 0


def test_rasa_with_the_token_is_served(action_server: Any) -> None:
    url, _, db = action_server
    call = forged_call("action_get_booking", {"booking_ref": "AB12CD", "last_name": "Smith"})
    response = httpx.post(f"{url}/webhook", json=call, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert "AB12CD" in response.text  # the booking's details: the token holder is trusted
    assert audit_rows(db) == 1


def test_the_action_server_binds_loopback_by_default(action_server: Any) -> None:
    url, process, _ = action_server
    port = int(url.rsplit(":", 1)[1])
    sockets = [(address, p) for _, address, p in listening_of(process.pid) if p == port]
    assert sockets, "the action server's socket was not found"
    assert all(is_loopback(address) for address, _ in sockets), sockets


def test_an_action_error_does_not_echo_the_request(action_server: Any) -> None:
    url, _, _ = action_server
    call = forged_call("action_get_booking", {"booking_ref": "AB12CD", "last_name": "Smith"})
    call["tracker"] = "Smith's tracker, not an object"  # makes rasa-sdk crash while reading it
    response = httpx.post(f"{url}/webhook", json=call, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 500
    assert response.json() == {"error": "action_failed"}


def test_the_action_server_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "actions.server", "--port", str(free_port())],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "ACTION_SERVER_TOKEN" in run.stderr


def test_metrics_need_their_token() -> None:
    registry = CollectorRegistry()
    Counter("tandem_probe_total", "probe", registry=registry).inc()
    port = free_port()
    server = serve_metrics(port, token="m" * 20, registry=registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, headers={"Authorization": "Bearer " + "m" * 19}, timeout=5).status_code == 401
        ok = httpx.get(url, headers={"Authorization": "Bearer " + "m" * 20}, timeout=5)
        assert ok.status_code == 200 and "tandem_probe_total 1.0" in ok.text
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
    with pytest.raises(ValueError):
        serve_metrics(free_port(), token="short", registry=registry)


def test_make_run_and_make_shell_start_every_server_on_loopback() -> None:
    """The commands in scripts/run.sh name their interface (rasa-sdk and rasa default to 0.0.0.0)."""
    script = (ROOT / "scripts/run.sh").read_text()
    assert "-m rasa_sdk" not in script
    assert "-m actions.server --host 127.0.0.1" in script
    rasa_commands = [line for line in script.replace("\\\n", " ").splitlines() if ".venv-rasa/bin/rasa " in line]
    assert {"run", "shell"} <= {line.split(".venv-rasa/bin/rasa ")[1].split()[0] for line in rasa_commands}
    assert all("--interface 127.0.0.1" in line for line in rasa_commands), rasa_commands
    assert "-m tandem.gateway --host 127.0.0.1" in script
    # Generated secrets are kept in a private file, never printed.
    assert 'echo "==> RASA_API_TOKEN was not set; generated one for this run: $RASA_API_TOKEN"' not in script
    assert "umask 077" in script
