"""Tracing off without an endpoint, and a real OTLP/HTTP export with one, each in a process of its
own (OpenTelemetry's global tracer provider can be set once per process)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tandem import tracing
from tandem.settings import TracingSettings
from tests.stack import ROOT, free_port, start_action_server, stop, wait_until_up
from tests.unit.test_action_logs import SECRET_TEXT, action_call


def _env(**values: str) -> dict[str, str]:
    """A clean environment for a child process: nothing of the developer's OTEL_* or .env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "FASTAPI_OTEL"))}
    env.update({"PYTHONPATH": str(ROOT), **values})
    return env


def test_without_an_endpoint_nothing_is_installed_in_process() -> None:
    before = trace.get_tracer_provider()
    assert tracing.configure_tracing("tandem-gateway", TracingSettings(_env_file=None)) is None  # type: ignore[call-arg]
    assert trace.get_tracer_provider() is before


NO_ENDPOINT = """
import asyncio, json
from opentelemetry import trace
from rasa_sdk import Action
from actions.server import CorrelatedExecutor
from tandem import tracing
from tandem.settings import load_action_settings
from tests.unit.test_action_logs import action_call

class Quiet(Action):
    def name(self): return "action_quiet"
    async def run(self, dispatcher, tracker, domain): return []

settings = load_action_settings(_env_file=None)
result = {"provider": tracing.configure_tracing("tandem-actions", settings.tracing)}
result["global"] = type(trace.get_tracer_provider()).__name__
metadata = {}
with tracing.start_span("gateway.turn") as span:
    tracing.inject(metadata)
    result["recording"] = span.is_recording()
result["metadata"] = metadata
executor = CorrelatedExecutor()
executor.register_action(Quiet)
parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
events = asyncio.run(executor.run(action_call("action_quiet", {"traceparent": parent}))).events
result["events"] = events
print(json.dumps(result))
"""


def test_without_an_endpoint_spans_are_no_ops_and_the_code_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_ENDPOINT], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {
        "provider": None,
        "global": "ProxyTracerProvider",  # OpenTelemetry's placeholder: no provider was installed
        "recording": False,
        "metadata": {},  # no traceparent without a span worth continuing
        "events": [],
    }


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@pytest.fixture
def collector() -> Iterator[tuple[str, queue.Queue[Received]]]:
    """A tiny OTLP/HTTP receiver on 127.0.0.1: every request lands in the queue."""
    received: queue.Queue[Received] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.put(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        value = item.value
        out[item.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return out


@pytest.mark.timeout(120)
def test_the_action_server_exports_its_spans_by_otlp_http(
    db: Any, tmp_path: Path, collector: tuple[str, queue.Queue[Received]]
) -> None:
    """``python -m actions.server`` with OTEL_EXPORTER_OTLP_ENDPOINT: a webhook call carrying the
    gateway's traceparent reaches the receiver as ``action …`` (child of that traceparent) and its
    ``tool …``; rasa-sdk's own webhook span (which records the sender id) is not there."""
    endpoint, received = collector
    token = "t0k3n-" + uuid.uuid4().hex
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    port = free_port()
    log = tmp_path / "actions.log"
    env = _env(
        DATABASE_URL=db.settings.database.database_url,
        ACTION_SERVER_TOKEN=token,
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20collector-key",
    )
    process = start_action_server(env, port, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process, log, 60)
        metadata = {"channel": "website", "correlation_id": "turn-otlp", "traceparent": f"00-{trace_id}-{parent_id}-01"}
        call = action_call("action_record_rating", metadata)
        call["tracker"]["slots"] = {"rating": 5.0}
        response = httpx.post(f"{url}/webhook", json=call, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 200, response.text
        # The batch goes out within its schedule (5 s); a hanging export would fail here, bounded.
        first = received.get(timeout=30)
    finally:
        stop(process)
    batches = [first]
    while not received.empty():
        batches.append(received.get_nowait())
    assert first.path == "/v1/traces"
    assert first.headers["content-type"] == "application/x-protobuf"
    assert first.headers["authorization"] == "Bearer collector-key"
    spans: dict[str, Any] = {}
    services = set()
    for batch in batches:
        request = ExportTraceServiceRequest.FromString(batch.body)
        for resource_spans in request.resource_spans:
            services.add(_attributes(resource_spans.resource.attributes)["service.name"])
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans[span.name] = span
    assert services == {"tandem-actions"}
    action = spans["action action_record_rating"]
    assert action.trace_id.hex() == trace_id and action.parent_span_id.hex() == parent_id
    assert _attributes(action.attributes) == {
        "tandem.action": "action_record_rating",
        "tandem.correlation_id": "turn-otlp",
        "tandem.outcome": "ok",
    }
    tools = [s for name, s in spans.items() if name.startswith("tool ")]
    assert tools and all(t.parent_span_id == action.span_id and t.trace_id == action.trace_id for t in tools)
    assert "create_app.webhook" not in spans  # rasa-sdk's span, with the sender id, stays off
    raw = b"".join(batch.body for batch in batches)
    assert b"conv-logs" not in raw and SECRET_TEXT.encode() not in raw and b"X1234567" not in raw
