"""RedisRateLimiter against a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis

from tandem.errors import Unavailable
from tandem.ratelimit import RedisRateLimiter, make_rate_limiter
from tandem.settings import Settings

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_allows_the_limit_then_denies_per_key(redis_client: redis.Redis, redis_prefix: str) -> None:
    clock = FakeClock()
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix, clock=clock)
    assert [limiter.hit("a", limit=3, window_seconds=60) for _ in range(5)] == [True] * 3 + [False] * 2
    assert limiter.hit("b", limit=3, window_seconds=60)
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}*"))
    assert len(keys) == 2
    assert all(0 < int(redis_client.ttl(k)) <= 61 for k in keys)  # counters always expire
    clock.now += 60  # next window
    assert limiter.hit("a", limit=3, window_seconds=60)


def test_is_atomic_under_concurrency(redis_client: redis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    allowed: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(10)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            ok = limiter.hit("shared", limit=50, window_seconds=3600)
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 50 and len(allowed) == 200


def test_unreachable_redis_is_unavailable() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_timeout=0.5, socket_connect_timeout=0.5)
    with pytest.raises(Unavailable):
        RedisRateLimiter(client).hit("k", limit=1, window_seconds=60)


def test_factory_builds_a_working_redis_limiter(
    settings_factory: Callable[..., Settings], redis_client: redis.Redis, redis_prefix: str
) -> None:
    url = redis_client.connection_pool.connection_kwargs
    settings = settings_factory(
        "sqlite:///unused.db", REDIS_URL=f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    )
    limiter = make_rate_limiter(settings)
    assert isinstance(limiter, RedisRateLimiter)
    key = f"{redis_prefix}factory"
    assert limiter.hit(key, limit=1, window_seconds=30) and not limiter.hit(key, limit=1, window_seconds=30)
    # The factory's default prefix is used; clean up the key it made.
    redis_client.delete(*redis_client.scan_iter(match=f"tandem:rl:{key}*"))
