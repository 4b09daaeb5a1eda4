"""The gateway's app factory: the composition of its state, middleware and routes.

The parts live by concern: :mod:`~tandem.gateway.state` (what the routes share),
:mod:`~tandem.gateway.middleware` (observation, security headers, CORS, proxy headers, error shape),
:mod:`~tandem.gateway.requests` (body, origin, session, operations token),
:mod:`~tandem.gateway.chat` (session, messages, history), :mod:`~tandem.gateway.replay` (idempotent
sends) and :mod:`~tandem.gateway.operations` (health, readiness, metrics, demo page, widget files).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from tandem.gateway.agent_routes import install_agent_routes
from tandem.gateway.channels.outbound import redact_httpx_urls
from tandem.gateway.chat import install_chat_routes
from tandem.gateway.console_routes import install_console_page
from tandem.gateway.desk import Desk
from tandem.gateway.doors import Doors, build_doors
from tandem.gateway.handoff_routes import install_handoff_routes
from tandem.gateway.helpdesk import EmbeddedDesk, HelpDesk
from tandem.gateway.logs import LOGGER_NAME
from tandem.gateway.metrics import GatewayMetrics
from tandem.gateway.middleware import API_CSP, PAGE_CSP, install_error_handlers, install_middleware
from tandem.gateway.offers import MemoryOfferStore, RedisOfferStore
from tandem.gateway.operations import install_operations_routes
from tandem.gateway.ratelimit import RateLimits
from tandem.gateway.readiness import database_check, rasa_checks, redis_check
from tandem.gateway.replicas import RasaReplicas
from tandem.gateway.revocations import MemoryRevocationStore, RedisRevocationStore
from tandem.gateway.schemas import API
from tandem.gateway.sessions import SessionCodec
from tandem.gateway.slack_routes import install_slack_routes
from tandem.gateway.state import GatewayState
from tandem.gateway.telegram_routes import install_telegram_routes
from tandem.gateway.turns import MemoryTurnStore, RedisTurnStore
from tandem.gateway.upstream import RasaClient
from tandem.runtime import Infrastructure
from tandem.settings import GatewayAppSettings, GatewaySettings

__all__ = ["API", "API_CSP", "PAGE_CSP", "ROOT", "WIDGET_DIR", "GatewayState", "create_app"]

ROOT = Path(__file__).resolve().parents[2]
WIDGET_DIR = ROOT / "widget"
CONSOLE_DIR = Path(__file__).resolve().parent / "console"


def _secret(settings: GatewaySettings, log: logging.Logger) -> bytes:
    if settings.gateway_secret is not None and settings.gateway_secret.get_secret_value():
        return settings.gateway_secret.get_secret_value().encode("utf-8")
    # Production refuses this in Settings validation; in development sessions just end with the process.
    log.warning(
        "GATEWAY_SECRET is not set: using an ephemeral secret, visitors' sessions end when the gateway stops",
        extra={"event": "ephemeral_secret"},
    )
    return secrets.token_bytes(32)


def _state(
    app_settings: GatewayAppSettings, http_client: httpx.AsyncClient | None
) -> tuple[GatewayState, Doors, bytes]:
    """The app's state: stores in Redis when ``REDIS_URL`` is set (else in process), no connection yet."""
    settings = app_settings.gateway
    log = logging.getLogger(LOGGER_NAME)
    secret = _secret(settings, log)
    ttl = settings.gateway_session_ttl_seconds
    infra = Infrastructure(app_settings.redis)
    redis_client = infra.async_client()
    http = http_client or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.rasa_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    token = settings.rasa_api_token.get_secret_value() if settings.rasa_api_token else None
    metrics = GatewayMetrics()
    redact_httpx_urls()  # the calls to Rasa's HTTP API carry its token as ?token= (httpx logs URLs)
    rasa = RasaClient(
        http,
        replicas=RasaReplicas(settings.rasa_url_list, log=log, up_gauge=metrics.rasa_replica_up),
        api_token=token,
        turn_timeout=settings.rasa_timeout_seconds,
        check_timeout=settings.gateway_check_timeout_seconds,
    )
    state = GatewayState(
        settings=settings,
        database=app_settings.database,
        input=app_settings.input,
        codec=SessionCodec(secret, ttl_seconds=ttl),
        limits=RateLimits(
            infra.async_rate_limiter(),
            {
                "session": settings.gateway_rate_limit_session,
                "address": settings.gateway_rate_limit_address,
                "new_session": settings.gateway_rate_limit_new_session,
                "agent_login": app_settings.handoff.agent_login_rate_limit,
            },
        ),
        offers=(
            RedisOfferStore(redis_client, prefix=infra.prefix("gw:offers"), ttl_seconds=ttl)
            if redis_client
            else MemoryOfferStore(ttl_seconds=ttl)
        ),
        revocations=(
            RedisRevocationStore(redis_client, prefix=infra.prefix("gw:revoked"))
            if redis_client
            else MemoryRevocationStore()
        ),
        turns=RedisTurnStore(redis_client, prefix=infra.prefix("gw:turns")) if redis_client else MemoryTurnStore(),
        rasa=rasa,
        metrics=metrics,
        http=http,
        owns_http=http_client is None,
        infra=infra,
        log=log,
    )
    state.readiness_checks = {
        **rasa_checks(rasa, settings.action_server_url),
        "database": database_check(state.database_engine),
        **({"redis": redis_check(redis_client)} if redis_client else {}),
    }
    # Conversation ids of the platforms: keyed by a key derived from GATEWAY_SECRET (required when a
    # channel is on), domain-separated from the session signatures.
    id_secret = hmac.new(secret, b"channel-conversation-ids", hashlib.sha256).digest()
    doors = build_doors(app_settings, infra, http, id_secret=id_secret)
    state.desk = Desk(state, doors, _helpdesk(app_settings, http, infra), app_settings.handoff)
    # The agent console's CSRF tokens: HMACs of the agent's session token under a key of their own.
    csrf_key = hmac.new(secret, b"agent-console-csrf", hashlib.sha256).digest()
    return state, doors, csrf_key


