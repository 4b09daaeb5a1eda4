"""Exactly-once for platform events, and the server-side map behind Telegram's button ids.

Slack retries an event it thinks we missed (after 3 s, on a non-2xx answer, on a connection
error) and sends an @-mention twice; Telegram redelivers an update until it gets a 2xx. Each
event has a key (:mod:`.slack`, :mod:`.telegram`); the first :meth:`DedupeStore.claim` of a key
wins and every later one is told "seen" for ``ttl_seconds``. In Redis (``SET key 1 NX EX ttl``,
atomic, shared by every gateway replica) when ``REDIS_URL`` is set, else in process (bounded:
expired keys and then the least recently claimed ones make room).

:class:`CallbackStore` keeps what a Telegram button id stands for (the bot's payload, the title
shown and the conversation it was offered in) for as long as the button may be clicked: the
``callback_data`` Telegram carries is 64 bytes at most, and a payload in it could be forged by
any client; an id only names something the bot offered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Protocol

import redis.asyncio as aioredis

__all__ = [
    "CallbackEntry",
    "CallbackStore",
    "DedupeStore",
    "MemoryCallbackStore",
    "MemoryDedupeStore",
    "RedisCallbackStore",
    "RedisDedupeStore",
]

DEFAULT_MAX_KEYS = 100_000


def _check_ttl(ttl_seconds: int) -> None:
    if ttl_seconds < 1:
        raise ValueError("ttl_seconds must be at least 1")


class DedupeStore(Protocol):
    async def claim(self, key: str, ttl_seconds: int) -> bool:
        """True the first time ``key`` is claimed (within ``ttl_seconds``), False every later time."""
        ...


class MemoryDedupeStore:
    """One process's claims: expiry per key, at most ``max_keys`` (least recently claimed go first)."""

    def __init__(self, *, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._max = max_keys
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge_expired(self, now: float) -> None:
        # Entries are in claim order, not expiry order (TTLs differ), so look at every one; this
        # runs only when the store is full.
        for key in [k for k, expires in self._expiry.items() if expires <= now]:
            del self._expiry[key]

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        _check_ttl(ttl_seconds)
        async with self._lock:
            now = self._clock()
            expires = self._expiry.get(key)
            if expires is not None and expires > now:
                self._expiry.move_to_end(key)
                return False
            self._expiry[key] = now + ttl_seconds
            self._expiry.move_to_end(key)
            if len(self._expiry) > self._max:
                self._purge_expired(now)
                while len(self._expiry) > self._max:
                    self._expiry.popitem(last=False)
            return True


class RedisDedupeStore:
    """``SET <prefix><key> 1 NX EX ttl``: one atomic command, the same answer on every replica."""

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def claim(self, key: str, ttl_seconds: int) -> bool:
        _check_ttl(ttl_seconds)
        return bool(await self._client.set(self._prefix + key, b"1", nx=True, ex=ttl_seconds))


@dataclass(frozen=True)
class CallbackEntry:
    """A button the bot offered: its payload, the title shown, and the conversation it belongs to."""

    payload: str
    title: str
    conversation_id: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> CallbackEntry | None:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        fields = (data.get("payload"), data.get("title"), data.get("conversation_id"))
        if not all(isinstance(value, str) for value in fields):
            return None
        return cls(payload=data["payload"], title=data["title"], conversation_id=data["conversation_id"])


class CallbackStore(Protocol):
    async def put(self, entries: Mapping[str, CallbackEntry], ttl_seconds: int) -> None:
        """Remember these button ids (before the message that carries them is sent)."""
        ...

    async def get(self, callback_id: str) -> CallbackEntry | None:
        """What the id stands for, or None (unknown, expired, or never ours)."""
        ...


class MemoryCallbackStore:
    """One process's button ids: expiry per id, at most ``max_entries`` (oldest go first)."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CallbackEntry]] = OrderedDict()
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    async def put(self, entries: Mapping[str, CallbackEntry], ttl_seconds: int) -> None:
        _check_ttl(ttl_seconds)
        async with self._lock:
            expires = self._clock() + ttl_seconds
            for callback_id, entry in entries.items():
                self._entries[callback_id] = (expires, entry)
                self._entries.move_to_end(callback_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    async def get(self, callback_id: str) -> CallbackEntry | None:
        async with self._lock:
            item = self._entries.get(callback_id)
            if item is None:
                return None
            if item[0] <= self._clock():
                del self._entries[callback_id]
                return None
            return item[1]


class RedisCallbackStore:
    """One JSON string per button id with the button's lifetime as expiry."""

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    async def put(self, entries: Mapping[str, CallbackEntry], ttl_seconds: int) -> None:
        _check_ttl(ttl_seconds)
        if not entries:
            return
        async with self._client.pipeline(transaction=True) as pipe:
            for callback_id, entry in entries.items():
                pipe.set(self._prefix + callback_id, entry.to_json(), ex=ttl_seconds)
            await pipe.execute()

    async def get(self, callback_id: str) -> CallbackEntry | None:
        raw = await self._client.get(self._prefix + callback_id)
        return None if raw is None else CallbackEntry.from_json(raw)
