"""Rate limits per session, per client address and for new sessions.

The counting is :mod:`tandem.ratelimit`'s sliding window, in process by default and in Redis when
``REDIS_URL`` is set (:meth:`tandem.runtime.Infrastructure.async_rate_limiter`), so that the limits
hold across gateway replicas. Limits are written in the ``limits`` library's notation
("20/minute", "5/second;100/hour"). A refused hit becomes a 429 with ``Retry-After``. When Redis
cannot be reached the gateway fails closed (503): the limits are what protects the bot from floods.
"""

from __future__ import annotations

import math

from limits import RateLimitItem, parse_many

from tandem.gateway.errors import GatewayError
from tandem.ratelimit import AsyncRateLimiter


class RateLimits:
    """Named limits (``session``, ``address``, ``new_session``) over one limiter."""

    def __init__(self, limiter: AsyncRateLimiter, limits: dict[str, str]) -> None:
        self._limiter = limiter
        self._limits: dict[str, list[RateLimitItem]] = {name: parse_many(spec) for name, spec in limits.items()}

    async def _wait(self, item: RateLimitItem, name: str, identifier: str) -> float:
        """Count one hit of ``item``: 0 when allowed, else the seconds until it would be."""
        key = f"{name}/{item.amount}/{item.get_expiry()}/{identifier}"
        return await self._limiter.attempt(key, limit=item.amount, window_seconds=item.get_expiry())

    async def check(self, name: str, identifier: str) -> None:
        """Count one hit; raise a 429 :class:`GatewayError` when any limit of ``name`` is exhausted."""
        for item in self._limits[name]:
            try:
                wait = await self._wait(item, name, identifier)
            except Exception as exc:  # Unavailable, or anything else a store raises: fail closed (docstring)
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
        await self._limiter.clear()
