"""Rate limits per session, per client address and for new sessions.

In process by default: :class:`tandem.ratelimit.InMemoryRateLimiter`, a sliding log with bounded
memory (keys whose window emptied are dropped, at most ``DEFAULT_MAX_KEYS`` keys; the ``limits``
library's memory storage never bounds its keys and sweeps them all on every hit). In Redis when
``REDIS_URL`` is set, with the ``limits`` library's moving window, so that the limits hold across
gateway replicas. A refused hit becomes a 429 with ``Retry-After``. When Redis cannot be reached the
gateway fails closed (503): the limits are what protects the bot from floods.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from tandem.gateway.errors import GatewayError
from tandem.ratelimit import InMemoryRateLimiter


def storage_for(redis_url: str | None, *, timeout_seconds: float) -> Storage | InMemoryRateLimiter:
    """Redis storage (via redis-py's asyncio client) when a URL is given, else bounded process memory."""
    if not redis_url:
        return InMemoryRateLimiter()
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

    def __init__(
        self,
        storage: Storage | InMemoryRateLimiter,
        limits: dict[str, str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memory = storage if isinstance(storage, InMemoryRateLimiter) else None
        self._storage = storage if not isinstance(storage, InMemoryRateLimiter) else None
        self._limiter = MovingWindowRateLimiter(self._storage) if self._storage is not None else None
        self._limits: dict[str, list[RateLimitItem]] = {name: parse_many(spec) for name, spec in limits.items()}
        self._clock = clock

    async def _wait(self, item: RateLimitItem, name: str, identifier: str) -> float:
        """Count one hit of ``item``: 0 when allowed, else the seconds until it would be."""
        if self._memory is not None:
            key = f"{name}/{item.amount}/{item.get_expiry()}/{identifier}"
            return self._memory.attempt(key, limit=item.amount, window_seconds=item.get_expiry())
        assert self._limiter is not None
        if await self._limiter.hit(item, "gateway", name, identifier):
            return 0.0
        stats = await self._limiter.get_window_stats(item, "gateway", name, identifier)
        return max(stats.reset_time - self._clock(), 0.001)

    async def check(self, name: str, identifier: str) -> None:
        """Count one hit; raise a 429 :class:`GatewayError` when any limit of ``name`` is exhausted."""
        for item in self._limits[name]:
            try:
                wait = await self._wait(item, name, identifier)
            except Exception as exc:  # limits wraps every storage error; fail closed, see module docstring
                raise GatewayError(
                    503,
                    "temporarily_unavailable",
                    "We can't take messages right now. Please try again in a moment.",
                    reason="ratelimit_storage",
                ) from exc
            if wait == 0.0:
                continue
            retry_after = max(1, math.ceil(wait))
            raise GatewayError(
                429,
                "rate_limited",
                f"You're sending messages too quickly. Please wait {retry_after} seconds and try again.",
                retry_after=retry_after,
                reason=f"rate_limited_{name}",
            )

    async def reset(self) -> None:
        if self._memory is not None:
            self._memory.clear()
        elif self._storage is not None:
            await self._storage.reset()
