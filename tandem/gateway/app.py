"""The gateway's app factory: routes, middleware and the per-app state they share."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from tandem.db.engine import create_engine_from_settings
from tandem.gateway import schemas
from tandem.gateway.errors import GatewayError, UpstreamError
from tandem.gateway.logs import LOGGER_NAME
from tandem.gateway.messages import bot_message, history_from_tracker, offered_payloads, turn_from_tracker
from tandem.gateway.metrics import GatewayMetrics
from tandem.gateway.offers import MemoryOfferStore, OfferStore, RedisOfferStore
from tandem.gateway.ratelimit import RateLimits, storage_for
from tandem.gateway.readiness import Check, database_check, rasa_checks, redis_check, run_checks
from tandem.gateway.revocations import MemoryRevocationStore, RedisRevocationStore, RevocationStore
from tandem.gateway.sessions import COOKIE_NAME, Session, SessionCodec
from tandem.gateway.turns import (
    RASA_LOCK_SECONDS,
    MemoryTurnStore,
    RedisTurnStore,
    TurnRecord,
    TurnStore,
    fingerprint,
)
from tandem.gateway.upstream import RasaClient
from tandem.gateway.validation import Incoming, decode_json_body, parse_message
from tandem.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WIDGET_DIR = ROOT / "widget"
API = "/api/v1"

# The demo page and the widget's own files: no inline script or style, nothing from other origins
# except images (bots may send https images) and the configured API origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'"


@dataclass
class GatewayState:
    """Everything the routes share; one per app, built by :func:`create_app`."""

    settings: Settings
    codec: SessionCodec
    limits: RateLimits
    offers: OfferStore
    revocations: RevocationStore
    turns: TurnStore
    rasa: RasaClient
    metrics: GatewayMetrics
    http: httpx.AsyncClient
    owns_http: bool
    redis: aioredis.Redis | None
    log: logging.Logger
    engine: Engine | None = None
    readiness_checks: dict[str, Check] = field(default_factory=dict)

    def database_engine(self) -> Engine:
        # Built on first use so that creating the app touches nothing (and a stopped database
        # only fails /readyz).
        if self.engine is None:
            self.engine = create_engine_from_settings(self.settings, pool_pre_ping=True)
        return self.engine


def _secret(settings: Settings, log: logging.Logger) -> bytes:
    if settings.gateway_secret is not None and settings.gateway_secret.get_secret_value():
        return settings.gateway_secret.get_secret_value().encode("utf-8")
    # Production refuses this in Settings validation; in development sessions just end with the process.
    log.warning(
        "GATEWAY_SECRET is not set: using an ephemeral secret, visitors' sessions end when the gateway stops",
        extra={"event": "ephemeral_secret"},
    )
    return secrets.token_bytes(32)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _route_of(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return "/widget" if request.url.path.startswith("/widget/") else "unmatched"


def create_app(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
    widget_dir: Path | None = None,
) -> FastAPI:
    """Build the gateway for ``settings``. No I/O happens here: connections open on first use.

    ``http_client`` replaces the client used to reach Rasa and the action server (tests).
    """
    log = logging.getLogger(LOGGER_NAME)
    secret = _secret(settings, log)
    ttl = settings.gateway_session_ttl_seconds
    redis_client = (
        aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        if settings.redis_url
        else None
    )
    http = http_client or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.rasa_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    token = settings.rasa_api_token.get_secret_value() if settings.rasa_api_token else None
    rasa = RasaClient(
        http,
        rasa_url=settings.rasa_url,
        api_token=token,
        turn_timeout=settings.rasa_timeout_seconds,
        check_timeout=settings.gateway_check_timeout_seconds,
    )
    state = GatewayState(
        settings=settings,
        codec=SessionCodec(secret, ttl_seconds=ttl),
        limits=RateLimits(
            storage_for(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds),
            {
                "session": settings.gateway_rate_limit_session,
                "address": settings.gateway_rate_limit_address,
                "new_session": settings.gateway_rate_limit_new_session,
            },
        ),
        offers=RedisOfferStore(redis_client, ttl_seconds=ttl) if redis_client else MemoryOfferStore(ttl_seconds=ttl),
        revocations=RedisRevocationStore(redis_client) if redis_client else MemoryRevocationStore(),
        turns=RedisTurnStore(redis_client) if redis_client else MemoryTurnStore(),
        rasa=rasa,
        metrics=GatewayMetrics(),
        http=http,
        owns_http=http_client is None,
        redis=redis_client,
        log=log,
    )
    state.readiness_checks = {
        **rasa_checks(rasa, settings.action_server_url),
        "database": database_check(state.database_engine),
        **({"redis": redis_check(redis_client)} if redis_client else {}),
    }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if state.owns_http:
            await state.http.aclose()
        if state.redis is not None:
            await state.redis.aclose()
        if state.engine is not None:
            state.engine.dispose()

    app = FastAPI(
        title="tandem website gateway",
        version="1.0.0",
        description=(
            "The public entry of the website channel: anonymous signed sessions, validated and rate-limited "
            "messages forwarded to Rasa's gateway channel, the conversation's history. Errors always have the "
            'shape {"error": {"code", "message", "retry_after"}}.'
        ),
        # Swagger UI needs inline script and a CDN, which the CSP forbids; the description is /openapi.json.
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.gateway = state
    _install_middleware(app, state)
    _install_routes(app, state, widget_dir or WIDGET_DIR)
    return app


def _security_headers(response: Response, request: Request, settings: Settings) -> None:
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


def _install_middleware(app: FastAPI, state: GatewayState) -> None:
    settings = state.settings

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        except Exception:
            # A bug must not show a stack trace to the visitor; the log keeps it.
            state.log.exception("unhandled error", extra={"event": "unhandled_error", "path": request.url.path})
            response = GatewayError(
                500, "internal_error", "Something went wrong on our side. Please try again."
            ).response()
        elapsed = time.perf_counter() - started
        route = _route_of(request)
        state.metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        state.metrics.latency.labels(route).observe(elapsed)
        _security_headers(response, request, settings)
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


async def _read_body(request: Request, limit: int) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Requiring JSON also means a cross-site HTML form can never post with the visitor's cookie.
        raise GatewayError(415, "unsupported_media_type", "Send the request as application/json.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, "body_too_large", "The request is too large.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, "body_too_large", "The request is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_origin(request: Request, state: GatewayState) -> None:
    """Cookie-authenticated calls from a browser must come from this site or an allowed origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    origin = origin.rstrip("/")
    # Same host as the request: the gateway's own pages. The scheme is not compared, because behind a
    # TLS-terminating proxy the gateway itself sees http.
    if urlsplit(origin).netloc == request.headers.get("host", request.url.netloc):
        return
    if origin not in state.settings.gateway_allowed_origin_list:
        raise GatewayError(403, "origin_not_allowed", "This site may not use the chat.")


