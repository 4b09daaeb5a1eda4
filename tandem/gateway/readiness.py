"""``/readyz``: can this gateway serve turns? Rasa, the action server, the database, Redis when configured.

Rasa is ready when at least one of its replicas is; its check lists every replica's state (index,
up or down and why), never their URLs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import Engine, text

from tandem.gateway.errors import UpstreamError
from tandem.gateway.replicas import ReplicasDown
from tandem.gateway.upstream import RasaClient

# Returns when the dependency is ready (optionally with details for the report), raises when not.
Check = Callable[[], Awaitable[dict[str, Any] | None]]


def action_server_health_url(action_server_url: str) -> str:
    """``http://host:5055/webhook`` → ``http://host:5055/health``."""
    base = action_server_url.rstrip("/")
    base = base.removesuffix("/webhook")
    return base + "/health"


def database_check(engine_factory: Callable[[], Engine]) -> Check:
    def ping() -> None:
        with engine_factory().connect() as connection:
            connection.execute(text("SELECT 1"))

    async def check() -> None:
        await asyncio.to_thread(ping)

    return check


def redis_check(client: aioredis.Redis) -> Check:
    async def check() -> None:
        await client.ping()

    return check


def rasa_checks(rasa: RasaClient, action_server_url: str) -> dict[str, Check]:
    health_url = action_server_health_url(action_server_url)
    return {"rasa": rasa.check_rasa, "action_server": lambda: rasa.check_url(health_url)}


async def run_checks(checks: dict[str, Check], *, timeout: float) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every check concurrently with a timeout; short reasons only (no hostnames or stack traces)."""

    async def one(check: Check) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            details = await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return {"ok": False, "reason": "timeout"}
        except ReplicasDown as exc:
            return {"ok": False, "reason": exc.message, "replicas": exc.replicas}
        except UpstreamError as exc:
            return {"ok": False, "reason": exc.message}
        except Exception as exc:  # any failure of a dependency means "not ready", whatever its type
            return {"ok": False, "reason": type(exc).__name__}
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1), **(details or {})}

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    report = dict(zip(checks, results, strict=True))
    return all(r["ok"] for r in results), report
