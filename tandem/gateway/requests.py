"""What the routes read from a request, checked: the body, the origin, the session, the operations token.

Every check raises a :class:`~tandem.gateway.errors.GatewayError` with a clear code; none of them
returns a partly trusted value.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import Request

from tandem.gateway.errors import GatewayError, store_unavailable
from tandem.gateway.sessions import COOKIE_NAME, Session
from tandem.gateway.state import GatewayState


def client_address(request: Request) -> str:
    """The client's address (the proxy's client when ``GATEWAY_TRUSTED_PROXIES`` names the proxy)."""
    return request.client.host if request.client else "unknown"


async def read_body(request: Request, limit: int) -> bytes:
    """The raw JSON body, at most ``limit`` bytes (415 when not JSON, 413 when larger)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        # Requiring JSON also means a cross-site HTML form can never post with the visitor's cookie.
        raise GatewayError(415, "unsupported_media_type", "Send the request as application/json.")
    return await read_raw_body(request, limit)


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The request's bytes as sent (a platform's signature is over them), at most ``limit`` (else 413)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, "body_too_large", "The request is too large.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise GatewayError(413, "body_too_large", "The request is too large.")
        chunks.append(chunk)
    return b"".join(chunks)


def check_origin(request: Request, state: GatewayState) -> None:
    """Cookie-authenticated calls from a browser must come from this site or an allowed origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    origin = origin.rstrip("/")
    # Same host as the request: the gateway's own pages. The scheme is not compared, because behind a
    # TLS-terminating proxy the gateway itself sees http.
    if urlsplit(origin).netloc == request.headers.get("host", request.url.netloc):
        return
    if origin not in state.settings.gateway_allowed_origin_list:
        raise GatewayError(403, "origin_not_allowed", "This site may not use the chat.")


async def _not_revoked(session: Session | None, state: GatewayState, message: str) -> Session | None:
    if session is None:
        return None
    try:
        revoked = await state.revocations.is_revoked(session.session_id)
    except Exception as exc:  # Redis errors of any kind: fail closed, a revoked session must not pass
        raise store_unavailable("revocation_store") from exc
    if revoked:
        raise GatewayError(401, "invalid_session", message)
    return session


async def session_of(request: Request, state: GatewayState) -> tuple[Session | None, str]:
    """The request's session and how it came (``bearer`` or ``cookie``); a bad credential is an error.

    Forged, expired and revoked tokens are all ``invalid_session``: the client cannot tell them apart.
    """
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        session = state.codec.verify(token.strip()) if scheme.lower() == "bearer" else None
        message = "Your chat session is not valid. Please start a new one."
        if session is None:
            raise GatewayError(401, "invalid_session", message)
        return await _not_revoked(session, state, message), "bearer"
    check_origin(request, state)
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        return None, "cookie"
    session = state.codec.verify(cookie)
    message = "Your chat session has expired. Please start a new one."
    if session is None:
        raise GatewayError(401, "invalid_session", message)
    return await _not_revoked(session, state, message), "cookie"


async def require_session(request: Request, state: GatewayState) -> Session:
    """The request's valid session; 401 ``no_session`` when it has none."""
    session, _ = await session_of(request, state)
    if session is None:
        raise GatewayError(401, "no_session", "Start a chat session first (POST /api/v1/session).")
    return session


async def presented_session(request: Request, state: GatewayState) -> Session | None:
    """The request's valid session, or None when it has none or a forged, expired or revoked one
    (for the calls that replace or end a session: a bad credential is nothing to keep)."""
    try:
        session, _ = await session_of(request, state)
    except GatewayError as exc:
        if exc.code != "invalid_session":
            raise
        return None
    return session


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether ``authorization`` is ``Bearer <token>``, compared in constant time."""
    # Constant time: no timing oracle on the operations token.
    return hmac.compare_digest(authorization.encode("utf-8", "replace"), f"Bearer {token}".encode())


def iso(timestamp: int) -> str:
    """A Unix time as the API's ISO 8601 UTC string (``...Z``)."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