async def _not_revoked(session: Session | None, state: GatewayState, message: str) -> Session | None:
    if session is None:
        return None
    try:
        revoked = await state.revocations.is_revoked(session.session_id)
    except Exception as exc:  # Redis errors of any kind: fail closed, a revoked session must not pass
        raise _store_unavailable("revocation_store") from exc
    if revoked:
        raise GatewayError(401, "invalid_session", message)
    return session


async def _session_of(request: Request, state: GatewayState) -> tuple[Session | None, str]:
    """The request's session and how it came (``bearer`` or ``cookie``); a bad credential is an error.

    Forged, expired and revoked tokens are all ``invalid_session``: the client cannot tell them apart.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        session = state.codec.verify(token.strip()) if scheme.lower() == "bearer" else None
        message = "Your chat session is not valid. Please start a new one."
        if session is None:
            raise GatewayError(401, "invalid_session", message)
        return await _not_revoked(session, state, message), "bearer"
    _check_origin(request, state)
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        return None, "cookie"
    session = state.codec.verify(cookie)
    message = "Your chat session has expired. Please start a new one."
    if session is None:
        raise GatewayError(401, "invalid_session", message)
    return await _not_revoked(session, state, message), "cookie"


async def _require_session(request: Request, state: GatewayState) -> Session:
    session, _ = await _session_of(request, state)
    if session is None:
        raise GatewayError(401, "no_session", "Start a chat session first (POST /api/v1/session).")
    return session


def _bearer_matches(authorization: str, token: str) -> bool:
    # Constant time: no timing oracle on the operations token.
    return hmac.compare_digest(authorization.encode("utf-8", "replace"), f"Bearer {token}".encode())


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def _install_routes(app: FastAPI, state: GatewayState, widget_dir: Path) -> None:
    settings = state.settings

    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        state.metrics.rejections.labels(exc.reason).inc()
        if isinstance(exc, UpstreamError):
            state.metrics.upstream_errors.labels(exc.kind).inc()
        state.log.info("rejected", extra={"event": "rejected", "code": exc.code, "status": exc.status})
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, "The request failed.")
        return GatewayError(exc.status_code, code, message).response(dict(exc.headers or {}))

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
            if detailed and not _bearer_matches(authorization or "", settings.gateway_metrics_token.get_secret_value()):
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
            if not _bearer_matches(request.headers.get("authorization", ""), token):
                raise GatewayError(401, "unauthorized", "A metrics token is required.")
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        f"{API}/session",
        tags=["chat"],
        summary="Get a visitor session (kept if valid, unless new=true).",
        response_model=schemas.SessionOut,
        responses=schemas.ERRORS,
        openapi_extra=schemas.request_body(schemas.SessionIn, required=False),
    )
    async def create_session(request: Request) -> JSONResponse:
        raw = await _read_body(request, settings.gateway_max_body_bytes)
        # Outside the try: a body that is not JSON is invalid_json, like on every endpoint.
        decoded = decode_json_body(raw) if raw.strip() else {}
        try:
            options = schemas.SessionIn.model_validate(decoded)
        except ValueError:
            raise GatewayError(400, "invalid_shape", 'Send {"new": true|false, "mode": "cookie"|"bearer"}.') from None
        existing: Session | None = None
        try:
            existing, _ = await _session_of(request, state)
        except GatewayError as exc:
            if exc.code != "invalid_session":
                raise
            # An expired, revoked or foreign session simply gets replaced: that is what this call is for.
        if existing is not None and not options.new:
            return JSONResponse({"created": False, "expires_at": _iso(existing.expires_at), "token": None})
        if options.mode == "cookie":
            _check_origin(request, state)
        await state.limits.check("new_session", _client_address(request))
        if existing is not None:
            # "New conversation": the old token must not keep working for the rest of its 7 days.
            await _revoke(existing)
        token, session = state.codec.issue()
        state.metrics.sessions.inc()
        body = {
            "created": True,
            "expires_at": _iso(session.expires_at),
            "token": token if options.mode == "bearer" else None,
        }
        response = JSONResponse(body)
        if options.mode == "cookie":
            response.set_cookie(
                COOKIE_NAME,
                token,
                max_age=settings.gateway_session_ttl_seconds,
                path=API,
                httponly=True,
                secure=settings.gateway_cookie_secure,
                samesite=settings.gateway_cookie_samesite,
            )
        return response

    @app.delete(
        f"{API}/session",
        tags=["chat"],
        summary="End the session: its token (cookie or bearer) is revoked and the cookie forgotten.",
        status_code=204,
        responses={k: v for k, v in schemas.ERRORS.items() if k in (403, 429, 503)},
    )
    async def delete_session(request: Request) -> Response:
        _check_origin(request, state)
        await state.limits.check("address", _client_address(request))
        try:
            session, _ = await _session_of(request, state)
        except GatewayError as exc:
            if exc.code != "invalid_session":
                raise
            session = None  # forged, expired or already revoked: nothing to revoke, still 204
        if session is not None:
            await _revoke(session)
        response = Response(status_code=204)
        response.delete_cookie(
            COOKIE_NAME,
            path=API,
            httponly=True,
            secure=settings.gateway_cookie_secure,
            samesite=settings.gateway_cookie_samesite,
        )
        return response

    @app.post(
        f"{API}/messages",
        tags=["chat"],
        summary="Send one message (typed text or an offered button's payload); the bot's replies.",
        response_model=schemas.TurnOut,
        responses=schemas.ERRORS,
        openapi_extra=schemas.request_body(schemas.TextIn, schemas.PayloadIn),
    )
    async def send_message(request: Request) -> JSONResponse:
        address = _client_address(request)
        await state.limits.check("address", address)
        session = await _require_session(request, state)
        await state.limits.check("session", session.session_id)
        raw = await _read_body(request, settings.gateway_max_body_bytes)
        incoming = parse_message(decode_json_body(raw), max_chars=settings.gateway_max_message_chars)
        conversation = session.conversation_id
        # The turn id is random and is the correlation id (header, Rasa's metadata, logs): the
        # conversation id never leaves the server.
        turn_id = uuid.uuid4().hex
        correlation_id = turn_id
        if incoming.client_message_id is not None:
            replayed = await _claim_or_replay(conversation, incoming.client_message_id, incoming, turn_id)
            if replayed is not None:
                return replayed
        try:
            if incoming.kind == "payload":
                offered = await _offered(conversation)
                if incoming.value not in offered:
                    raise GatewayError(
                        400,
                        "payload_not_offered",
                        "That option is no longer available. "
                        "Please pick one of the latest options or type your answer.",
                    )
        except GatewayError:
            await _forget_turn(conversation, incoming)
            raise
        started = time.perf_counter()
        outcome = "ok"
        error: UpstreamError | None = None
        replies: list[dict[str, Any]] = []
        try:
            replies = await state.rasa.send(
                conversation,
                incoming.value,
                correlation_id=correlation_id,
                client_key=state.codec.client_key(address),
            )
        except UpstreamError as exc:
            outcome = exc.code
            error = exc
        finally:
            elapsed = time.perf_counter() - started
            state.metrics.turn_latency.observe(elapsed)
            # Lengths and kinds only: the message text never goes to the INFO log.
            state.log.info(
                "turn",
                extra={
                    "event": "turn",
                    "conversation_id": conversation,
                    "turn_id": turn_id,
                    "correlation_id": correlation_id,
                    "kind": incoming.kind,
                    "chars": len(incoming.value),
                    "replies": len(replies),
                    "upstream_ms": round(elapsed * 1000, 1),
                    "outcome": outcome,
                    "client_message_id": incoming.client_message_id is not None,
                },
            )
        headers = {"X-Correlation-Id": correlation_id}
        if error is not None:
            state.metrics.rejections.labels(error.reason).inc()
            state.metrics.upstream_errors.labels(error.kind).inc()
            if error.delivered:
                # Rasa may still finish this turn: a retry looks for it instead of sending it again.
                await _record_turn(conversation, incoming, TurnRecord(_fp(incoming), turn_id, "unknown"))
            else:
                await _forget_turn(conversation, incoming)
            return error.response(headers)
        messages = [bot_message(r, message_id=f"{turn_id}-{i}") for i, r in enumerate(replies)]
        body = {"turn_id": turn_id, "messages": messages}
        await _record_turn(conversation, incoming, TurnRecord(_fp(incoming), turn_id, "done", status=200, body=body))
        await _remember(conversation, offered_payloads(messages))
        return JSONResponse(body, headers=headers)

    @app.get(
        f"{API}/history",
        tags=["chat"],
        summary="The conversation so far (after a reload or in another tab).",
        response_model=schemas.HistoryOut,
        responses=schemas.ERRORS,
    )
    async def history(request: Request) -> JSONResponse:
        await state.limits.check("address", _client_address(request))
        session = await _require_session(request, state)
        tracker = await state.rasa.tracker(session.conversation_id)
        messages, offered = history_from_tracker(tracker)
        await _remember(session.conversation_id, offered)
        return JSONResponse({"messages": messages})

    async def _offered(conversation: str) -> set[str]:
        try:
            offered = await state.offers.get(conversation)
        except Exception as exc:  # Redis errors of any kind: fail closed with a clear message
            raise _store_unavailable() from exc
        if offered is None:
            # Nothing recorded (in-process store after a restart, or expired): Rasa's tracker knows.
            _, offered = history_from_tracker(await state.rasa.tracker(conversation))
            await _remember(conversation, offered)
        return offered

    async def _remember(conversation: str, offered: set[str]) -> None:
        try:
            await state.offers.set(conversation, offered)
        except Exception as exc:  # Redis errors of any kind
            raise _store_unavailable() from exc

    async def _revoke(session: Session) -> None:
        try:
            await state.revocations.revoke(session.session_id, expires_at=session.expires_at)
        except Exception as exc:  # Redis errors of any kind: say so rather than pretend it is revoked
            raise _store_unavailable("revocation_store") from exc

    # ---- idempotent sends (see tandem/gateway/turns.py for the states and what a retry gets)

    def _fp(incoming: Incoming) -> str:
        return fingerprint(incoming.kind, incoming.value)

    async def _record_turn(conversation: str, incoming: Incoming, record: TurnRecord) -> None:
        if incoming.client_message_id is None:
            return
        try:
            await state.turns.put(conversation, incoming.client_message_id, record)
        except Exception:  # Redis errors: the visitor still gets this answer; a retry may be sent again
            state.log.warning("turn store unavailable", extra={"event": "turn_store_unavailable"})

    async def _forget_turn(conversation: str, incoming: Incoming) -> None:
        if incoming.client_message_id is None:
            return
        try:
            await state.turns.release(conversation, incoming.client_message_id)
        except Exception:  # Redis errors: the claim expires with its TTL
            state.log.warning("turn store unavailable", extra={"event": "turn_store_unavailable"})

    def _in_flight() -> GatewayError:
        return GatewayError(
            409,
            "duplicate_in_flight",
            "Your message is still being answered. Please wait a moment before sending it again.",
            retry_after=5,
        )

    async def _claim_or_replay(conversation: str, cmid: str, incoming: Incoming, turn_id: str) -> JSONResponse | None:
        """None when this request owns the turn; else the answer to replay (or a 409)."""
        mine = TurnRecord(_fp(incoming), turn_id, "pending")
        deadline = time.monotonic() + settings.rasa_timeout_seconds + 1.0
        while True:
            try:
                record = await state.turns.claim(conversation, cmid, mine)
                if record is None:
                    return None  # a new id: this request sends the turn
                # In flight: wait (bounded by the turn timeout) for the first attempt's outcome.
                while (
                    record is not None
                    and record.state == "pending"
                    and record.fingerprint == mine.fingerprint
                    and time.monotonic() < deadline
                ):
                    await asyncio.sleep(0.05)
                    record = await state.turns.get(conversation, cmid)
            except Exception as exc:  # Redis errors of any kind: fail closed before reaching Rasa
                raise _store_unavailable("turn_store") from exc
            if record is None:
                continue  # the first attempt gave the id up (Rasa unreachable): claim it again
            if record.fingerprint != mine.fingerprint:
                raise GatewayError(
                    409,
                    "client_message_id_reused",
                    "This message id was already used for another message. Send a new id with each message.",
                )
            state.log.info(
                "turn replayed",
                extra={"event": "turn_replayed", "correlation_id": record.turn_id, "state": record.state},
            )
            if record.state == "done" and record.body is not None:
                headers = {"X-Correlation-Id": record.turn_id}
                return JSONResponse(record.body, status_code=record.status or 200, headers=headers)
            if record.state == "unknown":
                return await _recover(conversation, cmid, record, mine)
            raise _in_flight()  # still pending after the wait

    async def _recover(conversation: str, cmid: str, record: TurnRecord, mine: TurnRecord) -> JSONResponse | None:
        """The gateway gave up on this turn: Rasa's tracker says whether (and how) Rasa answered it."""
        tracker = await state.rasa.tracker(conversation)
        replies = turn_from_tracker(tracker, record.turn_id)
        if replies is None:
            if time.time() - record.created_at < RASA_LOCK_SECONDS + settings.rasa_timeout_seconds:
                raise _in_flight()  # Rasa may still be working on it (or waiting for its lock)
            try:
                await state.turns.put(conversation, cmid, mine)  # Rasa never got it: this send goes through
            except Exception as exc:
                raise _store_unavailable("turn_store") from exc
            return None
        messages = [bot_message(r, message_id=f"{record.turn_id}-{i}") for i, r in enumerate(replies)]
        body = {"turn_id": record.turn_id, "messages": messages}
        done = TurnRecord(record.fingerprint, record.turn_id, "done", record.created_at, status=200, body=body)
        try:
            await state.turns.put(conversation, cmid, done)
        except Exception:
            state.log.warning("turn store unavailable", extra={"event": "turn_store_unavailable"})
        _, offered = history_from_tracker(tracker)
        await _remember(conversation, offered)
        return JSONResponse(body, headers={"X-Correlation-Id": record.turn_id})


def _store_unavailable(reason: str = "offer_store") -> GatewayError:
    return GatewayError(
        503,
        "temporarily_unavailable",
        "We can't take messages right now. Please try again in a moment.",
        reason=reason,
    )
