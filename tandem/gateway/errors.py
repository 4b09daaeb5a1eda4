"""The gateway's typed errors and the one JSON shape every error response has.

``{"error": {"code": "message_too_long", "message": "...", "retry_after": null}}``: ``code`` is stable
and meant for programs, ``message`` is written for the visitor and never contains backend details.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class GatewayError(Exception):
    """An error the client sees: HTTP status, a stable code and a message for people."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # The label counted in the rejections metric (defaults to the code).
        self.reason = reason or code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "retry_after": self.retry_after}}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        all_headers = dict(headers or {})
        if self.retry_after is not None:
            all_headers["Retry-After"] = str(self.retry_after)
        return JSONResponse(self.body(), status_code=self.status, headers=all_headers)


class UpstreamError(GatewayError):
    """Rasa (or another dependency) failed; ``kind`` is the metric label: timeout, unavailable, bad_response.

    ``delivered`` says whether Rasa may have received the request (and may still finish the turn):
    False only when the request certainly never left (connection refused, connect timeout).
    """

    def __init__(
        self, kind: str, status: int, code: str, message: str, *, delivered: bool = True, retry_after: int | None = None
    ) -> None:
        super().__init__(status, code, message, retry_after=retry_after, reason=f"upstream_{kind}")
        self.kind = kind
        self.delivered = delivered
        # The connection broke while the request was out (Rasa may or may not have run it): the
        # client checks whether the replica died and what its tracker says before giving up.
        self.dropped = False


def upstream_timeout(*, delivered: bool = True) -> UpstreamError:
    return UpstreamError(
        "timeout",
        504,
        "upstream_timeout",
        "The assistant is taking longer than usual to answer. Please try again in a moment.",
        delivered=delivered,
    )


def upstream_unavailable(*, delivered: bool = True) -> UpstreamError:
    return UpstreamError(
        "unavailable",
        503,
        "upstream_unavailable",
        "The assistant is not available right now. Please try again in a few minutes.",
        delivered=delivered,
    )


def upstream_turn_failed() -> UpstreamError:
    """Rasa could not finish the turn (a store or the action server failed) and saved nothing of it:
    the message may be sent again as it is (``delivered=False``: a retry runs it)."""
    return UpstreamError(
        "turn_failed",
        503,
        "turn_failed",
        "The assistant could not answer that message just now. Please send it again in a moment.",
        delivered=False,
        retry_after=2,
    )


def upstream_bad_response() -> UpstreamError:
    return UpstreamError(
        "bad_response",
        502,
        "upstream_error",
        "Something went wrong on our side while answering. Please try again in a moment.",
    )


def store_unavailable(reason: str = "offer_store") -> GatewayError:
    """A Redis-backed store (offers, revocations, turns) failed: the gateway fails closed, with a 503."""
    return GatewayError(
        503,
        "temporarily_unavailable",
        "We can't take messages right now. Please try again in a moment.",
        reason=reason,
    )
