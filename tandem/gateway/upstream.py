"""The client of Rasa's gateway channel and HTTP API, and of the action server's health endpoint.

Turns go to the authenticated channel ``POST /webhooks/gateway/webhook`` (tandem_rasa/channel.py),
not to the open REST channel: it needs ``Authorization: Bearer <RASA_API_TOKEN>``, so only the
gateway can post messages with the metadata the actions trust (the client key, the correlation id).
Every call has a timeout. Failures become :class:`~tandem.gateway.errors.UpstreamError` (timeout,
unavailable, bad response) so callers can answer with a clear message; nothing of Rasa's error text
reaches the visitor. The API token travels only between the gateway and Rasa on localhost.

``RASA_URL`` may list several replicas: every call of a conversation (turn, tracker, resume,
trigger) goes to the replica :class:`~tandem.gateway.replicas.RasaReplicas` picks for it, with the
header ``X-Conversation-Id`` (a proxy in between can hash on it). A call that certainly never reached
its replica (connection refused, connect timeout, a proxy's 502/503) marks that replica down and is
sent once more, to the replica picked then, if that is another one. A call that may have been
delivered (a read timeout, a dropped connection, a bad answer) is never sent again: a turn must not
run twice. One exception: a turn whose connection broke while it was out (the replica was killed),
when a probe then finds the replica gone: its conversation moves, and the turn's answer is taken
from the tracker if the dead replica saved it, else the turn is sent to the new replica (a dead
process can no longer save it; Rasa saves a turn in one transaction).

A turn is one span, ``gateway.turn`` (tandem/tracing.py): its trace context goes to Rasa in the
message metadata (``traceparent``), and the action server continues the trace from there. The
span says the channel, the correlation id, the replica that answered, the HTTP status and the
outcome; never the text or the conversation id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from tandem import tracing
from tandem.gateway.errors import (
    UpstreamError,
    upstream_bad_response,
    upstream_timeout,
    upstream_turn_failed,
    upstream_unavailable,
)
from tandem.gateway.messages import turn_from_tracker
from tandem.gateway.replicas import RasaReplicas

# The error code of Rasa's gateway channel for a turn that failed unsaved (tandem_rasa/channel.py).
TURN_FAILED = "turn_failed"

# What a header value may hold of a conversation id as it is (the rest is percent-encoded).
_HEADER_SAFE = "!#$&'()*+,/:;=?@[]~"


class RasaClient:
    """Talks to the Rasa replicas of ``RASA_URL`` (one or several) with a shared connection pool."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        replicas: RasaReplicas,
        api_token: str | None,
        turn_timeout: float,
        check_timeout: float,
    ) -> None:
        self._client = client
        self.replicas = replicas
        self._token = api_token
        self._turn_timeout = turn_timeout
        self._check_timeout = check_timeout

    async def send(
        self,
        conversation_id: str,
        message: str,
        *,
        correlation_id: str,
        client_key: str,
        channel: str = "website",
    ) -> list[dict[str, Any]]:
        """One turn over the gateway channel: the bot's messages, in order.

        ``client_key`` is the opaque keyed hash of the client address (never the address itself).
        """
        attributes = {tracing.CORRELATION_ID: correlation_id, "tandem.channel": channel}
        with tracing.start_span("gateway.turn", kind=SpanKind.CLIENT, attributes=attributes) as span:
            try:
                replies = await self._send(conversation_id, message, correlation_id, client_key, channel)
            except UpstreamError as exc:
                tracing.set_outcome(span, exc.code, failed=True)
                raise
            except BaseException as exc:  # cancelled, or a bug: still the span's outcome
                tracing.set_outcome(span, type(exc).__name__, failed=True)
                raise
            span.set_attribute("tandem.replies", len(replies))
            tracing.set_outcome(span, "ok", failed=False)
            return replies

    async def _send(
        self, conversation_id: str, message: str, correlation_id: str, client_key: str, channel: str
    ) -> list[dict[str, Any]]:
        metadata = {"channel": channel, "client": client_key, "correlation_id": correlation_id}
        tracing.inject(metadata)  # the turn's span: the action server's spans are its children
        body = {
            "sender": conversation_id,
            "message": message,
            # Rasa stores the metadata with the user event: logs of both sides can be joined on it,
            # and the actions read the client key from it (per-client limits).
            "metadata": metadata,
        }
        headers = {"X-Correlation-Id": correlation_id}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"

        def post() -> Awaitable[Any]:
            return self._conversation_request(
                conversation_id,
                "POST",
                "/webhooks/gateway/webhook",
                json=body,
                timeout=self._turn_timeout,
                headers=headers,
            )

        try:
            data = await post()
        except UpstreamError as exc:
            if not exc.dropped:
                raise
            data = await self._after_a_dropped_turn(exc, conversation_id, correlation_id, post)
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise upstream_bad_response()
        return data

    async def tracker(self, conversation_id: str) -> dict[str, Any]:
        """The conversation's tracker from Rasa's HTTP API (needs ``RASA_API_TOKEN`` when Rasa has one)."""
        params = {"token": self._token} if self._token else {}
        data = await self._conversation_request(
            conversation_id,
            "GET",
            f"/conversations/{conversation_id}/tracker",
            params=params,
            timeout=self._turn_timeout,
        )
        if not isinstance(data, dict):
            raise upstream_bad_response()
        return data

    async def resume(self, conversation_id: str) -> None:
        """Resume a paused conversation (the hand-back after a handoff): Rasa predicts again.

        ``action_listen`` follows the resume as after any bot turn: the paused turn ended with
        ``action_handoff``, and rules (``intent → action``) match only after a listen.
        """
        await self._conversation_request(
            conversation_id,
            "POST",
            f"/conversations/{conversation_id}/tracker/events",
            params=self._auth(),
            json=[{"event": "resume"}, {"event": "action", "name": "action_listen"}],
            timeout=self._turn_timeout,
        )

    async def trigger(self, conversation_id: str, intent: str, entities: dict[str, Any]) -> list[dict[str, Any]]:
        """Run an external intent (``handoff_returned`` ...) in the conversation: the bot's messages."""
        data = await self._conversation_request(
            conversation_id,
            "POST",
            f"/conversations/{conversation_id}/trigger_intent",
            params=self._auth(),
            json={"name": intent, "entities": entities},
            timeout=self._turn_timeout,
        )
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise upstream_bad_response()
        return messages

    async def _after_a_dropped_turn(
        self,
        error: UpstreamError,
        conversation_id: str,
        correlation_id: str,
        post: Callable[[], Awaitable[Any]],
    ) -> Any:
        """The connection of a turn broke. A replica that still answers may still be running the
        turn: ``error`` stands (the visitor's retry goes through the replay). A replica that is gone
        cannot: its conversation moves, and the turn is answered from the tracker when the dead
        replica saved it, else sent to the new replica."""
        replica = self.replicas.pick(conversation_id)
        try:
            await asyncio.wait_for(self.check_replica(replica), self._check_timeout)
        except (UpstreamError, TimeoutError):
            self.replicas.mark_down(replica, "dropped", cause="request")
        else:
            raise error
        again = self.replicas.pick(conversation_id)
        if again == replica:
            raise error  # no other replica is up
        self.replicas.log.info(
            "rasa call sent to another replica: the first one died during the turn",
            extra={"event": "rasa_call_moved", "replica": again, "from_replica": replica},
        )
        replies = turn_from_tracker(await self.tracker(conversation_id), correlation_id)
        if replies is not None:
            return replies
        return await post()

    def _auth(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    async def _conversation_request(
        self,
        conversation_id: str,
        method: str,
        path: str,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        """One call of ``conversation_id``, to its replica; once more elsewhere if it was never delivered."""
        headers = {**(headers or {}), "X-Conversation-Id": quote(conversation_id, safe=_HEADER_SAFE)}
        replica = self.replicas.pick(conversation_id)
        try:
            return await self._request(replica, method, path, timeout=timeout, headers=headers, **kwargs)
        except UpstreamError as exc:
            # Only a call that never left may go again (a delivered turn may still run), and only
            # once: _request marked the replica down, so the pick moves when another one is up.
            again = self.replicas.pick(conversation_id)
            if exc.delivered or again == replica:
                raise
        self.replicas.log.info(
            "rasa call sent to another replica: the first one was unreachable",
            extra={"event": "rasa_call_moved", "replica": again, "from_replica": replica},
        )
        return await self._request(again, method, path, timeout=timeout, headers=headers, **kwargs)

    async def _request(self, replica: int, method: str, path: str, *, timeout: float, **kwargs: Any) -> Any:
        url = self.replicas.url(replica) + path
        # Within a turn's span: which replica it went to (the last one, when it moved).
        span = trace.get_current_span()
        span.set_attribute("tandem.rasa.replica", replica)
        try:
            response = await self._client.request(method, url, timeout=timeout, **kwargs)
        except httpx.PoolTimeout as exc:
            # Never sent, but the pool is the gateway's own (shared by every replica): the replica
            # is not to blame, and another one would wait for the same pool.
            raise upstream_timeout(delivered=False) from exc
        except httpx.ConnectTimeout as exc:
            # Never sent: Rasa did not get the request (the idempotency store may forget it).
            self.replicas.mark_down(replica, "timeout", cause="request")
            raise upstream_timeout(delivered=False) from exc
        except httpx.TimeoutException as exc:
            raise upstream_timeout() from exc
        except httpx.ConnectError as exc:
            self.replicas.mark_down(replica, "unreachable", cause="request")
            raise upstream_unavailable(delivered=False) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            # The connection broke while the request was out: delivered or not, nobody can say.
            error = upstream_unavailable()
            error.dropped = True
            raise error from exc
        except httpx.HTTPError as exc:
            raise upstream_unavailable() from exc
        span.set_attribute("http.response.status_code", response.status_code)
        if response.status_code in (502, 503):
            # A proxy in front of Rasa could not reach it.
            self.replicas.mark_down(replica, f"HTTP {response.status_code}", cause="request")
            raise upstream_unavailable(delivered=False)
        if response.status_code == 504:
            raise upstream_unavailable()
        if response.status_code == 500 and _error_code(response) == TURN_FAILED:
            # Rasa's channel: the turn failed and nothing of it was saved. The replica is not down
            # (a store or the action server failed); the visitor may send the message again.
            raise upstream_turn_failed()
        if response.status_code != 200:
            raise upstream_bad_response()
        # It answered: a replica counted down (they all were, so it was picked anyway) is back.
        self.replicas.mark_up(replica)
        try:
            return response.json()
        except ValueError as exc:
            raise upstream_bad_response() from exc

    async def check_rasa(self) -> dict[str, Any]:
        """Ready when at least one replica is ready (:meth:`check_replica`); every replica is probed
        and its state recorded. Returns each replica's state; raises
        :class:`~tandem.gateway.replicas.ReplicasDown` when none is ready."""
        # Each probe ends a little before the readiness check's own timeout (the same number), so a
        # hanging replica is reported as such instead of cutting the whole report short.
        states = await self.replicas.probe_all(self.check_replica, timeout=self._check_timeout * 0.9)
        return {"replicas": states}

    async def watch_replicas(self, *, every: float) -> None:
        """The health task (the app's lifespan runs it): every replica probed every ``every`` seconds."""
        await self.replicas.watch(self.check_replica, every=every, timeout=self._check_timeout)

    async def check_replica(self, replica: int) -> None:
        """Ready when the replica answers and (with a token) reports a loaded model."""
        base = self.replicas.url(replica)
        if self._token:
            data = await self._check("GET", base + "/status", params={"token": self._token})
            if not isinstance(data, dict) or not data.get("model_file"):
                raise UpstreamError("bad_response", 503, "not_ready", "no model loaded")
        else:
            await self._check("GET", base + "/")

    async def check_url(self, url: str) -> None:
        await self._check("GET", url)

    async def _check(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, url, timeout=self._check_timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", 503, "not_ready", "timeout") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError("unavailable", 503, "not_ready", "unreachable") from exc
        if response.status_code != 200:
            raise UpstreamError("bad_response", 503, "not_ready", f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            return None


def _error_code(response: httpx.Response) -> str | None:
    """The ``error`` of a JSON error body (``{"error": "<code>"}``), else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None
