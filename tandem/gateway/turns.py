"""Idempotent sends: the turns answered per ``(conversation, client_message_id)``, for a few minutes.

The widget retries a send when the network fails or its request times out; without this, a retry
of a message that did reach Rasa is a second turn (a second booking step, a second ticket). A send
with a ``client_message_id`` first *claims* that id (atomically: Redis ``SET NX``, or a lock in
process); the gateway then records the outcome:

- ``pending``: the first send is in flight. A retry waits for it (polling, at most the turn
  timeout) and answers what the first got; past that wait it gets 409 ``duplicate_in_flight``.
- ``done``: the response (status, body) is replayed as it was, with the same turn id.
- ``unknown``: Rasa may or may not have finished the turn (the gateway gave up waiting, or Rasa
  answered garbage). A retry looks for the turn in Rasa's tracker by its correlation id and
  answers it when found; when not found it answers 409 ``duplicate_in_flight`` for as long as Rasa
  could still be working on it (its 60 s lock), and forwards it again after that.
- nothing: Rasa certainly did not get the message (not reachable): the claim is released.

Records expire after ``ttl_seconds`` (10 minutes). In Redis when ``REDIS_URL`` is set (a retry
may reach another replica), else in process, bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import redis.asyncio as aioredis

DEFAULT_TTL_SECONDS = 600
DEFAULT_MAX_ENTRIES = 20_000
# How long Rasa may still be working on a turn the gateway gave up on: its lock's lifetime.
RASA_LOCK_SECONDS = 60.0

State = Literal["pending", "done", "unknown"]


def fingerprint(kind: str, value: str) -> str:
    """What the message was, so that an id reused for another message is noticed (not the text itself)."""
    return hashlib.sha256(f"{kind}\x00{value}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TurnRecord:
    fingerprint: str
    turn_id: str
    state: State
    created_at: float = field(default_factory=time.time)
    status: int | None = None
    body: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> TurnRecord:
        data = json.loads(raw)
        return cls(**data)


class TurnStore(Protocol):
    async def claim(self, conversation_id: str, client_message_id: str, record: TurnRecord) -> TurnRecord | None:
        """Store ``record`` if the id is new and return None; else return what is stored (unchanged)."""
        ...

    async def get(self, conversation_id: str, client_message_id: str) -> TurnRecord | None: ...

    async def put(self, conversation_id: str, client_message_id: str, record: TurnRecord) -> None:
        """Replace the record (the outcome of the turn)."""
        ...

    async def release(self, conversation_id: str, client_message_id: str) -> None: ...


class MemoryTurnStore:
    """A bounded LRU with expiry for one process."""

    def __init__(
        self,
        *,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, TurnRecord]] = OrderedDict()
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: tuple[str, str]) -> TurnRecord | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def _store(self, key: tuple[str, str], record: TurnRecord) -> None:
        self._entries[key] = (self._clock() + self._ttl, record)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def claim(self, conversation_id: str, client_message_id: str, record: TurnRecord) -> TurnRecord | None:
        key = (conversation_id, client_message_id)
        async with self._lock:
            existing = self._live(key)
            if existing is not None:
                return existing
            self._store(key, record)
            return None

    async def get(self, conversation_id: str, client_message_id: str) -> TurnRecord | None:
        async with self._lock:
            return self._live((conversation_id, client_message_id))

    async def put(self, conversation_id: str, client_message_id: str, record: TurnRecord) -> None:
        async with self._lock:
            self._store((conversation_id, client_message_id), record)

    async def release(self, conversation_id: str, client_message_id: str) -> None:
        async with self._lock:
            self._entries.pop((conversation_id, client_message_id), None)


class RedisTurnStore:
    """One JSON value per ``(conversation, id)``; the claim is ``SET NX EX``, atomic across replicas."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix

    def _key(self, conversation_id: str, client_message_id: str) -> str:
        return f"{self._prefix}{conversation_id}:{client_message_id}"

    async def claim(self, conversation_id: str, client_message_id: str, record: TurnRecord) -> TurnRecord | None:
        key = self._key(conversation_id, client_message_id)
        if await self._client.set(key, record.to_json(), ex=self._ttl, nx=True):
            return None
        existing = await self._client.get(key)
        if existing is None:  # expired between the two calls: try once more
            return None if await self._client.set(key, record.to_json(), ex=self._ttl, nx=True) else record
        return TurnRecord.from_json(existing)

    async def get(self, conversation_id: str, client_message_id: str) -> TurnRecord | None:
        raw = await self._client.get(self._key(conversation_id, client_message_id))
        return TurnRecord.from_json(raw) if raw is not None else None

    async def put(self, conversation_id: str, client_message_id: str, record: TurnRecord) -> None:
        await self._client.set(self._key(conversation_id, client_message_id), record.to_json(), ex=self._ttl)

    async def release(self, conversation_id: str, client_message_id: str) -> None:
        await self._client.delete(self._key(conversation_id, client_message_id))
