# ruff: noqa: F811  (the gateway suite's fixtures are imported by name, then requested as arguments)
"""Issue 10, findings 7, 8 and 9 (gateway parts), and the gateway's authenticated Rasa channel.

Each test was written before its fix and failed on the code as it was (see the report of issue 10).
The fixtures (a fake Rasa over real HTTP, settings, ASGI clients) are the gateway suite's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import tracemalloc
from typing import Any

import httpx
import pytest
import redis
from limits import parse_many
from pydantic import SecretStr

from tandem.gateway.ratelimit import RateLimits
from tandem.gateway.sessions import COOKIE_NAME, SessionCodec
from tandem.ratelimit import AsyncInMemoryRateLimiter, InMemoryRateLimiter
from tandem.settings import load_action_settings, load_gateway_settings
from tests.gateway.conftest import (  # noqa: F401 (fixtures)
    REDIS_URL,
    SECRET,
    client,
    client_for,
    fake,
    fake_server,
    fake_url,
    redis_client,
    say,
    settings_for,
    start_session,
)
from tests.gateway.fakes import TOKEN, FakeRasa

GOOD_SECRET = "Zq8#k2!vN4pL9xR7tY3wB6mC1sD5fG0h"
METRICS_TOKEN = "scrape-Tq9#vL2!pX7mR4wZ8kC1"
HUGE_NUMBER = "1" * 5000


def _conversation_id(token: str) -> str:
    session = SessionCodec(SECRET.encode(), ttl_seconds=3600).verify(token)
    assert session is not None
    return session.conversation_id


# ---------------------------------------------------------------- finding 7: a 5,000-digit number


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/messages", '{"text": ' + HUGE_NUMBER + "}"),
        ("/api/v1/messages", HUGE_NUMBER),
        ("/api/v1/messages", '{"text": "hi", "client_message_id": ' + HUGE_NUMBER + "}"),
        ("/api/v1/session", '{"new": ' + HUGE_NUMBER + "}"),
        ("/api/v1/session", "[" + HUGE_NUMBER + "]"),
    ],
)
async def test_f7_a_huge_json_number_is_invalid_json_not_500(
    client: httpx.AsyncClient, fake: FakeRasa, path: str, body: str
) -> None:
    await start_session(client)
    response = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": {"code": "invalid_json", "message": "The request body is not valid JSON.", "retry_after": None}
    }
    assert fake.requests == []


# ---------------------------------------------------------------- finding 8: the conversation id stays server-side


async def test_f8_nothing_sent_to_the_client_contains_the_conversation_id(
    client: httpx.AsyncClient, fake: FakeRasa, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tandem.gateway")
    token = await start_session(client)
    conversation = _conversation_id(token)
    digest = conversation.removeprefix("web-")
    responses = [await say(client, text="book"), await client.get("/api/v1/history")]
    fake.mode = "slow"
    responses.append(await say(client, text="hello"))  # an error answer carries the header too
    fake.mode = "ok"
    for response in responses:
        visible = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        assert digest not in visible and digest[:12] not in visible, response.request.url
    turn = responses[0]
    correlation = turn.headers["X-Correlation-Id"]
    assert correlation == turn.json()["turn_id"] and len(correlation) >= 16
    # The same opaque id reaches Rasa (metadata and header) and the logs.
    assert fake.requests[0]["body"]["metadata"]["correlation_id"] == correlation
    assert fake.requests[0]["headers"]["x-correlation-id"] == correlation
    logged = [getattr(r, "correlation_id", None) for r in caplog.records if getattr(r, "event", None) == "turn"]
    assert logged[0] == correlation
    assert all(digest not in str(c) for c in logged)


# ---------------------------------------------------------------- finding 9: /metrics and /readyz in production


def test_f9_production_needs_a_metrics_token() -> None:
    with pytest.raises(ValueError, match="GATEWAY_METRICS_TOKEN"):
        load_gateway_settings(_env_file=None, GATEWAY_ENV="production", GATEWAY_SECRET=GOOD_SECRET)
    for weak in ("", "short"):
        with pytest.raises(ValueError, match="GATEWAY_METRICS_TOKEN"):
            load_gateway_settings(
                _env_file=None, GATEWAY_ENV="production", GATEWAY_SECRET=GOOD_SECRET, GATEWAY_METRICS_TOKEN=weak
            )
    ok = load_gateway_settings(
        _env_file=None, GATEWAY_ENV="production", GATEWAY_SECRET=GOOD_SECRET, GATEWAY_METRICS_TOKEN=METRICS_TOKEN
    )
    assert ok.gateway.gateway_metrics_token is not None


async def test_f9_metrics_and_readiness_details_need_the_token(
    settings_for: Any, client_for: Any, fake: FakeRasa
) -> None:
    settings = settings_for(GATEWAY_ENV="production", GATEWAY_SECRET=GOOD_SECRET, GATEWAY_METRICS_TOKEN=METRICS_TOKEN)
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with client_for(settings) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/metrics", headers=auth)).status_code == 200
        anonymous = await client.get("/readyz")
        assert anonymous.status_code == 200 and anonymous.json() == {"status": "ready"}
        wrong = await client.get("/readyz", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
        detailed = await client.get("/readyz", headers=auth)
        assert detailed.status_code == 200 and set(detailed.json()["checks"]) >= {"rasa", "action_server"}
    # Not ready (Rasa refuses the token): the status code says it, the details stay behind the token.
    async with client_for(settings.updated(rasa_api_token=SecretStr("wrong-token"))) as client:
        stopped = await client.get("/readyz")
        assert stopped.status_code == 503 and stopped.json() == {"status": "not_ready"}
        detailed = await client.get("/readyz", headers=auth)
        assert detailed.status_code == 503 and detailed.json()["checks"]["rasa"]["ok"] is False


# ---------------------------------------------------------------- finding 9: sessions can be revoked


async def test_f9_a_new_conversation_revokes_the_old_session(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    old = await start_session(client)
    assert (await say(client, text="one")).status_code == 200
    assert (await client.post("/api/v1/session", json={"new": True})).json()["created"] is True
    assert (await say(client, text="two")).status_code == 200  # the new session works
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, old, domain="gateway.test", path="/api/v1")
    for response in (await say(client, text="again"), await client.get("/api/v1/history")):
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_session"
    assert len(fake.requests) == 2


async def test_f9_delete_revokes_a_bearer_session(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    token = (await client.post("/api/v1/session", json={"mode": "bearer"})).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.post("/api/v1/messages", json={"text": "hi"}, headers=headers)).status_code == 200
    assert (await client.delete("/api/v1/session", headers=headers)).status_code == 204
    response = await client.post("/api/v1/messages", json={"text": "hi"}, headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_session"
    assert (await client.delete("/api/v1/session", headers=headers)).status_code == 204  # idempotent


async def test_f9_revocation_is_shared_through_redis(
    settings_for: Any, client_for: Any, fake: FakeRasa, redis_client: redis.Redis
) -> None:
    settings = settings_for(REDIS_URL=REDIS_URL)
    async with client_for(settings) as replica_a, client_for(settings) as replica_b:
        token = (await replica_a.post("/api/v1/session", json={"mode": "bearer"})).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await replica_b.get("/api/v1/history", headers=headers)).status_code == 200
        assert (await replica_a.delete("/api/v1/session", headers=headers)).status_code == 204
        assert (await replica_b.get("/api/v1/history", headers=headers)).status_code == 401
    keys = list(redis_client.scan_iter(match="tandem:gw:revoked:*"))
    assert keys and all(0 < int(redis_client.ttl(k)) <= settings.gateway.gateway_session_ttl_seconds for k in keys)


# ---------------------------------------------------------------- finding 9: the in-process limiters forget keys


def _retained_bytes(action: Any) -> tuple[int, Any]:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = action()
        return tracemalloc.get_traced_memory()[0] - before, kept
    finally:
        tracemalloc.stop()


def test_f9_the_in_memory_limiter_does_not_keep_100k_keys() -> None:
    now = [1000.0]

    def flood() -> InMemoryRateLimiter:
        limiter = InMemoryRateLimiter(clock=lambda: now[0])
        for i in range(100_000):
            assert limiter.hit(f"key-{i}", limit=5, window_seconds=60)
        return limiter

    retained, limiter = _retained_bytes(flood)
    assert retained < 8_000_000, retained  # 100,000 kept keys take ~20 MB
    # Keys whose window emptied are dropped as well, not only the excess.
    now[0] += 61
    limiter.hit("late", limit=5, window_seconds=60)
    assert len(limiter) <= 1
    # The limit itself still holds for live keys.
    assert [limiter.hit("late", limit=5, window_seconds=60) for _ in range(5)] == [True] * 4 + [False]


async def test_f9_the_gateway_limiter_does_not_keep_100k_keys() -> None:
    limits = RateLimits(AsyncInMemoryRateLimiter(InMemoryRateLimiter()), {"address": "5/minute"})

    async def flood() -> None:
        for i in range(100_000):
            await limits.check("address", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}")

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await flood()
        await asyncio.sleep(0.05)  # let any background expiry task run
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert retained < 8_000_000, retained
    for _ in range(5):
        await limits.check("address", "192.0.2.1")
    with pytest.raises(Exception, match="rate_limited"):
        await limits.check("address", "192.0.2.1")


def test_f9_new_sessions_have_an_hourly_cap_by_default() -> None:
    items = parse_many(load_gateway_settings(_env_file=None).gateway.gateway_rate_limit_new_session)
    hourly = [i for i in items if i.get_expiry() >= 3600]
    assert hourly and min(i.amount for i in hourly) <= 60


# ---------------------------------------------------------------- finding 9: the LLM budget under the turn timeout


def test_f9_the_llm_budget_is_clearly_smaller_than_the_turn_timeout() -> None:
    # The action server checks it (it reads both); the gateway, which never calls the model, does not.
    defaults = load_action_settings(_env_file=None)
    assert defaults.llm.llm_total_timeout_seconds + 5 <= defaults.turn.rasa_timeout_seconds
    assert defaults.turn.rasa_timeout_seconds == load_gateway_settings(_env_file=None).gateway.rasa_timeout_seconds
    with pytest.raises(ValueError, match="LLM_TOTAL_TIMEOUT_SECONDS"):
        load_action_settings(_env_file=None, LLM_TOTAL_TIMEOUT_SECONDS=28, RASA_TIMEOUT_SECONDS=30)
    assert load_action_settings(_env_file=None, LLM_TOTAL_TIMEOUT_SECONDS=20, RASA_TIMEOUT_SECONDS=30)


# ---------------------------------------------------------------- finding 9: retried sends are idempotent


async def test_f9_a_retried_send_reaches_rasa_once(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    first = await say(client, text="book", client_message_id="msg-0001-aaaa")
    again = await say(client, text="book", client_message_id="msg-0001-aaaa")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["X-Correlation-Id"] == first.headers["X-Correlation-Id"]
    assert len(fake.requests) == 1
    # A button from that turn can still be used (the replay did not clear the offers).
    payload = first.json()["messages"][0]["buttons"][0]["payload"]
    assert (await say(client, payload=payload, client_message_id="msg-0002-bbbb")).status_code == 200
    # Another id is another message.
    assert (await say(client, text="book", client_message_id="msg-0003-cccc")).status_code == 200
    assert len(fake.requests) == 3
    # Reusing an id for a different message is refused.
    reused = await say(client, text="something else", client_message_id="msg-0001-aaaa")
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "client_message_id_reused"
    assert len(fake.requests) == 3


async def test_f9_a_retry_while_the_first_is_in_flight_waits_for_it(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    fake.mode, fake.delay = "slow", 0.4
    first, second = await asyncio.gather(
        say(client, text="hello", client_message_id="inflight-0001"),
        say(client, text="hello", client_message_id="inflight-0001"),
    )
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json()
    assert len(fake.requests) == 1


async def test_f9_a_retry_after_a_timeout_gets_the_turn_rasa_finished(
    client: httpx.AsyncClient, fake: FakeRasa
) -> None:
    await start_session(client)
    fake.mode, fake.delay = "slow", 1.3  # RASA_TIMEOUT_SECONDS is 1 in these tests
    timed_out = await say(client, text="hello", client_message_id="timeout-0001")
    assert timed_out.status_code == 504
    await asyncio.sleep(0.6)  # Rasa finishes the turn after the gateway gave up
    fake.mode = "ok"
    retry = await say(client, text="hello", client_message_id="timeout-0001")
    assert retry.status_code == 200, retry.text
    assert [m["text"] for m in retry.json()["messages"]] == ["You said 5 characters."]
    assert len(fake.requests) == 1


async def test_f9_idempotency_is_shared_through_redis(
    settings_for: Any, client_for: Any, fake: FakeRasa, redis_client: redis.Redis
) -> None:
    settings = settings_for(REDIS_URL=REDIS_URL)
    async with client_for(settings) as replica_a, client_for(settings) as replica_b:
        await start_session(replica_a)
        replica_b.cookies = replica_a.cookies
        first = await say(replica_a, text="hello", client_message_id="redis-0001-xyz")
        again = await say(replica_b, text="hello", client_message_id="redis-0001-xyz")
        assert first.status_code == again.status_code == 200 and first.json() == again.json()
        assert len(fake.requests) == 1
    keys = list(redis_client.scan_iter(match="tandem:gw:turns:*"))
    assert keys and all(0 < int(redis_client.ttl(k)) <= 600 for k in keys)


@pytest.mark.parametrize("bad", ["short", "x" * 65, "has space 123", "emoji-😀-12345", 12345678, None, ""])
async def test_f9_a_client_message_id_is_validated(client: httpx.AsyncClient, fake: FakeRasa, bad: Any) -> None:
    await start_session(client)
    response = await say(client, text="hello", client_message_id=bad)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_client_message_id"
    assert fake.requests == []


# ---------------------------------------------------------------- the authenticated gateway channel


async def test_turns_go_to_the_authenticated_gateway_channel(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    token = await start_session(client)
    response = await say(client, text="hello")
    assert response.status_code == 200
    sent = fake.requests[-1]
    assert sent["path"] == "/webhooks/gateway/webhook"
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    expected_client = hmac.new(SECRET.encode(), b"client-key:127.0.0.1", hashlib.sha256).hexdigest()[:32]
    assert sent["body"] == {
        "sender": _conversation_id(token),
        "message": "hello",
        "metadata": {
            "channel": "website",
            "client": expected_client,
            "correlation_id": response.headers["X-Correlation-Id"],
        },
    }
    assert "127.0.0.1" not in str(sent["body"])
