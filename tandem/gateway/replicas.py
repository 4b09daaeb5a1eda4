"""Which Rasa replica serves a conversation: rendezvous hashing over the healthy ones (issue 15).

Every Rasa replica shares the tracker store, but one conversation's turns should run in one process:
Rasa's lock store orders a conversation's turns, and a turn that overlaps another one of the same
conversation on a second replica is exactly what its locks must then catch. So the gateway sends
each conversation to one replica and moves it only when that replica dies; the atomic lock store
(tandem_rasa/lock_store.py) guards the moment of the move (a turn the dead replica may still be
finishing against one on the new replica).

Rendezvous (highest-random-weight) hashing: each replica scores ``blake2b(url, conversation id)``
and the healthy replica with the highest score wins. The score depends on that pair only, so when
a replica goes down only its own conversations move (each to its second-best replica, which spreads
them over the others), and when it comes back exactly those return; a conversation of a replica
that stays up never moves. The hash is blake2b, not :func:`hash` (salted per process): every
gateway process and every restart picks the same replica.

Health is passive and active. A request that never reached a replica (connection refused, connect
timeout) marks it down at once (:class:`~tandem.gateway.upstream.RasaClient` does that); the health
task (:meth:`RasaReplicas.watch`, run by the app's lifespan) probes every replica every
``RASA_HEALTH_INTERVAL_SECONDS`` with the readiness check: a success brings a replica back; a refusal
or an error takes it down, a slow answer only the third time in a row (:data:`SLOW_PROBES_BEFORE_DOWN`):
under load a replica's event loop is busy and its ``/status`` may miss the check's timeout while it
serves its conversations well; moving them on every slow probe would make them flap. Before the
first probe every replica counts as up (nothing is probed at construction).
When none is up, :meth:`RasaReplicas.pick` picks among all, and the request fails with the usual
clear error (or succeeds, if the replica came back before its probe said so).

Replicas are named by their index in ``RASA_URL`` (0-based) in logs, metrics and readiness, never by
their URL: a URL may carry credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import Gauge

from tandem.gateway.errors import UpstreamError

# Probe one replica (by index): returns when it is ready, raises when it is not.
Probe = Callable[[int], Awaitable[None]]
# A replica whose probe times out this many times in a row is down (a refusal: at once).
SLOW_PROBES_BEFORE_DOWN = 3


def rendezvous_score(url: str, conversation_id: str) -> int:
    """The weight of ``url`` for ``conversation_id``: the same in every process and after restarts."""
    # A NUL cannot occur in a URL, so no two (url, id) pairs give the same bytes.
    data = url.encode("utf-8") + b"\x00" + conversation_id.encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


@dataclass
class ReplicaHealth:
    """One replica's state as the gateway sees it (``reason``: why it is down, short, no hostnames)."""

    up: bool = True
    reason: str | None = None
    slow_probes: int = 0  # probes in a row that timed out


class ReplicasDown(UpstreamError):
    """The readiness check of Rasa: no replica passed its check (``replicas``: each one's state)."""

    def __init__(self, reason: str, replicas: list[dict[str, Any]]) -> None:
        super().__init__("unavailable", 503, "not_ready", reason)
        self.replicas = replicas


class RasaReplicas:
    """The Rasa replicas of ``RASA_URL`` and their health; :meth:`pick` says where a conversation goes."""

    def __init__(self, urls: Sequence[str], *, log: logging.Logger, up_gauge: Gauge | None = None) -> None:
        if not urls:
            raise ValueError("at least one Rasa replica is needed")
        self.urls = [url.rstrip("/") for url in urls]
        if len(set(self.urls)) != len(self.urls):
            raise ValueError("each Rasa replica must be listed once")
        self._health = [ReplicaHealth() for _ in self.urls]
        self.log = log
        self._gauge = up_gauge
        for index in range(len(self.urls)):
            self._set_gauge(index)

    def __len__(self) -> int:
        return len(self.urls)

    def url(self, index: int) -> str:
        return self.urls[index]

    def is_up(self, index: int) -> bool:
        return self._health[index].up

    def pick(self, conversation_id: str) -> int:
        """The index of the replica that serves ``conversation_id``: the highest score among the
        healthy replicas, among all of them when none is healthy."""
        candidates = [i for i, health in enumerate(self._health) if health.up] or list(range(len(self.urls)))
        return max(candidates, key=lambda i: rendezvous_score(self.urls[i], conversation_id))

    def mark_down(self, index: int, reason: str, *, cause: str) -> None:
        """Count replica ``index`` down (``cause``: ``request`` or ``probe``); its conversations move."""
        health = self._health[index]
        was_up = health.up
        health.up, health.reason = False, reason
        if was_up:
            self._set_gauge(index)
            self.log.warning(
                "rasa replica down: its conversations move to the other replicas",
                extra={"event": "rasa_replica_down", "replica": index, "reason": reason, "cause": cause},
            )

    def mark_up(self, index: int) -> None:
        """Count replica ``index`` up again: its conversations come back to it."""
        health = self._health[index]
        if health.up:
            return
        health.up, health.reason = True, None
        self._set_gauge(index)
        self.log.info("rasa replica up", extra={"event": "rasa_replica_up", "replica": index})

    def states(self) -> list[dict[str, Any]]:
        """Each replica's state for readiness: index, up, and why when down (never its URL)."""
        return [
            {"index": i, "up": health.up, **({} if health.up else {"reason": health.reason})}
            for i, health in enumerate(self._health)
        ]

    async def probe_all(self, probe: Probe, *, timeout: float) -> list[dict[str, Any]]:
        """Probe every replica at once (each for at most ``timeout`` seconds) and record the results;
        raises :class:`ReplicasDown` when none passed, else returns :meth:`states`."""

        def slow(index: int) -> None:
            health = self._health[index]
            health.slow_probes += 1
            if health.slow_probes >= SLOW_PROBES_BEFORE_DOWN:
                self.mark_down(index, "timeout", cause="probe")

        async def one(index: int) -> None:
            try:
                await asyncio.wait_for(probe(index), timeout)
            except TimeoutError:
                slow(index)
            except UpstreamError as exc:
                if exc.kind == "timeout":
                    slow(index)
                else:
                    self.mark_down(index, exc.message, cause="probe")
            except Exception as exc:  # any failure of the probe means "down", whatever its type
                self.mark_down(index, type(exc).__name__, cause="probe")
            else:
                self._health[index].slow_probes = 0
                self.mark_up(index)

        await asyncio.gather(*(one(i) for i in range(len(self.urls))))
        states = self.states()
        if not any(state["up"] for state in states):
            reasons = {state["reason"] for state in states}
            reason = reasons.pop() if len(reasons) == 1 else "no replica is ready"
            raise ReplicasDown(str(reason), states)
        return states

    async def watch(self, probe: Probe, *, every: float, timeout: float) -> None:
        """The health task: probe every replica now and then every ``every`` seconds, until cancelled."""
        while True:
            # All down: logged replica by replica; requests then go to the replica picked among all.
            with contextlib.suppress(ReplicasDown):
                await self.probe_all(probe, timeout=timeout)
            await asyncio.sleep(every)

    def _set_gauge(self, index: int) -> None:
        if self._gauge is not None:
            self._gauge.labels(str(index)).set(1 if self._health[index].up else 0)
