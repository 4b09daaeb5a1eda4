"""The routes for operators and the page around the widget: liveness, readiness, metrics, demo page, widget files.

With ``GATEWAY_METRICS_TOKEN`` set (always in production) ``/metrics`` and the details of ``/readyz``
need ``Authorization: Bearer <token>``; a probe without the header still gets readiness's status code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tandem.gateway import schemas
from tandem.gateway.errors import GatewayError
from tandem.gateway.readiness import run_checks
from tandem.gateway.requests import bearer_matches
from tandem.gateway.state import GatewayState


def install_operations_routes(app: FastAPI, state: GatewayState, widget_dir: Path) -> None:
    """``/``, ``/widget/*``, ``/healthz``, ``/readyz`` and ``/metrics``."""
    settings = state.settings

    @app.get("/", include_in_schema=False)
    async def demo_page() -> FileResponse:
        return FileResponse(widget_dir / "demo.html", media_type="text/html; charset=utf-8")

    app.mount("/widget", StaticFiles(directory=widget_dir), name="widget")

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process answers.")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: Rasa, the action server, the database and Redis (when configured) answer.",
        description="With GATEWAY_METRICS_TOKEN set (always in production) the checks' details need "
        "'Authorization: Bearer <token>'; without the header: the status code and {\"status\"} only.",
        response_model=schemas.ReadyOut,
        responses={
            503: {"model": schemas.ReadyOut, "description": "A dependency is down"},
            401: {"model": schemas.ErrorOut, "description": "A wrong operations token"},
        },
    )
    async def readyz(request: Request) -> JSONResponse:
        # With GATEWAY_METRICS_TOKEN (always in production) the checks' details (which dependency is
        # down, latencies) need the token; anyone still gets the status code and {"status": ...}, which
        # is all a load balancer or an orchestrator's probe needs. A wrong token is a 401.
        detailed = True
        if settings.gateway_metrics_token is not None:
            authorization = request.headers.get("authorization")
            detailed = authorization is not None
            if detailed and not bearer_matches(authorization or "", settings.gateway_metrics_token.get_secret_value()):
                raise GatewayError(401, "unauthorized", "A metrics token is required.")
        ok, checks = await run_checks(state.readiness_checks, timeout=settings.gateway_check_timeout_seconds)
        body: dict[str, Any] = {"status": "ready" if ok else "not_ready"}
        if detailed:
            body["checks"] = checks
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics ('Authorization: Bearer <GATEWAY_METRICS_TOKEN>' when that is set).",
        response_class=PlainTextResponse,
        responses={401: {"model": schemas.ErrorOut, "description": "No or a wrong operations token"}},
    )
    async def metrics(request: Request) -> Response:
        if settings.gateway_metrics_token is not None:
            token = settings.gateway_metrics_token.get_secret_value()
            if not bearer_matches(request.headers.get("authorization", ""), token):
                raise GatewayError(401, "unauthorized", "A metrics token is required.")
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
