"""The JSON contract, the sanitiser, the cache, budgets (in process and Redis), backoff, settings."""

from __future__ import annotations

import json
import random
import uuid

import openai
import pytest
import redis.asyncio as aioredis

from tandem.errors import Unavailable
from tandem.guard import PiiMasker
from tandem.llm import (
    CircuitBreaker,
    InMemoryAnswerCache,
    InMemoryTokenBudget,
    LlmClient,
    LlmReply,
    OutputSanitizer,
    RedisAnswerCache,
    RedisTokenBudget,
    cache_key,
    estimate_tokens,
    parse_reply,
)
from tandem.settings import load_action_settings

from .conftest import fallback_settings

REDIS_URL = "redis://127.0.0.1:6379/15"


def test_parse_reply_accepts_exactly_the_contract() -> None:
    good = {"intent": None, "answer": "Yes.", "confidence": 0.7, "handoff": False, "sources": ["a#b"]}
    assert parse_reply(json.dumps(good)) == LlmReply(**good)
    assert parse_reply("```json\n" + json.dumps(good) + "\n```") is not None
    for bad in (
        None,
        "",
        "nope",
        "[]",
        json.dumps({**good, "confidence": -0.1}),
        json.dumps({**good, "extra": 1}),
        json.dumps({**good, "confidence": True}),
        json.dumps({k: v for k, v in good.items() if k != "handoff"}),
        json.dumps({**good, "sources": "a#b"}),
        json.dumps({**good, "answer": "x" * 9000}),
    ):
        assert parse_reply(bad) is None, bad


def test_sanitizer(masker: PiiMasker) -> None:
    s = OutputSanitizer(
        masker,
        allowed_hosts=["andaman-air.example"],
        max_chars=120,
        secret_texts=["one two three four five six seven eight nine ten"],
    )
    assert s.clean("<b>Hi</b> see [here](https://bad.example/x) and https://help.andaman-air.example/a") == (
        "Hi see here and https://help.andaman-air.example/a"
    )
    assert s.clean("## Title\n- **bold** item") == "Title bold item"
    assert s.clean("mail jane@example.com") == "mail [EMAIL]"
    assert s.clean("Sure: one two three four five six seven eight nine") == ""
    capped = s.clean("First sentence is here. " * 20)
    assert len(capped) <= 120 and capped.endswith(".")


def test_cache_key_normalises_and_separates() -> None:
    k = cache_key("Can I bring my surfboard?", intents=["b", "a"], kb_version="v1")
    assert k == cache_key("  can i bring my SURFBOARD ", intents=["a", "b"], kb_version="v1")
    assert k != cache_key("Can I bring my surfboard?", intents=["a"], kb_version="v1")
    assert k != cache_key("Can I bring my surfboard?", intents=["a", "b"], kb_version="v2")
    assert k != cache_key("Can I bring my surfboard?", intents=["a", "b"], kb_version="v1", active_form="f")


async def test_in_memory_cache_ttl_and_bound() -> None:
    now = [0.0]
    cache = InMemoryAnswerCache(max_entries=2, ttl_seconds=10, clock=lambda: now[0])
    reply = LlmReply(intent=None, answer="x", confidence=1, handoff=False, sources=[])
    for key in ("a", "b", "c"):
        await cache.set(key, reply)
    assert await cache.get("a") is None and await cache.get("c") == reply
    now[0] = 11
    assert await cache.get("c") is None


async def test_in_memory_budget_per_conversation_and_day() -> None:
    day = ["2025-01-01"]
    budget = InMemoryTokenBudget(per_conversation=100, per_day=150, today=lambda: day[0])
    assert await budget.allows("a", 100)
    await budget.spend("a", 80)
    assert not await budget.allows("a", 30) and await budget.allows("b", 70)
    await budget.spend("b", 60)
    assert not await budget.allows("c", 20)  # the day is full
    day[0] = "2025-01-02"
    assert await budget.allows("a", 100)


