"""Rate limits: a small protocol, an in-process implementation and a Redis one.

``hit(key, limit=, window_seconds=)`` counts one attempt and answers whether it is allowed.
Keys are opaque strings chosen by the caller; callers hash anything personal (e-mails) first.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis

from tandem.errors import Unavailable
from tandem.redis_clients import sync_redis
from tandem.settings import Settings

# Keys held by one in-process limiter at most (each is a few hundred bytes).
DEFAULT_MAX_KEYS = 10_000


class RateLimiter(Protocol):
    def hit(self, key: str, *, limit: int, window_seconds: int) -> bool:
        """Count one attempt for ``key``; True when it is within ``limit`` per window."""
        ...


class InMemoryRateLimiter:
    """Sliding-window log per key, for one process (embedded mode, the gateway without Redis, tests).

    Thread-safe. Denied attempts are not recorded, so a client that keeps retrying is let in again as
    soon as its earlier allowed attempts leave the window.

    Memory is bounded: a key whose window emptied is dropped (a sweep runs at most every
    ``SWEEP_SECONDS``, and whenever there are more than ``max_keys`` keys), and beyond ``max_keys``
    live keys the least recently used ones are forgotten (down to 90 % of the cap, so sweeps stay
    rare). Forgetting a live key forgets its count: the price of the bound, paid only when more than
    ``max_keys`` distinct clients are active within one window; several replicas use Redis anyway.
    """

    SWEEP_SECONDS = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic, *, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # key -> (timestamps of allowed attempts in ascending order, window seconds); LRU order.
        self._hits: OrderedDict[str, tuple[list[float], float]] = OrderedDict()
        self._next_sweep: float | None = None

    def __len__(self) -> int:
        """The number of keys held (for tests and metrics)."""
        return len(self._hits)

    def hit(self, key: str, *, limit: int, window_seconds: float) -> bool:
        return self.attempt(key, limit=limit, window_seconds=window_seconds) == 0.0

    def attempt(self, key: str, *, limit: int, window_seconds: float) -> float:
        """Count one attempt: 0.0 when allowed, else the seconds until one would be allowed."""
        now = self._clock()
        with self._lock:
            entry = self._hits.get(key)
            if entry is None:
                log: list[float] = []
            else:
                log = entry[0]
                del log[: bisect.bisect_right(log, now - window_seconds)]
            self._hits[key] = (log, window_seconds)
            self._hits.move_to_end(key)
            if len(log) >= limit:
                wait = log[0] + window_seconds - now if log else float(window_seconds)
                allowed = False
            else:
                log.append(now)
                wait = 0.0
                allowed = True
            if self._next_sweep is None:
                self._next_sweep = now + self.SWEEP_SECONDS
            if len(self._hits) > self._max_keys or now >= self._next_sweep:
                self._sweep(now)
            return 0.0 if allowed else max(wait, 0.001)

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()

    def _sweep(self, now: float) -> None:
        # Called with the lock held.
        for key in [k for k, (log, window) in self._hits.items() if not log or log[-1] <= now - window]:
            del self._hits[key]
        if len(self._hits) > self._max_keys:
            keep = max(1, int(self._max_keys * 0.9))
            while len(self._hits) > keep:
                self._hits.popitem(last=False)
        self._next_sweep = now + self.SWEEP_SECONDS


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
        """A limiter on the Redis of ``REDIS_URL`` (:func:`tandem.redis_clients.sync_redis`)."""
        return cls(sync_redis(settings), prefix=prefix)

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
