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
  ``ACTION_METRICS_TOKEN`` (not exposed without one).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import sys
from collections.abc import Sequence

from prometheus_client import REGISTRY
from rasa_sdk.endpoint import create_app
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from tandem.metrics_http import serve_metrics
from tandem.settings import Settings, load_settings

logger = logging.getLogger("actions.server")

PROTECTED_PATHS = frozenset({"/webhook", "/actions"})
MIN_TOKEN_CHARS = 16


def _deny(status: int, code: str) -> HTTPResponse:
    return response.json({"error": code}, status=status)


def build_app(token: str, *, package: str = "actions") -> Sanic:
    """rasa-sdk's app for ``package``'s actions, behind the token check."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"ACTION_SERVER_TOKEN must have {MIN_TOKEN_CHARS}+ characters")
    executor = ActionExecutor()
    executor.register_package(package)
    app = create_app(executor, cors_origins=None)
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


def start_metrics(settings: Settings) -> None:
    """Expose the process's metrics when ``ACTION_METRICS_PORT`` is set, and only with a token."""
    if not settings.action_metrics_port:
        return
    token = settings.action_metrics_token.get_secret_value() if settings.action_metrics_token else ""
    if not token:
        logger.warning("ACTION_METRICS_PORT is set but ACTION_METRICS_TOKEN is not: metrics not exposed")
        return
    try:
        serve_metrics(settings.action_metrics_port, token=token, registry=REGISTRY)
    except (OSError, ValueError) as error:  # metrics are not worth failing the action server
        logger.warning("metrics not exposed on port %s: %s", settings.action_metrics_port, error)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="interface to bind (default ACTION_SERVER_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default ACTION_PORT, 5055)")
    args = parser.parse_args(argv)
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    token = settings.action_server_token.get_secret_value() if settings.action_server_token else ""
    if len(token) < MIN_TOKEN_CHARS:
        logger.error("ACTION_SERVER_TOKEN is not set (16+ characters): refusing to start an open action server")
        return 2
    host = args.host or settings.action_server_host
    port = args.port or settings.action_port
    app = build_app(token)
    start_metrics(settings)
    logger.info("action server on http://%s:%s (webhook needs the token)", host, port)
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
