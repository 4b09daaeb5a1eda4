"""The Redis rate limiters (blocking and asyncio: one script, one sliding window) against a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
import redis.asyncio as aioredis

from tandem.errors import Unavailable
from tandem.ratelimit import AsyncRedisRateLimiter, RedisRateLimiter
from tandem.runtime import Infrastructure
from tandem.settings import ActionSettings

pytestmark = pytest.mark.integration


def test_allows_the_limit_then_denies_per_key(redis_client: redis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    assert [limiter.hit("a", limit=3, window_seconds=60) for _ in range(5)] == [True] * 3 + [False] * 2
    assert limiter.hit("b", limit=3, window_seconds=60)
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}*"))
    assert len(keys) == 2
    assert all(0 < int(redis_client.pttl(k)) <= 60_000 for k in keys)  # logs always expire
    wait = limiter.attempt("a", limit=3, window_seconds=60)
    assert 59 < wait <= 60  # until the first counted attempt leaves the window


def test_the_window_slides_and_denied_attempts_are_not_counted(redis_client: redis.Redis, redis_prefix: str) -> None:
    limiter = RedisRateLimiter(redis_client, prefix=redis_prefix)
    assert limiter.hit("k", limit=2, window_seconds=1)
    time.sleep(0.5)
    assert limiter.hit("k", limit=2, window_seconds=1)
    for _ in range(5):
        assert not limiter.hit("k", limit=2, window_seconds=1)  # refused, not recorded
    time.sleep(0.6)  # the first attempt has left the window, the second has not
    assert limiter.hit("k", limit=2, window_seconds=1)
    assert not limiter.hit("k", limit=2, window_seconds=1)


async def test_the_asyncio_limiter_shares_the_counts(redis_client: redis.Redis, redis_prefix: str) -> None:
    url = redis_client.connection_pool.connection_kwargs
    client = aioredis.Redis(host=url["host"], port=url["port"], db=url.get("db", 0), socket_timeout=2)
    try:
        blocking = RedisRateLimiter(redis_client, prefix=redis_prefix)
        asynchronous = AsyncRedisRateLimiter(client, prefix=redis_prefix)
        assert blocking.hit("shared", limit=2, window_seconds=30)
        assert await asynchronous.attempt("shared", limit=2, window_seconds=30) == 0.0
        assert await asynchronous.attempt("shared", limit=2, window_seconds=30) > 29
        assert not blocking.hit("shared", limit=2, window_seconds=30)
        await asynchronous.clear()
        assert blocking.hit("shared", limit=2, window_seconds=30)
    finally:
        await client.aclose()


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
        RedisRateLimiter(client, prefix="tandem-test:").hit("k", limit=1, window_seconds=60)


def test_factory_builds_a_working_redis_limiter(
    settings_factory: Callable[..., ActionSettings], redis_client: redis.Redis, redis_prefix: str
) -> None:
    url = redis_client.connection_pool.connection_kwargs
    settings = settings_factory(
        "sqlite:///unused.db",
        REDIS_URL=f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}",
        REDIS_KEY_PREFIX=redis_prefix,
    )
    infra = Infrastructure(settings.redis)
    limiter = infra.rate_limiter()
    assert isinstance(limiter, RedisRateLimiter)
    assert limiter.hit("factory", limit=1, window_seconds=30) and not limiter.hit("factory", limit=1, window_seconds=30)
    # Under REDIS_KEY_PREFIX + the purpose (the fixture deletes the prefix's keys).
    assert redis_client.exists(f"{redis_prefix}rl:factory") == 1
    infra.close()