async def test_redis_cache_and_budget() -> None:
    # Needs the Redis of the test environment: fails (does not skip) when it is down.
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        assert await client.ping()
        cache = RedisAnswerCache(client, ttl_seconds=60, prefix=prefix)
        reply = LlmReply(intent="book_flight", answer=None, confidence=0.9, handoff=False, sources=[])
        assert await cache.get("k") is None
        await cache.set("k", reply)
        assert await cache.get("k") == reply
        assert 0 < await client.ttl(prefix + "k") <= 60
        budget = RedisTokenBudget(client, per_conversation=100, per_day=1000, prefix=prefix)
        assert await budget.allows("+66812345678", 100)
        await budget.spend("+66812345678", 90)
        assert not await budget.allows("+66812345678", 20)
        keys = [k.decode() for k in await client.keys(prefix + "*")]
        assert not any("66812345678" in k for k in keys)  # conversation ids are hashed
    finally:
        keys = await client.keys(prefix + "*")
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_redis_down_cache_misses_and_budget_fails_closed() -> None:
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        cache = RedisAnswerCache(client, prefix="tandem-test:answer:")
        assert await cache.get("k") is None
        await cache.set("k", LlmReply(intent=None, answer=None, confidence=0, handoff=False, sources=[]))
        with pytest.raises(Unavailable):
            await RedisTokenBudget(client, prefix="tandem-test:budget:", per_conversation=1, per_day=1).allows("c", 1)
    finally:
        await client.aclose()


def test_backoff_is_exponential_bounded_and_jittered() -> None:
    client = LlmClient(
        openai.AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1", max_retries=0),
        model="m",
        max_tokens=10,
        temperature=0,
        backoff_base_seconds=0.5,
        backoff_max_seconds=2.0,
        rng=random.Random(1),
    )
    error = openai.APITimeoutError(request=None)  # type: ignore[arg-type]
    delays = [client._delay(attempt, error) for attempt in range(6)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(1.0 <= d <= 2.0 for d in delays[2:])
    assert len({round(d, 6) for d in delays[2:]}) > 1  # jitter


def test_client_configured_only_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert LlmClient.from_settings(fallback_settings().llm) is None  # no model: retrieval only
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("LLM_MODEL", "gpt-test")
    monkeypatch.setenv("LLM_BASE_URL", "http://127.0.0.1:8000/v1")
    settings = load_action_settings(_env_file=None)  # read from the environment
    assert settings.llm.llm_secret == "sk-from-env" and settings.llm.llm_timeout_seconds == 10
    client = LlmClient.from_settings(settings.llm)
    assert client is not None and client.model == "gpt-test"
    assert str(client._client.base_url).startswith("http://127.0.0.1:8000/v1")
    assert client._client.max_retries == 0 and client._client.timeout == 10


def test_token_estimate() -> None:
    assert estimate_tokens("Can I bring my surfboard?") == 7
    assert estimate_tokens("") == 0


def test_circuit_breaker_opens_half_opens_and_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failures=3, cooldown_seconds=30, clock=lambda: now[0])
    for _ in range(2):
        assert breaker.allow()
        breaker.record(True)
    assert breaker.state == "closed"
    assert breaker.allow()
    breaker.record(False)  # an answer resets the count
    for _ in range(3):
        assert breaker.allow()
        breaker.record(True)
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 29.9
    assert not breaker.allow()
    now[0] = 30.0
    assert breaker.state == "half_open"
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record(None)  # the trial was cancelled: no evidence, another may go
    assert breaker.allow()
    breaker.record(True)  # the trial failed: open again for a whole cool-down
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 60.0
    assert breaker.allow()
    breaker.record(False)  # the trial answered (or refused: the endpoint is up)
    assert breaker.state == "closed" and breaker.allow()


def test_circuit_breaker_off_with_zero_failures() -> None:
    breaker = CircuitBreaker(failures=0, cooldown_seconds=30, clock=lambda: 0.0)
    for _ in range(10):
        assert breaker.allow()
        breaker.record(True)
    assert breaker.state == "closed"
