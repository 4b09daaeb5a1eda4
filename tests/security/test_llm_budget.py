"""Finding 6 (LLM half): the per-conversation token budget is bypassed by new sessions.

One client (the gateway's opaque key) opening conversation after conversation must run into its
own daily budget long before the global one; other clients are still answered by the model. In
process and in a real Redis (``TEST_REDIS_URL``, default the local server; unreachable → error).
"""

# The fixtures are imported from llm_chains, so test arguments share their names.
# ruff: noqa: F811

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from rasa_sdk.executor import CollectingDispatcher

from actions.context import use_fallback_chain
from actions.fallback import run_chain
from tandem.llm import InMemoryTokenBudget, RedisTokenBudget
from tandem.services.fallback import FallbackChain, FallbackRequest
from tests.fallback.fake_llm import FakeLlmServer, Step, reply

from .llm_chains import (  # noqa: F401  (fixtures)
    SURF,
    ChainFactory,
    _server,
    blank_masker,
    fake_llm,
    knowledge,
    llm_chains,
)
from .trackers import responses, tracker

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PER_CLIENT = 5000
PER_DAY = 1_000_000
ATTACK = 25  # new conversations from one client


def _answers(server: FakeLlmServer) -> None:
    # 940 tokens a call: a client budget of 5,000 allows at most five calls.
    server.reset(Step(content=reply(answer="Surfboards travel in the hold.", sources=[SURF]), prompt_tokens=900))


async def _attack(chain: FallbackChain, client: str) -> list[str]:
    reasons = []
    for index in range(ATTACK):
        decision = await chain.decide(
            FallbackRequest(
                conversation_id=f"attack-{uuid.uuid4().hex}-{index}",
                text=f"Can I bring my surfboard number {index}?",
                client_key=client,
            )
        )
        reasons.append("llm" if decision.mode == "llm" else decision.reason)
    return reasons


def _settings() -> dict[str, object]:
    return {
        "LLM_BUDGET_TOKENS_PER_CLIENT": PER_CLIENT,
        "LLM_BUDGET_TOKENS_PER_DAY": PER_DAY,
        "LLM_CACHE_MAX_ENTRIES": 0,  # every turn really asks the model
    }


async def _assert_contained(chain: FallbackChain, fake_llm: FakeLlmServer) -> None:
    reasons = await _attack(chain, "attacker")
    calls = reasons.count("llm")
    assert 1 <= calls <= PER_CLIENT // 940, reasons
    assert reasons[calls:] == ["budget_exceeded"] * (ATTACK - calls), reasons
    assert len(fake_llm.requests) == calls
    # Somebody else, from another client, still gets the model's answer.
    other = await chain.decide(
        FallbackRequest(conversation_id="someone-else", text="Can I bring my surfboard?", client_key="neighbour")
    )
    assert other.mode == "llm" and other.kind == "answer"
    # And a turn without a client key (rasa shell, tests) is limited by the other budgets only.
    shell = await chain.decide(FallbackRequest(conversation_id="shell", text="Can I bring my surfboard?"))
    assert shell.mode == "llm"


async def test_one_client_cannot_spend_more_than_its_budget_in_process(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer
) -> None:
    _answers(fake_llm)
    chain = llm_chains(**_settings())
    await _assert_contained(chain, fake_llm)


@pytest.fixture
async def redis_budget() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    client = aioredis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    prefix = f"tandem-test:{uuid.uuid4().hex}:"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_one_client_cannot_spend_more_than_its_budget_in_redis(
    llm_chains: ChainFactory, fake_llm: FakeLlmServer, redis_budget: tuple[aioredis.Redis, str]
) -> None:
    client, prefix = redis_budget
    _answers(fake_llm)
    chain = llm_chains(**_settings())
    chain.budget = RedisTokenBudget(
        client, per_conversation=20000, per_day=PER_DAY, per_client=PER_CLIENT, prefix=prefix
    )
    await _assert_contained(chain, fake_llm)
    keys = [key.decode() async for key in client.scan_iter(match=f"{prefix}*")]
    assert any(":client:" in key for key in keys)
    assert all("attacker" not in key for key in keys)  # the key is hashed again
    used_today = sum([int(await client.get(k) or 0) for k in keys if ":day:" in k])
    assert used_today < PER_DAY // 50


async def test_the_action_passes_the_gateway_client_key(llm_chains: ChainFactory, fake_llm: FakeLlmServer) -> None:
    _answers(fake_llm)
    chain = llm_chains(**_settings())
    use_fallback_chain(chain)
    try:
        degraded = 0
        for index in range(ATTACK):
            dispatcher = CollectingDispatcher()
            t = tracker(
                sender=f"fresh-{index}", client="one-address", text="Can I bring my surfboard?", intent="nlu_fallback"
            )
            await run_chain(dispatcher, t)
            degraded += "utter_fallback_degraded" in responses(dispatcher)
    finally:
        use_fallback_chain(None)
    assert len(fake_llm.requests) <= PER_CLIENT // 940
    assert degraded >= ATTACK - PER_CLIENT // 940


async def test_budget_says_which_limit_refused() -> None:
    budget = InMemoryTokenBudget(per_conversation=10_000, per_day=100_000, per_client=1_000)
    assert await budget.refusal("c1", 900, client="k") is None
    await budget.spend("c1", 900, client="k")
    assert await budget.refusal("c2", 200, client="k") == "client"
    assert await budget.refusal("c2", 200, client="other") is None
    assert await budget.refusal("c2", 200) is None
    assert await budget.allows("c2", 200) and not await budget.allows("c2", 200, client="k")