def _helpdesk(settings: GatewayAppSettings, http: httpx.AsyncClient, infra: Infrastructure) -> HelpDesk:
    """The help desk of ``HELPDESK``: the embedded console (default) or Chatwoot (what the gateway
    posted there is remembered in Redis when there is one, so every replica drops the echoes)."""
    if settings.handoff.helpdesk == "chatwoot":
        from tandem.gateway.helpdesk.chatwoot import ChatwootDesk, RedisPostedStore

        redis_client = infra.async_client()
        posted = RedisPostedStore(redis_client, prefix=infra.prefix("gw:chatwoot")) if redis_client else None
        return ChatwootDesk(http, settings.chatwoot, timeout=10.0, posted=posted)
    return EmbeddedDesk()


async def _sweep_forever(desk: Desk, every: float) -> None:
    """Expire queued handoffs past HANDOFF_QUEUE_TIMEOUT, for the life of the app."""
    while True:
        await asyncio.sleep(every)
        try:
            await desk.sweep()
        except Exception:  # the database is down: the next round tries again
            desk.log.warning("desk: the queue sweep failed", extra={"event": "desk_sweep_failed"})


def create_app(
    settings: GatewayAppSettings,
    *,
    http_client: httpx.AsyncClient | None = None,
    widget_dir: Path | None = None,
) -> FastAPI:
    """Build the gateway for ``settings``. No I/O happens here: connections open on first use.

    ``http_client`` replaces the client used to reach Rasa and the action server (tests).
    """
    state, doors, csrf_key = _state(settings, http_client)
    desk = state.desk
    assert desk is not None  # built by _state

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep_forever(desk, settings.handoff.handoff_sweep_seconds))
        # The Rasa replicas' health, probed every RASA_HEALTH_INTERVAL_SECONDS (gateway/replicas.py).
        health = asyncio.create_task(state.rasa.watch_replicas(every=settings.gateway.rasa_health_interval_seconds))
        yield
        for task in (health, sweeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await desk.helpdesk.aclose()
        await doors.aclose()
        if state.owns_http:
            await state.http.aclose()
        await state.infra.aclose()
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
        # FastAPI's own OpenTelemetry spans, metrics and logs stay off: they would record every URL
        # path (the Chatwoot webhook's holds its secret), take a visitor's traceparent header as
        # the parent and log exception text. A turn's trace starts at gateway.turn (tandem/tracing.py).
        telemetry={"tracing": False, "metrics": False, "logs": False, "auto_configure": False},
    )
    app.state.gateway = state
    install_middleware(app, state)
    # Same order as ever: error handlers, then the operations routes, then the chat routes.
    install_error_handlers(app, state)
    install_operations_routes(app, state, widget_dir or WIDGET_DIR)
    install_chat_routes(app, state)
    install_handoff_routes(app, desk)
    install_slack_routes(app, state, doors)
    install_telegram_routes(app, state, doors)
    install_console_page(app, CONSOLE_DIR)
    install_agent_routes(app, desk, csrf_key=csrf_key, settings=settings.handoff)
    if settings.handoff.helpdesk == "chatwoot":
        from tandem.gateway.chatwoot_routes import install_chatwoot_routes

        install_chatwoot_routes(app, state, desk, desk.helpdesk, settings.chatwoot, doors.dedupe)  # type: ignore[arg-type]
    app.state.doors = doors
    app.state.desk = desk
    return app
