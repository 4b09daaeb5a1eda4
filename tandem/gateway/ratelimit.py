"""Rate limits with the ``limits`` library: per session and per client address.

A moving window in process memory by default; in Redis when ``REDIS_URL`` is set, so that the limits
hold across gateway replicas. A refused hit becomes a 429 with ``Retry-After``. When Redis cannot be
reached the gateway fails closed (503): the limits are what protects the bot from floods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from tandem.gateway.errors import GatewayError


def storage_for(redis_url: str | None, *, timeout_seconds: float) -> Storage:
    """Redis storage (via redis-py's asyncio client) when a URL is given, else in-process memory."""
    if not redis_url:
        return MemoryStorage()
    scheme, _, rest = redis_url.partition("://")
    uri = f"async+{scheme}://{rest}"
    return RedisStorage(
        uri,
        implementation="redispy",
        key_prefix="tandem:gw:rl",
        wrap_exceptions=True,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
    )


class RateLimits:
    """Named limits (``session``, ``address``, ``new_session``) over one storage."""

    def __init__(self, storage: Storage, limits: dict[str, str], *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._limits: dict[str, list[RateLimitItem]] = {name: parse_many(spec) for name, spec in limits.items()}
        self._clock = clock

    async def check(self, name: str, identifier: str) -> None:
        """Count one hit; raise a 429 :class:`GatewayError` when any limit of ``name`` is exhausted."""
        for item in self._limits[name]:
            try:
                allowed = await self._limiter.hit(item, "gateway", name, identifier)
                if allowed:
                    continue
                stats = await self._limiter.get_window_stats(item, "gateway", name, identifier)
            except Exception as exc:  # limits wraps every storage error; fail closed, see module docstring
                raise GatewayError(
                    503,
                    "temporarily_unavailable",
                    "We can't take messages right now. Please try again in a moment.",
                    reason="ratelimit_storage",
                ) from exc
            retry_after = max(1, math.ceil(stats.reset_time - self._clock()))
            raise GatewayError(
                429,
                "rate_limited",
                f"You're sending messages too quickly. Please wait {retry_after} seconds and try again.",
                retry_after=retry_after,
                reason=f"rate_limited_{name}",
            )

    async def reset(self) -> None:
        await self._storage.reset()
