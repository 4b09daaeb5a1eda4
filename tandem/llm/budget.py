"""Token budgets per conversation, per client and per day (UTC), in-process or in Redis.

Before a call the chain asks whether the estimated prompt plus ``max_tokens`` still fits; after
it, the real usage is spent. When a budget is exhausted the chain replies in degraded mode
(retrieval only). A Redis failure fails closed (:class:`~tandem.errors.Unavailable`): budgets
exist to bound spending, so without them the chain does not call the model.

The per-conversation budget alone is bypassed by opening new conversations, and the daily one
is then a kill switch anybody can pull; the per-client budget (the gateway's opaque client key,
``LLM_BUDGET_TOKENS_PER_CLIENT`` a day) bounds what one address can spend to a small share of
the day. A turn without a client key (``rasa shell``, tests) is bound by the other two only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tandem.errors import Unavailable

_DAY_SECONDS = 86400

BudgetScope = Literal["conversation", "client", "day"]


def _utc_day() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def _hash(value: str) -> str:
    # Conversation ids can be phone numbers on some channels; client keys stay opaque: hash both.
    return hashlib.sha256(value.encode()).hexdigest()[:24]


def _refusal(
    tokens: int,
    *,
    conversation_used: int,
    client_used: int | None,
    day_used: int,
    per_conversation: int,
    per_client: int,
    per_day: int,
) -> BudgetScope | None:
    if day_used + tokens > per_day:
        return "day"
    if client_used is not None and client_used + tokens > per_client:
        return "client"
    if conversation_used + tokens > per_conversation:
        return "conversation"
    return None


class TokenBudget(Protocol):
    async def refusal(self, conversation_id: str, tokens: int, *, client: str | None = None) -> BudgetScope | None:
        """Which budget ``tokens`` more would exceed (None: they fit in all of them)."""
        ...

    async def allows(self, conversation_id: str, tokens: int, *, client: str | None = None) -> bool:
        """True when ``tokens`` more fit in the conversation's, the client's and today's budget."""
        ...

    async def spend(self, conversation_id: str, tokens: int, *, client: str | None = None) -> None:
        """Record ``tokens`` used by the conversation (and the client) today."""
        ...


class InMemoryTokenBudget:
    """Counters for one process; the conversation and client counters are forgotten when the day changes."""

    def __init__(
        self,
        *,
        per_conversation: int,
        per_day: int,
        per_client: int | None = None,
        today: Callable[[], str] = _utc_day,
    ) -> None:
        self._per_conversation = per_conversation
        self._per_day = per_day
        self._per_client = per_day if per_client is None else per_client
        self._today = today
        self._day = ""
        self._day_used = 0
        self._conversations: dict[str, int] = {}
        self._clients: dict[str, int] = {}

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day, self._day_used, self._conversations, self._clients = day, 0, {}, {}

    async def refusal(self, conversation_id: str, tokens: int, *, client: str | None = None) -> BudgetScope | None:
        self._roll()
        return _refusal(
            tokens,
            conversation_used=self._conversations.get(conversation_id, 0),
            client_used=None if client is None else self._clients.get(client, 0),
            day_used=self._day_used,
            per_conversation=self._per_conversation,
            per_client=self._per_client,
            per_day=self._per_day,
        )

    async def allows(self, conversation_id: str, tokens: int, *, client: str | None = None) -> bool:
        return await self.refusal(conversation_id, tokens, client=client) is None

    async def spend(self, conversation_id: str, tokens: int, *, client: str | None = None) -> None:
        self._roll()
        self._conversations[conversation_id] = self._conversations.get(conversation_id, 0) + tokens
        if client is not None:
            self._clients[client] = self._clients.get(client, 0) + tokens
        self._day_used += tokens


class RedisTokenBudget:
    """Counters in Redis, shared by every replica; keys expire after a day or two."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        per_conversation: int,
        per_day: int,
        prefix: str,
        per_client: int | None = None,
        today: Callable[[], str] = _utc_day,
    ) -> None:
        self._client = client
        self._per_conversation = per_conversation
        self._per_day = per_day
        self._per_client = per_day if per_client is None else per_client
        self._prefix = prefix
        self._today = today

    def _keys(self, conversation_id: str, client: str | None) -> tuple[str, str, str | None]:
        day = self._today()
        client_key = None if client is None else f"{self._prefix}client:{day}:{_hash(client)}"
        return f"{self._prefix}day:{day}", f"{self._prefix}conv:{day}:{_hash(conversation_id)}", client_key

    async def refusal(self, conversation_id: str, tokens: int, *, client: str | None = None) -> BudgetScope | None:
        day_key, conv_key, client_key = self._keys(conversation_id, client)
        try:
            values = await self._client.mget(day_key, conv_key, *([client_key] if client_key else []))
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable("token budget unavailable") from exc
        return _refusal(
            tokens,
            conversation_used=int(values[1] or 0),
            client_used=int(values[2] or 0) if client_key else None,
            day_used=int(values[0] or 0),
            per_conversation=self._per_conversation,
            per_client=self._per_client,
            per_day=self._per_day,
        )

    async def allows(self, conversation_id: str, tokens: int, *, client: str | None = None) -> bool:
        return await self.refusal(conversation_id, tokens, client=client) is None

    async def spend(self, conversation_id: str, tokens: int, *, client: str | None = None) -> None:
        day_key, conv_key, client_key = self._keys(conversation_id, client)
        try:
            pipe = self._client.pipeline(transaction=True)
            for key in (day_key, conv_key, client_key):
                if key is not None:
                    pipe.incrby(key, tokens)
                    pipe.expire(key, 2 * _DAY_SECONDS)
            await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable("token budget unavailable") from exc
