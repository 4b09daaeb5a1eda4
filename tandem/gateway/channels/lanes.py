"""One turn at a time per conversation, in arrival order, after the platform has had its 200.

Slack wants an answer within 3 s (else it retries) and a turn can take longer (Rasa, the action
server, the LLM), so a route acknowledges at once and the turn runs in the background. Two
messages of one person sent in quick succession must still reach Rasa in the order they were
written, and one after the other (Rasa's lock would serialise them, but in no particular order).
:class:`ConversationLanes` keeps a FIFO queue per key with one worker task per busy key; keys run
concurrently. Queues are bounded (a flood from one conversation is refused, not buffered without
limit), and a job's failure is logged and does not stop the lane.

This orders turns within one gateway process; with several replicas, the load balancer (or the
conversation-affine routing) must send one conversation's events to one replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["ConversationLanes", "Job"]

Job = Callable[[], Awaitable[None]]

_log = logging.getLogger(__name__)


class ConversationLanes:
    """``submit(key, job)`` runs ``job()`` after every job submitted earlier for ``key`` has finished."""

    def __init__(self, *, max_pending_per_key: int = 20, max_busy_keys: int = 10_000) -> None:
        self._max_pending = max_pending_per_key
        self._max_keys = max_busy_keys
        self._queues: dict[str, deque[Job]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def busy_keys(self) -> int:
        return len(self._queues)

    def submit(self, key: str, job: Job) -> bool:
        """Queue ``job`` for ``key``; False (and nothing queued) when the lane or the lanes are full."""
        if self._closed:
            return False
        queue = self._queues.get(key)
        if queue is None:
            if len(self._queues) >= self._max_keys:
                return False
            queue = self._queues[key] = deque()
            queue.append(job)
            task = asyncio.get_running_loop().create_task(self._run(key, queue))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
            return True
        if len(queue) >= self._max_pending:
            return False
        queue.append(job)
        return True

    async def _run(self, key: str, queue: deque[Job]) -> None:
        try:
            while queue:
                job = queue[0]
                try:
                    await job()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The key is a conversation id (opaque); the job's own logs say what failed.
                    _log.exception("a background turn failed", extra={"conversation_id": key})
                finally:
                    queue.popleft()
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]

    async def drain(self, timeout: float) -> bool:
        """Wait until every queued job has run (or ``timeout`` passed); True when all finished."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._workers:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            await asyncio.wait(set(self._workers), timeout=remaining)
        return True

    async def aclose(self, timeout: float = 5.0) -> None:
        """Refuse new jobs, let the queued ones finish for up to ``timeout``, cancel the rest."""
        self._closed = True
        if not await self.drain(timeout):
            for task in list(self._workers):
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
