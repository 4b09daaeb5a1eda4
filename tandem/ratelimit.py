"""Rate limits: a small protocol, an in-process implementation and a Redis one.

``hit(key, limit=, window_seconds=)`` counts one attempt and answers whether it is allowed.
Keys are opaque strings chosen by the caller; callers hash anything personal (e-mails) first.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import redis

from tandem.errors import Unavailable
from tandem.settings import Settings


class RateLimiter(Protocol):
    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool:
        """Count one attempt for ``key``; True when it is within ``limit`` per window."""
        ...


class InMemoryRateLimiter:
    """Sliding-window log per key, for one process (embedded mode, tests). Thread-safe.

    Denied attempts are not recorded, so a client that keeps retrying is let in again as soon as
    its earlier allowed attempts leave the window.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool:
        now = self._clock()
        with self._lock:
            log = self._hits.setdefault(key, deque())
            while log and log[0] <= now - window_seconds:
                log.popleft()
            if len(log) >= limit:
                return False
            log.append(now)
            return True


class RedisRateLimiter:
    """Fixed window per key in Redis, shared by every replica.

    INCR and EXPIRE run in one MULTI/EXEC transaction, so a crash between them cannot leave a
    counter without expiry. The window number is part of the key, hence EXPIRE on every hit is
    harmless. Redis errors become :class:`Unavailable`: failing closed, because the limits protect
    against abuse (password resets).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "tandem:rl:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, *, prefix: str = "tandem:rl:") -> RedisRateLimiter:
        if not settings.redis_url:
            raise ValueError("REDIS_URL is not set")
        client = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
        return cls(client, prefix=prefix)

    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool:
        window = int(self._clock() // window_seconds)
        redis_key = f"{self._prefix}{key}:{window}"
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.incr(redis_key)
            pipe.expire(redis_key, window_seconds + 1)
            count, _ = pipe.execute()
        except redis.RedisError as exc:
            raise Unavailable("rate limiter unavailable") from exc
        return int(count) <= limit


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis when ``REDIS_URL`` is set (shared across replicas), else in-process."""
    if settings.redis_url:
        return RedisRateLimiter.from_settings(settings)
    return InMemoryRateLimiter()
