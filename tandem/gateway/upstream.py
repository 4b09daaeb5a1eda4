"""The client of Rasa's REST channel and HTTP API, and of the action server's health endpoint.

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

    async def send(self, conversation_id: str, message: str, *, correlation_id: str) -> list[dict[str, Any]]:
        """One turn over the REST webhook: the bot's messages, in order."""
        body = {
            "sender": conversation_id,
            "message": message,
            # Rasa stores the metadata with the user event: logs of both sides can be joined on it.
            "metadata": {"channel": "website", "correlation_id": correlation_id},
        }
        data = await self._request(
            "POST",
            "/webhooks/rest/webhook",
            json=body,
            timeout=self._turn_timeout,
            headers={"X-Correlation-Id": correlation_id},
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

    async def _request(self, method: str, path: str, *, timeout: float, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, self._base + path, timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise upstream_timeout() from exc
        except httpx.HTTPError as exc:
            raise upstream_unavailable() from exc
        if response.status_code in (502, 503, 504):
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
