"""Prometheus metrics over HTTP for a process that has no web framework of its own to serve them.

``prometheus_client.start_http_server`` answers anyone who reaches the port. This serves the same
text on loopback (by default) and only to callers that send ``Authorization: Bearer <token>``,
compared in constant time; everybody else gets 401 and learns nothing.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

MIN_TOKEN_CHARS = 16

StartResponse = Callable[..., Any]


def guarded(app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], token: str) -> Callable[..., Any]:
    """Wrap a WSGI app so that only bearers of ``token`` reach it."""
    expected = f"Bearer {token}".encode()

    def guarded_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        given = str(environ.get("HTTP_AUTHORIZATION", "")).encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            start_response(
                "401 Unauthorized", [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")]
            )
            return [b"a metrics token is required\n"]
        return app(environ, start_response)

    return guarded_app


def serve_metrics(port: int, *, token: str, registry: CollectorRegistry, host: str = "127.0.0.1") -> WSGIServer:
    """Serve ``registry`` at ``http://host:port/metrics`` in a daemon thread; returns the server
    (``shutdown()`` stops it). Raises ``ValueError`` for a missing or short token, ``OSError`` when
    the port is taken."""
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"the metrics token must have {MIN_TOKEN_CHARS}+ characters")
    app = guarded(make_wsgi_app(registry), token)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
