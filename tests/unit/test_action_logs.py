"""The action server's logs (issue 11, item 2): JSON lines that carry the turn's correlation id
(the gateway's opaque turn id, from the message metadata), never the text of a message."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.server import CorrelatedExecutor
from tandem.logs import JsonFormatter, configure_json_logging, correlation_id
from tests.stack import ROOT, free_port, start_action_server, stop, wait_until_up

TOKEN = "t0k3n-" + uuid.uuid4().hex
SECRET_TEXT = "my passport number is X1234567 and my name is Somchai"


class LoggingAction(Action):
    def name(self) -> str:
        return "action_log_something"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[Any]:
        logging.getLogger("actions.test").info("inside the action")
        return []


def action_call(action: str, metadata: dict[str, Any] | None, text: str = SECRET_TEXT) -> dict[str, Any]:
    latest = {"text": text, "intent": {"name": "greet", "confidence": 1.0}, "entities": []}
    if metadata is not None:
        latest["metadata"] = metadata
    return {
        "next_action": action,
        "sender_id": "conv-logs",
        "version": "3.6.21",
        "domain": {},
        "tracker": {
            "sender_id": "conv-logs",
            "slots": {},
            "latest_message": latest,
            "events": [{"event": "user", "text": text, "parse_data": latest, "metadata": metadata or {}}],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
    }


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_json_logging("INFO", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_every_line_of_an_action_call_carries_its_correlation_id(captured: io.StringIO) -> None:
    executor = CorrelatedExecutor()
    executor.register_action(LoggingAction)
    await executor.run(action_call("action_log_something", {"channel": "website", "correlation_id": "turn-42"}))
    logging.getLogger("actions.test").info("after the call")
    await executor.run(action_call("action_log_something", None))
    entries = lines(captured)
    inside = [e for e in entries if e["message"] == "inside the action"]
    assert [e.get("correlation_id") for e in inside] == ["turn-42", None]
    done = [e for e in entries if e.get("event") == "action"]
    assert [(e["action"], e.get("correlation_id"), e["outcome"]) for e in done] == [
        ("action_log_something", "turn-42", "ok"),
        ("action_log_something", None, "ok"),
    ]
    after = next(e for e in entries if e["message"] == "after the call")
    assert "correlation_id" not in after  # reset when the call ends
    assert correlation_id.get() is None
    assert SECRET_TEXT not in captured.getvalue() and "X1234567" not in captured.getvalue()


async def test_an_implausible_correlation_id_is_not_logged(captured: io.StringIO) -> None:
    executor = CorrelatedExecutor()
    executor.register_action(LoggingAction)
    await executor.run(action_call("action_log_something", {"correlation_id": "x\n" * 40}))
    inside = next(e for e in lines(captured) if e["message"] == "inside the action")
    assert inside.get("correlation_id") is None


def test_an_explicit_correlation_id_wins_over_the_context() -> None:
    token = correlation_id.set("from-context")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
        record.correlation_id = "explicit"
        from tandem.logs import CorrelationFilter

        CorrelationFilter().filter(record)
        assert json.loads(JsonFormatter().format(record))["correlation_id"] == "explicit"
    finally:
        correlation_id.reset(token)


def test_the_action_server_process_logs_json_lines(db: Any, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "actions.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db.settings.database.database_url,
        "ACTION_SERVER_TOKEN": TOKEN,
        "LOG_LEVEL": "INFO",
    }
    process = start_action_server(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process, log, 60)
        call = action_call("action_record_rating", {"channel": "website", "correlation_id": "turn-from-gateway"})
        call["tracker"]["slots"] = {"rating": 5.0}
        response = httpx.post(f"{url}/webhook", json=call, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        assert response.status_code == 200, response.text
    finally:
        stop(process)
    text = log.read_text()
    entries = []
    for line in text.splitlines():  # every line is JSON
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"not a JSON line: {line!r}")
    assert any(e.get("message", "").startswith("action server on") for e in entries)
    call_lines = [e for e in entries if e.get("correlation_id") == "turn-from-gateway"]
    assert any(e.get("event") == "action" and e.get("action") == "action_record_rating" for e in call_lines)
    assert SECRET_TEXT not in text and "X1234567" not in text and "Somchai" not in text
