"""Anonymous visitor sessions: signed tokens, and the Rasa conversation id derived from them.

A token is ``v1.<session id>.<issued at>.<signature>``: a random 128-bit session id, the issue time in
seconds, and an HMAC-SHA256 over both with the gateway's secret. The conversation id sent to Rasa is a
second HMAC of the session id, so it is never chosen by (nor shown to) the client, cannot be guessed from
a leaked conversation id, and one visitor can neither forge a session nor swap into someone else's.
The conversation id never leaves the server (the correlation id of a turn is a random turn id).

A token cannot be un-signed, so revoking one ("new conversation", ``DELETE /api/v1/session``) records
its session id until the token would have expired anyway: see :mod:`tandem.gateway.revocations`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_VERSION = "v1"  # noqa: S105 (a format version, not a password)
COOKIE_NAME = "tandem_session"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Session:
    """A verified visitor session."""

    session_id: str
    issued_at: int
    conversation_id: str
    expires_at: int


class SessionCodec:
    """Issues and verifies session tokens with one secret; pure functions of the secret and the clock."""

    def __init__(self, secret: bytes, *, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret is too short")
        self._secret = secret
        self._ttl = ttl_seconds
        self._clock = clock

    def _sign(self, message: str) -> str:
        return _b64(hmac.new(self._secret, message.encode("ascii"), hashlib.sha256).digest())

    def conversation_id(self, session_id: str) -> str:
        """The Rasa sender id of a session: a keyed hash, so it reveals nothing about the token."""
        digest = hmac.new(self._secret, b"conversation:" + session_id.encode("ascii"), hashlib.sha256).hexdigest()
        return f"web-{digest[:32]}"

    def client_key(self, address: str) -> str:
        """An opaque key for a client address, sent to Rasa as ``metadata.client`` (never the address).

        Keyed (an HMAC, domain-separated from the other uses of the secret), so the address cannot be
        recovered by hashing the IPv4 space; stable, so per-client limits in the actions hold.
        """
        digest = hmac.new(self._secret, b"client-key:" + address.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:32]

    def issue(self) -> tuple[str, Session]:
        """A new session and its token."""
        session_id = _b64(secrets.token_bytes(16))
        issued_at = int(self._clock())
        body = f"{TOKEN_VERSION}.{session_id}.{issued_at}"
        return f"{body}.{self._sign(body)}", self._session(session_id, issued_at)

    def verify(self, token: str) -> Session | None:
        """The session of a token, or None when it is malformed, forged or expired."""
        if not token or len(token) > 200 or not token.isascii():
            return None
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != TOKEN_VERSION:
            return None
        _, session_id, issued, signature = parts
        body = f"{TOKEN_VERSION}.{session_id}.{issued}"
        # Constant-time comparison: no timing oracle on the signature.
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        if not issued.isdigit():
            return None
        issued_at = int(issued)
        now = self._clock()
        if issued_at > now + 60 or now >= issued_at + self._ttl:
            return None
        return self._session(session_id, issued_at)

    def _session(self, session_id: str, issued_at: int) -> Session:
        return Session(session_id, issued_at, self.conversation_id(session_id), issued_at + self._ttl)
