"""Revoked sessions: a record per session id until the token would have expired anyway.

Session tokens are stateless (signed), so "new conversation" and ``DELETE /api/v1/session`` could
not end one before its 7 days. A revocation stores the session id with the token's remaining
lifetime as expiry; every verified token is then checked against it. In Redis when ``REDIS_URL`` is
set (every replica sees a revocation at once); else in process, bounded.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from typing import Protocol

import redis.asyncio as aioredis

from tandem.gateway.logs import LOGGER_NAME

# In-process records: one session id (22 characters) and a float each, ~150 bytes; 100,000 is ~15 MB.
DEFAULT_MAX_ENTRIES = 100_000


class RevocationStore(Protocol):
    async def revoke(self, session_id: str, *, expires_at: float) -> None:
        """Refuse this session from now until ``expires_at`` (epoch seconds)."""
        ...

    async def is_revoked(self, session_id: str) -> bool: ...


class MemoryRevocationStore:
    """For one process. Expired records are dropped; beyond ``max_entries`` the record that expires
    soonest is dropped first (its token had the least time left), with a warning in the log.

    The bound is what keeps a flood of revocations from growing memory; production with several
    replicas uses Redis, which has no such bound.
    """

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        self._max = max_entries
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (expires_at, session id), soonest first
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def _drop_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            expires_at, session_id = heapq.heappop(self._heap)
            if self._expiry.get(session_id) == expires_at:
                del self._expiry[session_id]

    async def revoke(self, session_id: str, *, expires_at: float) -> None:
        async with self._lock:
            now = self._clock()
            if expires_at <= now:
                return
            self._drop_expired(now)
            if session_id in self._expiry:
                return
            self._expiry[session_id] = expires_at
            heapq.heappush(self._heap, (expires_at, session_id))
            if len(self._expiry) > self._max:
                _, dropped = heapq.heappop(self._heap)
                self._expiry.pop(dropped, None)
                logging.getLogger(LOGGER_NAME).warning(
                    "revocation store full: the revocation expiring soonest was dropped",
                    extra={"event": "revocations_full", "max_entries": self._max},
                )

    async def is_revoked(self, session_id: str) -> bool:
        async with self._lock:
            expires_at = self._expiry.get(session_id)
            return expires_at is not None and expires_at > self._clock()


class RedisRevocationStore:
    """One key per revoked session id, expiring with the token."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._prefix = prefix
        self._clock = clock

    async def revoke(self, session_id: str, *, expires_at: float) -> None:
        remaining = int(expires_at - self._clock()) + 1
        if remaining > 0:
            await self._client.set(self._prefix + session_id, b"1", ex=remaining)

    async def is_revoked(self, session_id: str) -> bool:
        return bool(await self._client.exists(self._prefix + session_id))
