"""The one place Redis clients are made: from ``REDIS_URL``, with the configured timeouts.

Every Redis user (rate limits, the answer cache and token budgets, the gateway's stores) gets its
client here, so timeouts and connection options cannot drift apart. Making a client opens no
connection: the pool connects on first use.
"""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from tandem.settings import RedisSettings


def _url(settings: RedisSettings) -> str:
    if not settings.redis_url:
        raise ValueError("REDIS_URL is not set")
    return settings.redis_url


def sync_redis(settings: RedisSettings) -> redis.Redis:
    """A blocking client (worker threads: the tool layer's rate limits)."""
    return redis.Redis.from_url(
        _url(settings),
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )


def async_redis(settings: RedisSettings) -> aioredis.Redis:
    """An asyncio client (the gateway, the fallback chain's cache and budgets)."""
    return aioredis.Redis.from_url(
        _url(settings),
        socket_timeout=settings.redis_timeout_seconds,
        socket_connect_timeout=settings.redis_timeout_seconds,
    )
