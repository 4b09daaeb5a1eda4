"""Rate limits per session and per address: in process, and shared through a real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import redis

from tandem.gateway.offers import RedisOfferStore
from tandem.gateway.sessions import COOKIE_NAME, SessionCodec

from .conftest import REDIS_URL, SECRET, say, start_session
from .fakes import CABIN_BUTTONS, FakeRasa


async def test_session_limit_gives_429_with_retry_after(settings_for: Any, client_for: Any, fake: FakeRasa) -> None:
    async with client_for(settings_for(GATEWAY_RATE_LIMIT_SESSION="3/minute")) as client:
        await start_session(client)
        for _ in range(3):
            assert (await say(client, text="hi")).status_code == 200
        response = await say(client, text="hi")
        assert response.status_code == 429
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        error = response.json()["error"]
        assert error["code"] == "rate_limited" and error["retry_after"] == int(response.headers["Retry-After"])
        assert "too quickly" in error["message"]
        assert len(fake.requests) == 3
        # Another session from the same address is not affected by this session's limit.
        await client.post("/api/v1/session", json={"new": True})
        assert (await say(client, text="hi")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert 'tandem_gateway_rejections_total{reason="rate_limited_session"} 1.0' in metrics


async def test_address_limit_covers_every_session(settings_for: Any, client_for: Any, fake: FakeRasa) -> None:
    async with client_for(settings_for(GATEWAY_RATE_LIMIT_ADDRESS="4/minute")) as client:
        for _ in range(4):
            await client.post("/api/v1/session", json={"new": True})
            assert (await say(client, text="hi")).status_code == 200
        await client.post("/api/v1/session", json={"new": True})
        assert (await say(client, text="hi")).status_code == 429
        assert (await client.get("/api/v1/history")).status_code == 429


async def test_new_sessions_are_limited_per_address(settings_for: Any, client_for: Any) -> None:
    async with client_for(settings_for(GATEWAY_RATE_LIMIT_NEW_SESSION="2/minute")) as client:
        assert (await client.post("/api/v1/session", json={"new": True})).status_code == 200
        assert (await client.post("/api/v1/session", json={"new": True})).status_code == 200
        response = await client.post("/api/v1/session", json={"new": True})
        assert response.status_code == 429 and "Retry-After" in response.headers
        # Keeping the existing session is not counted.
        assert (await client.post("/api/v1/session", json={})).status_code == 200


async def test_limits_are_shared_through_redis(
    settings_for: Any, client_for: Any, fake: FakeRasa, redis_client: redis.Redis
) -> None:
    settings = settings_for(REDIS_URL=REDIS_URL, GATEWAY_RATE_LIMIT_SESSION="3/minute")
    async with client_for(settings) as replica_a, client_for(settings) as replica_b:
        await start_session(replica_a)
        replica_b.cookies = replica_a.cookies
        statuses = [(await say(c, text="hi")).status_code for c in (replica_a, replica_b, replica_a, replica_b)]
        assert statuses == [200, 200, 200, 429]
    assert any(redis_client.scan_iter(match="tandem:gw:rl*"))


async def test_offers_are_shared_through_redis(
    settings_for: Any, client_for: Any, fake: FakeRasa, redis_client: redis.Redis
) -> None:
    settings = settings_for(REDIS_URL=REDIS_URL)
    async with client_for(settings) as replica_a, client_for(settings) as replica_b:
        await start_session(replica_a)
        replica_b.cookies = replica_a.cookies
        await say(replica_a, text="book")
        tracker_calls = len(fake.tracker_requests)
        assert (await say(replica_b, payload=CABIN_BUTTONS[1]["payload"])).status_code == 200
        assert len(fake.tracker_requests) == tracker_calls  # from Redis, not from the tracker
        assert (await say(replica_a, payload=CABIN_BUTTONS[0]["payload"])).status_code == 400


async def test_redis_offer_store_round_trip(redis_client: redis.Redis) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2)
    prefix = f"tandem-test:{uuid.uuid4().hex}:"
    store = RedisOfferStore(client, ttl_seconds=60, prefix=prefix)
    try:
        assert await store.get("c1") is None
        await store.set("c1", {"/a", "/b"})
        assert await store.get("c1") == {"/a", "/b"}
        await store.set("c1", set())
        assert await store.get("c1") == set()
        assert 0 < redis_client.ttl(prefix + "c1") <= 60
    finally:
        redis_client.delete(prefix + "c1")
        await client.aclose()


async def test_a_stopped_redis_fails_closed_with_a_clear_message(
    settings_for: Any, client_for: Any, closed_port_url: str, fake: FakeRasa
) -> None:
    dead_redis = closed_port_url.replace("http://", "redis://") + "/0"
    async with client_for(settings_for(REDIS_URL=dead_redis, REDIS_TIMEOUT_SECONDS=0.5)) as client:
        for response in (await client.post("/api/v1/session", json={}), await say(client, text="hi")):
            assert response.status_code in (401, 503), response.text
        # Even with a valid session the message is refused (no limit can be checked) before Rasa.
        client.cookies.set(COOKIE_NAME, SessionCodec(SECRET.encode(), ttl_seconds=60).issue()[0], domain="gateway.test")
        response = await say(client, text="hi")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "temporarily_unavailable"
        assert fake.requests == []


async def test_history_is_rate_limited_too(client: httpx.AsyncClient) -> None:
    await start_session(client)
    assert (await client.get("/api/v1/history")).status_code == 200
