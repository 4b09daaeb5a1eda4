"""Token budgets per conversation and per day (UTC), in-process or in Redis.

Before a call the chain asks whether the estimated prompt plus ``max_tokens`` still fits; after
it, the real usage is spent. When a budget is exhausted the chain replies in degraded mode
(retrieval only). A Redis failure fails closed (:class:`~tandem.errors.Unavailable`): budgets
exist to bound spending, so without them the chain does not call the model.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tandem.errors import Unavailable

_DAY_SECONDS = 86400


def _utc_day() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


class TokenBudget(Protocol):
    async def allows(self, conversation_id: str, tokens: int) -> bool:
        """True when ``tokens`` more fit in both the conversation's and today's budget."""
        ...

    async def spend(self, conversation_id: str, tokens: int) -> None:
        """Record ``tokens`` used by the conversation today."""
        ...


class InMemoryTokenBudget:
    """Counters for one process; the conversation counters are forgotten when the day changes."""

    def __init__(self, *, per_conversation: int, per_day: int, today: Callable[[], str] = _utc_day) -> None:
        self._per_conversation = per_conversation
        self._per_day = per_day
        self._today = today
        self._day = ""
        self._day_used = 0
        self._conversations: dict[str, int] = {}

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day, self._day_used, self._conversations = day, 0, {}

    async def allows(self, conversation_id: str, tokens: int) -> bool:
        self._roll()
        used = self._conversations.get(conversation_id, 0)
        return used + tokens <= self._per_conversation and self._day_used + tokens <= self._per_day

    async def spend(self, conversation_id: str, tokens: int) -> None:
        self._roll()
        self._conversations[conversation_id] = self._conversations.get(conversation_id, 0) + tokens
        self._day_used += tokens


class RedisTokenBudget:
    """Counters in Redis, shared by every replica; keys expire after a day or two."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        per_conversation: int,
        per_day: int,
        prefix: str = "tandem:llm:budget:",
        today: Callable[[], str] = _utc_day,
    ) -> None:
        self._client = client
        self._per_conversation = per_conversation
        self._per_day = per_day
        self._prefix = prefix
        self._today = today

    def _keys(self, conversation_id: str) -> tuple[str, str]:
        # Conversation ids can be phone numbers on some channels: hash them.
        conv = hashlib.sha256(conversation_id.encode()).hexdigest()[:24]
        day = self._today()
        return f"{self._prefix}day:{day}", f"{self._prefix}conv:{day}:{conv}"

    async def allows(self, conversation_id: str, tokens: int) -> bool:
        day_key, conv_key = self._keys(conversation_id)
        try:
            day_used, conv_used = await self._client.mget(day_key, conv_key)
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable("token budget unavailable") from exc
        return int(conv_used or 0) + tokens <= self._per_conversation and int(day_used or 0) + tokens <= self._per_day

    async def spend(self, conversation_id: str, tokens: int) -> None:
        day_key, conv_key = self._keys(conversation_id)
        try:
            pipe = self._client.pipeline(transaction=True)
            pipe.incrby(day_key, tokens)
            pipe.expire(day_key, 2 * _DAY_SECONDS)
            pipe.incrby(conv_key, tokens)
            pipe.expire(conv_key, 2 * _DAY_SECONDS)
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable("token budget unavailable") from exc
