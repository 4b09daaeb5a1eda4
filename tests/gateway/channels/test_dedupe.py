"""De-duplication claims and Telegram's button-id store: in process (bounded, expiring) and in the real
Redis (integration: these fail, never skip, when Redis is missing)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from tandem.gateway.channels.dedupe import (
    CallbackEntry,
    MemoryCallbackStore,
    MemoryDedupeStore,
    RedisCallbackStore,
    RedisDedupeStore,
)
from tests.gateway.channels.conftest import REDIS_URL


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ENTRY = CallbackEntry(payload='/inform{"cabin": "business"}', title="Business", conversation_id="telegram-" + "a" * 32)


async def test_memory_claim_is_true_once_until_it_expires() -> None:
    clock = Clock()
    store = MemoryDedupeStore(clock=clock)
    assert await store.claim("slack:T:C:1.1", 60) is True
    assert await store.claim("slack:T:C:1.1", 60) is False
    assert await store.claim("slack:T:C:1.2", 60) is True
    clock.now += 59
    assert await store.claim("slack:T:C:1.1", 60) is False
    clock.now += 2
    assert await store.claim("slack:T:C:1.1", 60) is True  # expired: a new claim


async def test_memory_store_is_bounded_and_evicts_the_least_recent() -> None:
    clock = Clock()
    store = MemoryDedupeStore(max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        assert await store.claim(key, 600)
    assert await store.claim("a", 600) is False  # "a" is now the most recent
    assert await store.claim("d", 600) is True  # evicts "b", the least recent
    assert len(store) == 3
    assert await store.claim("a", 600) is False
    assert await store.claim("c", 600) is False
    assert await store.claim("b", 600) is True  # forgotten, so claimable again


async def test_memory_store_drops_expired_keys_before_evicting_live_ones() -> None:
    clock = Clock()
    store = MemoryDedupeStore(max_keys=2, clock=clock)
    assert await store.claim("live", 600)
    assert await store.claim("short", 5)
    clock.now += 10
    assert await store.claim("new", 600)
    assert len(store) == 2
    assert await store.claim("live", 600) is False  # kept: the expired one made room


async def test_concurrent_claims_of_one_key_have_one_winner() -> None:
    store = MemoryDedupeStore()
    results = await asyncio.gather(*(store.claim("same", 60) for _ in range(50)))
    assert results.count(True) == 1


async def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError):
        await MemoryDedupeStore().claim("k", 0)


async def test_memory_callback_store_maps_ids_back_and_expires() -> None:
    clock = Clock()
    store = MemoryCallbackStore(max_entries=2, clock=clock)
    await store.put({"id1": ENTRY, "id2": ENTRY}, 60)
    assert await store.get("id1") == ENTRY
    assert await store.get("unknown") is None
    await store.put({"id3": ENTRY}, 60)
    assert await store.get("id1") is None and await store.get("id3") == ENTRY  # bounded: oldest went
    clock.now += 61
    assert await store.get("id3") is None


def test_callback_entries_from_bad_json_are_none() -> None:
    assert CallbackEntry.from_json(ENTRY.to_json()) == ENTRY
    for raw in (b"", b"[]", b'{"payload": 1, "title": "x", "conversation_id": "c"}', b"\xff"):
        assert CallbackEntry.from_json(raw) is None


@pytest.mark.integration
async def test_redis_claim_is_atomic_and_expires(aredis: aioredis.Redis, redis_prefix: str) -> None:
    store = RedisDedupeStore(aredis, prefix=redis_prefix)
    results = await asyncio.gather(*(store.claim("slack:T:C:1.1", 60) for _ in range(20)))
    assert results.count(True) == 1
    assert await store.claim("slack:T:C:1.2", 60) is True
    ttl = await aredis.ttl(redis_prefix + "slack:T:C:1.1")
    assert 0 < ttl <= 60
    assert await store.claim("short", 1) is True
    await asyncio.sleep(1.2)
    assert await store.claim("short", 1) is True  # expired in Redis


@pytest.mark.integration
async def test_two_replicas_share_the_claims(aredis: aioredis.Redis, redis_prefix: str) -> None:
    other = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2)  # a second replica's own connection
    try:
        first, second = RedisDedupeStore(aredis, prefix=redis_prefix), RedisDedupeStore(other, prefix=redis_prefix)
        assert await first.claim("telegram:update:1", 60) is True
        assert await second.claim("telegram:update:1", 60) is False
    finally:
        await other.aclose()


@pytest.mark.integration
async def test_redis_callback_store(aredis: aioredis.Redis, redis_prefix: str) -> None:
    store = RedisCallbackStore(aredis, prefix=redis_prefix)
    await store.put({"abc": ENTRY, "def": CallbackEntry("/deny", "No", ENTRY.conversation_id)}, 30)
    assert await store.get("abc") == ENTRY
    assert (await store.get("def")) == CallbackEntry("/deny", "No", ENTRY.conversation_id)
    assert await store.get("nope") is None
    assert 0 < await aredis.ttl(redis_prefix + "abc") <= 30
    await aredis.set(redis_prefix + "junk", b"not json")
    assert await store.get("junk") is None
    await store.put({}, 30)  # nothing to store is fine
