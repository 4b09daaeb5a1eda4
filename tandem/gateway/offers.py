"""The button payloads the bot last offered in each conversation, kept on the server.

A payload such as ``/inform{"cabin": "economy"}`` skips Rasa's NLU, so a client may only send one the
bot has just offered in that conversation. In-process (bounded, with expiry) by default; in Redis when
``REDIS_URL`` is set, so that every gateway replica sees the same offers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis


class OfferStore(Protocol):
    async def get(self, conversation_id: str) -> set[str] | None:
        """The offered payloads, or None when nothing is recorded (unknown or expired)."""
        ...

    async def set(self, conversation_id: str, payloads: set[str]) -> None:
        """Replace the offered payloads (an empty set means: nothing is offered now)."""
        ...


class MemoryOfferStore:
    """A bounded LRU with expiry for one process: old conversations fall out instead of growing forever."""

    def __init__(
        self, *, ttl_seconds: int, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def get(self, conversation_id: str) -> set[str] | None:
        async with self._lock:
            entry = self._entries.get(conversation_id)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[conversation_id]
                return None
            self._entries.move_to_end(conversation_id)
            return set(entry[1])

    async def set(self, conversation_id: str, payloads: set[str]) -> None:
        async with self._lock:
            self._entries[conversation_id] = (self._clock() + self._ttl, frozenset(payloads))
            self._entries.move_to_end(conversation_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


class RedisOfferStore:
    """One JSON list per conversation with the session's lifetime as expiry."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix

    async def get(self, conversation_id: str) -> set[str] | None:
        raw = await self._client.get(self._prefix + conversation_id)
        if raw is None:
            return None
        values = json.loads(raw)
        return {str(v) for v in values} if isinstance(values, list) else None

    async def set(self, conversation_id: str, payloads: set[str]) -> None:
        await self._client.set(self._prefix + conversation_id, json.dumps(sorted(payloads)), ex=self._ttl)
