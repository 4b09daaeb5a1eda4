"""The composition root shared by the action server and the gateway: Redis and what lives in it.

One :class:`Infrastructure` per process owns the Redis clients (one blocking, for worker threads,
one asyncio, each made on first use through :mod:`tandem.redis_clients`), the key space (every
key starts with ``REDIS_KEY_PREFIX`` and its purpose, listed in :data:`KEY_PURPOSES`), and builds
what is kept there: the rate limiters, the fallback chain's answer cache and token budgets, and
the gateway's stores' clients. Without ``REDIS_URL`` each of those is the in-process variant, so
the embedded default needs no Redis. Nothing here connects at construction; the owner closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
import redis.asyncio as aioredis

from tandem.llm import (
    AnswerCache,
    InMemoryAnswerCache,
    InMemoryTokenBudget,
    RedisAnswerCache,
    RedisTokenBudget,
    TokenBudget,
)
from tandem.ratelimit import (
    AsyncInMemoryRateLimiter,
    AsyncRateLimiter,
    AsyncRedisRateLimiter,
    InMemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
)
from tandem.redis_clients import async_redis, sync_redis
from tandem.settings import FallbackSettings, RedisSettings

# Who writes under which purpose (the key is REDIS_KEY_PREFIX + purpose + ":" + the owner's key).
KEY_PURPOSES = {
    "rl": "the tools' rate limits (password resets, handoffs)",
    "gw:rl": "the gateway's rate limits (sessions, addresses, new sessions)",
    "gw:offers": "the payloads the bot offered in a conversation's last turn",
    "gw:revoked": "ended visitor sessions",
    "gw:turns": "visitors' turns by client message id (idempotent sends)",
    "gw:dedupe": "Slack and Telegram events, updates and clicks already seen (exactly-once turns)",
    "gw:callbacks": "Telegram buttons' opaque ids and the payloads they stand for",
    "gw:chatwoot": "the messages and resolves the gateway posted to Chatwoot (its webhook's echoes are dropped)",
    "llm:answer": "the fallback chain's answer cache",
    "llm:budget": "the fallback chain's token budgets",
}


@dataclass
class Infrastructure:
    """Redis clients, key space, rate limiters, cache and budgets of one process."""

    settings: RedisSettings
    _async_client: aioredis.Redis | None = field(default=None, init=False, repr=False)
    _sync_client: redis.Redis | None = field(default=None, init=False, repr=False)

    @property
    def shared(self) -> bool:
        """True when state is kept in Redis (shared by replicas), False when in process."""
        return bool(self.settings.redis_url)

    def prefix(self, purpose: str) -> str:
        """The key prefix of ``purpose`` (one of :data:`KEY_PURPOSES`)."""
        if purpose not in KEY_PURPOSES:
            raise KeyError(f"unknown Redis key purpose {purpose!r}")
        return f"{self.settings.redis_key_prefix}{purpose}:"

    def async_client(self) -> aioredis.Redis | None:
        """The process's asyncio client (None without ``REDIS_URL``)."""
        if self.shared and self._async_client is None:
            self._async_client = async_redis(self.settings)
        return self._async_client

    def sync_client(self) -> redis.Redis | None:
        """The process's blocking client for worker threads (None without ``REDIS_URL``)."""
        if self.shared and self._sync_client is None:
            self._sync_client = sync_redis(self.settings)
        return self._sync_client

    def rate_limiter(self) -> RateLimiter:
        """The tools' limiter (blocking: the tools run in worker threads)."""
        client = self.sync_client()
        return RedisRateLimiter(client, prefix=self.prefix("rl")) if client is not None else InMemoryRateLimiter()

    def async_rate_limiter(self, purpose: str = "gw:rl") -> AsyncRateLimiter:
        """A limiter for asyncio code (the gateway)."""
        client = self.async_client()
        if client is None:
            return AsyncInMemoryRateLimiter(InMemoryRateLimiter())
        return AsyncRedisRateLimiter(client, prefix=self.prefix(purpose))

    def answer_cache(self, fallback: FallbackSettings) -> AnswerCache:
        """The fallback chain's answer cache."""
        client = self.async_client()
        if client is None:
            return InMemoryAnswerCache(
                max_entries=fallback.llm_cache_max_entries, ttl_seconds=fallback.llm_cache_ttl_seconds
            )
        return RedisAnswerCache(client, prefix=self.prefix("llm:answer"), ttl_seconds=fallback.llm_cache_ttl_seconds)

    def token_budget(self, fallback: FallbackSettings) -> TokenBudget:
        """The fallback chain's token budgets per conversation, client and day."""
        per_conversation = fallback.llm_budget_tokens_per_conversation
        per_day, per_client = fallback.llm_budget_tokens_per_day, fallback.llm_budget_tokens_per_client
        client = self.async_client()
        if client is None:
            return InMemoryTokenBudget(per_conversation=per_conversation, per_day=per_day, per_client=per_client)
        return RedisTokenBudget(
            client,
            prefix=self.prefix("llm:budget"),
            per_conversation=per_conversation,
            per_day=per_day,
            per_client=per_client,
        )

    def close(self) -> None:
        """Close the blocking client's pool (the asyncio one is closed by :meth:`aclose`)."""
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None

    async def aclose(self) -> None:
        """Close both clients' pools."""
        self.close()
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
