"""The client of Rasa's gateway channel and HTTP API, and of the action server's health endpoint.

Turns go to the authenticated channel ``POST /webhooks/gateway/webhook`` (tandem_rasa/channel.py),
not to the open REST channel: it needs ``Authorization: Bearer <RASA_API_TOKEN>``, so only the
gateway can post messages with the metadata the actions trust (the client key, the correlation id).
Every call has a timeout. Failures become :class:`~tandem.gateway.errors.UpstreamError` (timeout,
unavailable, bad response) so callers can answer with a clear message; nothing of Rasa's error text
reaches the visitor. The API token travels only between the gateway and Rasa on localhost.
"""

from __future__ import annotations

from typing import Any

import httpx

from tandem.gateway.errors import UpstreamError, upstream_bad_response, upstream_timeout, upstream_unavailable


class RasaClient:
    """Talks to one Rasa server (``RASA_URL``) with a shared connection pool."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        rasa_url: str,
        api_token: str | None,
        turn_timeout: float,
        check_timeout: float,
    ) -> None:
        self._client = client
        self._base = rasa_url.rstrip("/")
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
        body = {
            "sender": conversation_id,
            "message": message,
            # Rasa stores the metadata with the user event: logs of both sides can be joined on it,
            # and the actions read the client key from it (per-client limits).
            "metadata": {"channel": channel, "client": client_key, "correlation_id": correlation_id},
        }
        headers = {"X-Correlation-Id": correlation_id}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = await self._request(
            "POST",
            "/webhooks/gateway/webhook",
            json=body,
            timeout=self._turn_timeout,
            headers=headers,
        )
        if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
            raise upstream_bad_response()
        return data

    async def tracker(self, conversation_id: str) -> dict[str, Any]:
        """The conversation's tracker from Rasa's HTTP API (needs ``RASA_API_TOKEN`` when Rasa has one)."""
        params = {"token": self._token} if self._token else {}
        data = await self._request(
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
        await self._request(
            "POST",
            f"/conversations/{conversation_id}/tracker/events",
            params=self._auth(),
            json=[{"event": "resume"}, {"event": "action", "name": "action_listen"}],
            timeout=self._turn_timeout,
        )

    async def trigger(self, conversation_id: str, intent: str, entities: dict[str, Any]) -> list[dict[str, Any]]:
        """Run an external intent (``handoff_returned`` ...) in the conversation: the bot's messages."""
        data = await self._request(
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

    def _auth(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    async def _request(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, self._base + path, timeout=timeout, **kwargs)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Never sent: Rasa did not get the request (the idempotency store may forget it).
            raise upstream_timeout(delivered=False) from exc
        except httpx.TimeoutException as exc:
            raise upstream_timeout() from exc
        except httpx.ConnectError as exc:
            raise upstream_unavailable(delivered=False) from exc
        except httpx.HTTPError as exc:  # e.g. the connection dropped while Rasa was answering
            raise upstream_unavailable() from exc
        if response.status_code in (502, 503):
            # A proxy in front of Rasa could not reach it.
            raise upstream_unavailable(delivered=False)
        if response.status_code == 504:
            raise upstream_unavailable()
        if response.status_code != 200:
            raise upstream_bad_response()
        try:
            return response.json()
        except ValueError as exc:
            raise upstream_bad_response() from exc

    async def check_rasa(self) -> None:
        """Ready when Rasa answers and (with a token) reports a loaded model."""
        if self._token:
            data = await self._check("GET", self._base + "/status", params={"token": self._token})
            if not isinstance(data, dict) or not data.get("model_file"):
                raise UpstreamError("bad_response", 503, "not_ready", "no model loaded")
        else:
            await self._check("GET", self._base + "/")

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
