"""The one rate limiter: a sliding window per key, in process or in Redis, for threads and for asyncio.

``attempt(key, limit=, window_seconds=)`` counts one attempt and answers 0.0 when it is allowed,
else the seconds until one would be; ``hit`` is the same as a boolean. The same semantics
everywhere: a sliding log of allowed attempts (denied ones are not recorded, so a client that keeps
retrying is let in as soon as its earlier attempts leave the window). In process:
:class:`InMemoryRateLimiter` (bounded memory). In Redis, shared by every replica: one script over a
sorted set per key, run by a blocking client (:class:`RedisRateLimiter`, the tools' worker
threads) or an asyncio one (:class:`AsyncRedisRateLimiter`, the gateway), with Redis's own clock,
so replicas whose clocks differ still agree. Keys are opaque strings chosen by the caller; callers
hash anything personal (e-mails) first. Redis errors become :class:`~tandem.errors.Unavailable`:
the limits protect against abuse, so they fail closed.
"""

from __future__ import annotations

import bisect
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis
import redis.asyncio as aioredis

from tandem.errors import Unavailable

# Keys held by one in-process limiter at most (each is a few hundred bytes).
DEFAULT_MAX_KEYS = 10_000


class RateLimiter(Protocol):
    """What the tools use (from worker threads)."""

    def hit(self, key: str, *, limit: int, window_seconds: float) -> bool:
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


# KEYS[1]: the key's sorted set; ARGV: window (ms), limit, a unique member. Returns 0 when the
# attempt is counted, else the milliseconds until the oldest counted attempt leaves the window.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(tonumber(oldest[2]) + window - now, 1)
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


def _script_args(window_seconds: float, limit: int) -> tuple[int, int, str]:
    return max(1, int(window_seconds * 1000)), limit, uuid.uuid4().hex


def _wait_seconds(result: object) -> float:
    """The script's answer (an integer of milliseconds) as seconds; 0.0 when allowed."""
    milliseconds = int(str(result))
    return milliseconds / 1000 if milliseconds > 0 else 0.0


class RedisRateLimiter:
    """The sliding window in Redis over a blocking client (the tools run in worker threads)."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self._prefix = prefix
        self._script = client.register_script(_SLIDING_WINDOW)

    def attempt(self, key: str, *, limit: int, window_seconds: float) -> float:
        try:
            result = self._script(keys=[self._prefix + key], args=_script_args(window_seconds, limit))
        except (redis.RedisError, OSError) as exc:
            raise Unavailable("rate limiter unavailable") from exc
        return _wait_seconds(result)

    def hit(self, key: str, *, limit: int, window_seconds: float) -> bool:
        return self.attempt(key, limit=limit, window_seconds=window_seconds) == 0.0


class AsyncRedisRateLimiter:
    """The same sliding window over an asyncio client (the gateway)."""

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_SLIDING_WINDOW)

    async def attempt(self, key: str, *, limit: int, window_seconds: float) -> float:
        try:
            result = await self._script(keys=[self._prefix + key], args=_script_args(window_seconds, limit))
        except (redis.RedisError, OSError, TimeoutError) as exc:
            raise Unavailable("rate limiter unavailable") from exc
        return _wait_seconds(result)

    async def clear(self) -> None:
        """Forget every key under this limiter's prefix (tests, operations)."""
        keys = [key async for key in self._client.scan_iter(match=self._prefix + "*", count=500)]
        if keys:
            await self._client.delete(*keys)


class AsyncRateLimiter(Protocol):
    """What asyncio code (the gateway) uses."""

    async def attempt(self, key: str, *, limit: int, window_seconds: float) -> float:
        """Count one attempt: 0.0 when allowed, else the seconds until one would be."""
        ...

    async def clear(self) -> None:
        """Forget every count."""
        ...


class AsyncInMemoryRateLimiter:
    """:class:`InMemoryRateLimiter` for asyncio code (its work is a few microseconds: no thread needed)."""

    def __init__(self, limiter: InMemoryRateLimiter) -> None:
        self._limiter = limiter

    async def attempt(self, key: str, *, limit: int, window_seconds: float) -> float:
        return self._limiter.attempt(key, limit=limit, window_seconds=window_seconds)

    async def clear(self) -> None:
        self._limiter.clear()
