"""The in-process rate limiter and the factory."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tandem.ratelimit import InMemoryRateLimiter, RedisRateLimiter
from tandem.runtime import Infrastructure
from tandem.settings import ActionSettings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_allows_limit_then_recovers() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock=clock)
    assert [limiter.hit("k", limit=3, window_seconds=60) for _ in range(4)] == [True, True, True, False]
    assert limiter.hit("other", limit=3, window_seconds=60)  # keys are independent
    clock.now += 59
    assert not limiter.hit("k", limit=3, window_seconds=60)
    clock.now += 1.5
    assert limiter.hit("k", limit=3, window_seconds=60)


def test_in_memory_limiter_is_thread_safe() -> None:
    limiter = InMemoryRateLimiter()
    allowed: list[bool] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            allowed.append(limiter.hit("shared", limit=100, window_seconds=3600))

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100 and len(allowed) == 1000


def test_factory_picks_redis_only_when_configured(settings_factory: Callable[..., ActionSettings]) -> None:
    assert isinstance(Infrastructure(settings_factory("sqlite:///x.db").redis).rate_limiter(), InMemoryRateLimiter)
    redis_settings = settings_factory("sqlite:///x.db", REDIS_URL="redis://127.0.0.1:6379/0")
    infra = Infrastructure(redis_settings.redis)
    assert isinstance(infra.rate_limiter(), RedisRateLimiter)  # lazy: no connection yet
    infra.close()
