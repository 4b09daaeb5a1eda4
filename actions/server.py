"""The action server: rasa-sdk's webhook, on loopback by default and open to Rasa only.

``python -m rasa_sdk`` binds 0.0.0.0 and runs any action for anyone who posts a tracker, and every
action trusts that tracker (a made-up ``affirm`` after a made-up quote would cancel a booking). So
the project starts its action server with this module instead:

    python -m actions.server [--host 127.0.0.1] [--port 5055]

- ``POST /webhook`` and ``GET /actions`` need ``Authorization: Bearer <ACTION_SERVER_TOKEN>``
  (Rasa sends it: ``endpoints.yml`` → ``action_endpoint.headers``), compared in constant time;
- ``POST /webhook`` needs ``Content-Type: application/json``: a web page cannot send that across
  origins without a CORS preflight, which this server never grants (no CORS headers at all);
- ``GET /health`` stays open (it says only "ok");
- an error inside an action answers a generic 500 body, never the exception or the request;
- with ``ACTION_METRICS_PORT`` set, Prometheus metrics on 127.0.0.1:<port> for bearers of
  ``ACTION_METRICS_TOKEN`` (not exposed without one);
- logs are JSON lines (:mod:`tandem.logs`, as the gateway's); every line written during an action
  call carries the turn's ``correlation_id`` from the tracker's message metadata, and each call
  ends with one ``{"event": "action", "action", "outcome", "duration_ms"}`` line. No message text;
- with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, each call is a span ``action <name>`` (tandem/tracing.py)
  continuing the gateway's trace from the message metadata's ``traceparent``; rasa-sdk's own
  webhook span is switched off (it would record the sender id).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import NoOpTracerProvider, SpanKind
from prometheus_client import REGISTRY
from rasa_sdk.endpoint import create_app
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from tandem import tracing
from tandem.analytics import toolcalls
from tandem.analytics.outcomes import TOOL_CALLS_SLOT
from tandem.logs import configure_json_logging, correlation_id, plausible_correlation_id
from tandem.metrics_http import serve_metrics
from tandem.settings import ActionServerSettings

from .context import settings as action_settings

logger = logging.getLogger("actions.server")

PROTECTED_PATHS = frozenset({"/webhook", "/actions"})
MIN_TOKEN_CHARS = 16


def _deny(status: int, code: str) -> HTTPResponse:
    return response.json({"error": code}, status=status)


def call_metadata(action_call: Any) -> dict[str, Any] | None:
    """The metadata the gateway sent with the latest message (``tracker.latest_message.metadata``)."""
    tracker = action_call.get("tracker") if isinstance(action_call, dict) else None
    latest = tracker.get("latest_message") if isinstance(tracker, dict) else None
    metadata = latest.get("metadata") if isinstance(latest, dict) else None
    return metadata if isinstance(metadata, dict) else None


def call_correlation_id(action_call: Any) -> str | None:
    """The correlation id the gateway sent with the latest message (``tracker.latest_message.metadata``)."""
    metadata = call_metadata(action_call)
    return plausible_correlation_id(metadata.get("correlation_id")) if metadata is not None else None


def with_tool_calls(result: Any, calls: list[dict[str, Any]]) -> Any:
    """The action's response with one ``tool_calls`` slot event appended when it called tools
    (analytics: tool success and errors per turn, tandem/analytics/outcomes.py)."""
    events = result.get("events") if isinstance(result, dict) else getattr(result, "events", None)
    if calls and isinstance(events, list):  # rasa-sdk's ActionExecutorRunResult (or a plain dict)
        events.append({"event": "slot", "timestamp": None, "name": TOOL_CALLS_SLOT, "value": list(calls)})
    return result


class CorrelatedExecutor(ActionExecutor):
    """rasa-sdk's executor, with the call's correlation id in the logging context while it runs,
    the action's tool calls recorded in the tracker (:func:`with_tool_calls`), and the call as a
    span ``action <name>`` in the trace of the metadata's ``traceparent``."""

    async def run(self, action_call: Any, *args: Any, **kwargs: Any) -> Any:
        call_id = call_correlation_id(action_call)
        token = correlation_id.set(call_id)
        name = action_call.get("next_action") if isinstance(action_call, dict) else None
        name = name if isinstance(name, str) else None
        attributes = {"tandem.action": name or "unknown"}
        if call_id is not None:
            attributes[tracing.CORRELATION_ID] = call_id
        parent = tracing.extract(call_metadata(action_call))
        with tracing.start_span(
            f"action {name or 'unknown'}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        ) as span:
            started = time.perf_counter()
            outcome = "ok"
            try:
                with toolcalls.collecting() as calls:
                    result = await super().run(action_call, *args, **kwargs)
                return with_tool_calls(result, calls)
            except BaseException as error:
                outcome = type(error).__name__
                raise
            finally:
                tracing.set_outcome(span, outcome, failed=outcome != "ok")
                logger.info(
                    "action call",
                    extra={
                        "event": "action",
                        "action": name,
                        "outcome": outcome,
                        "duration_ms": int((time.perf_counter() - started) * 1000),
                    },
                )
                correlation_id.reset(token)


def build_app(token: str, *, package: str = "actions") -> Sanic:
    """rasa-sdk's app for ``package``'s actions, behind the token check."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"ACTION_SERVER_TOKEN must have {MIN_TOKEN_CHARS}+ characters")
    executor = CorrelatedExecutor()
    executor.register_package(package)
    app = create_app(executor, cors_origins=None)
    # rasa-sdk's webhook span would use the global tracer provider and record the sender id (a
    # conversation id); the executor's span (CorrelatedExecutor) is the one of an action call.
    app.ctx.tracer_provider = NoOpTracerProvider()
    expected = f"Bearer {token}".encode()

    @app.on_request
    async def authenticate(request: Request) -> HTTPResponse | None:
        if request.path not in PROTECTED_PATHS:
            return None
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            return _deny(401, "unauthorized")
        if request.method == "POST":
            content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return _deny(415, "json_required")
        return None

    # rasa-sdk registered a catch-all handler that echoes the exception and the whole request
    # (trackers hold personal data); replace it.
    app.error_handler.cached_handlers.pop((Exception, None), None)

    @app.exception(Exception)
    async def failed(request: Request, exception: Exception) -> HTTPResponse:
        logger.error("action call failed: %s", type(exception).__name__, exc_info=exception)
        return _deny(500, "action_failed")

    return app


def start_metrics(settings: ActionServerSettings) -> None:
    """Expose the process's metrics when ``ACTION_METRICS_PORT`` is set, and only with a token."""
    if not settings.action_metrics_port:
        return
    token = settings.action_metrics_token.get_secret_value() if settings.action_metrics_token else ""
    if not token:
        logger.warning("ACTION_METRICS_PORT is set but ACTION_METRICS_TOKEN is not: metrics not exposed")
        return
    try:
        serve_metrics(settings.action_metrics_port, token=token, registry=REGISTRY, host=settings.action_metrics_host)
    except (OSError, ValueError) as error:  # metrics are not worth failing the action server
        logger.warning("metrics not exposed on port %s: %s", settings.action_metrics_port, error)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="interface to bind (default ACTION_SERVER_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default ACTION_PORT, 5055)")
    args = parser.parse_args(argv)
    loaded = action_settings()  # the process's settings, the same the toolbox and the chain use
    settings = loaded.server
    configure_json_logging(loaded.log.log_level)
    logging.captureWarnings(True)  # rasa-sdk's version warning, too, as a JSON line
    token = settings.action_server_token.get_secret_value() if settings.action_server_token else ""
    if len(token) < MIN_TOKEN_CHARS:
        logger.error("ACTION_SERVER_TOKEN is not set (16+ characters): refusing to start an open action server")
        return 2
    host = args.host or settings.action_server_host
    port = args.port or settings.action_port
    # Spans by OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; else nothing is installed (no-ops).
    tracer_provider = tracing.configure_tracing(tracing.ACTION_SERVICE, loaded.tracing)
    app = build_app(token)
    start_metrics(settings)
    logger.info("action server on http://%s:%s (webhook needs the token)", host, port)
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)
    if tracer_provider is not None:
        tracer_provider.shutdown()  # the last spans, bounded by the export timeout
    return 0


if __name__ == "__main__":
    sys.exit(main())
