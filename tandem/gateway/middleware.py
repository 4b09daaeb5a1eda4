"""What wraps every request: observation (metrics, the request log line, no stack trace for visitors),
security headers, CORS, trusted proxy headers, and the handlers that give every error the API's shape.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tandem.gateway.errors import GatewayError, UpstreamError
from tandem.gateway.schemas import API
from tandem.gateway.state import GatewayState
from tandem.settings import GatewaySettings

# The demo page and the widget's own files: no inline script or style, nothing from other origins
# except images (bots may send https images) and the configured API origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def route_of(request: Request) -> str:
    """The matched route's template (the metrics label): never the raw path, which the client chooses."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/widget" if request.url.path.startswith("/widget/") else "unmatched"


def security_headers(response: Response, request: Request, settings: GatewaySettings) -> None:
    """Add the security headers ``response`` does not set itself (pages, widget files and API differ)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if settings.gateway_cookie_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.url.path.startswith("/widget/"):
        # Other sites embed the widget's script and stylesheet.
        headers["Cross-Origin-Resource-Policy"] = "cross-origin"
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
    elif response.headers.get("content-type", "").startswith("text/html"):
        headers.setdefault("Content-Security-Policy", PAGE_CSP)
        headers.setdefault("X-Frame-Options", "DENY")
    else:
        headers.setdefault("Content-Security-Policy", API_CSP)
        headers.setdefault("X-Frame-Options", "DENY")
    if request.url.path.startswith(API):
        headers.setdefault("Cache-Control", "no-store")


def install_middleware(app: FastAPI, state: GatewayState) -> None:
    """Observation innermost, then CORS (when origins are allowed), then proxy headers outermost."""
    settings = state.settings

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        except Exception:
            # A bug must not show a stack trace to the visitor; the log keeps it.
            state.log.exception("unhandled error", extra={"event": "unhandled_error", "route": route_of(request)})
            response = GatewayError(
                500, "internal_error", "Something went wrong on our side. Please try again."
            ).response()
        elapsed = time.perf_counter() - started
        route = route_of(request)
        state.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        state.metrics.latency.labels(route).observe(elapsed)
        security_headers(response, request, settings)
        if route not in ("/healthz", "/metrics", "/widget"):
            state.log.info(
                "request",
                extra={
                    "event": "request",
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(elapsed * 1000, 1),
                    "correlation_id": response.headers.get("X-Correlation-Id"),
                },
            )
        return response

    origins = settings.gateway_allowed_origin_list
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Content-Type", "Authorization"],
            expose_headers=["Retry-After", "X-Correlation-Id"],
            max_age=600,
        )
    proxies = settings.gateway_trusted_proxy_list
    if proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)


def install_error_handlers(app: FastAPI, state: GatewayState) -> None:
    """Typed errors and Starlette's own (404, 405) answer in the one error shape, counted by reason."""

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        state.metrics.rejections.labels(exc.reason).inc()
        if isinstance(exc, UpstreamError):
            state.metrics.upstream_errors.labels(exc.kind).inc()
        state.log.info("rejected", extra={"event": "rejected", "code": exc.code, "status": exc.status})
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A path or query parameter of the wrong type (``/agent/api/handoffs/abc``, ``?after=-1``):
        # the API's one error shape, never FastAPI's own body with the input echoed back.
        state.metrics.rejections.labels("invalid_parameters").inc()
        return GatewayError(400, "invalid_parameters", "A parameter of the request is missing or invalid.").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, "The request failed.")
        return GatewayError(exc.status_code, code, message).response(dict(exc.headers or {}))
