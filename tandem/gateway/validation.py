"""Validation of what visitors send: body size and encoding, JSON shape, text and button payloads.

Every failure is a :class:`GatewayError` with a stable code and a message for the visitor.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from tandem.gateway.errors import GatewayError

# Line breaks and tabs are ordinary typing; every other control or format-control character
# (C0/C1, DEL, bidi overrides, zero-width joiners used to hide text) is rejected. Emoji sequences
# with ZWJ (U+200D) and variation selectors are allowed: they are how people write emoji.
_ALLOWED_CONTROLS = {"\n", "\t", "\r"}
_ALLOWED_FORMAT = {"\u200d", "\ufe0f", "\ufe0e"}
# A client message id is opaque to the gateway: short, URL-safe, and never free text.
CLIENT_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")


@dataclass(frozen=True)
class Incoming:
    """A validated message: typed text, or the payload of a button the bot offered."""

    kind: str  # "text" | "payload"
    value: str
    # Set by the client so that a retried send is answered once (see tandem/gateway/turns.py).
    client_message_id: str | None = None


def invalid(code: str, message: str, status: int = 400) -> GatewayError:
    return GatewayError(status, code, message)


def decode_json_body(raw: bytes) -> Any:
    """Strict UTF-8, then JSON; lone surrogates (``"\\ud800"``) are not text either."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("invalid_encoding", "The request must be UTF-8 encoded JSON.") from None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and also Python's limit on integer digits (a number of
        # 5,000 digits), which is not a JSONDecodeError.
        raise invalid("invalid_json", "The request body is not valid JSON.") from None
    return value


def check_text(value: str, *, max_chars: int, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid("invalid_encoding", f"The {what} contains characters that are not valid text.") from None
    if len(value) > max_chars:
        raise invalid(
            "message_too_long",
            f"The {what} is too long: at most {max_chars} characters, please.",
        )
    for char in value:
        category = unicodedata.category(char)
        if (category == "Cc" and char not in _ALLOWED_CONTROLS) or (category == "Cf" and char not in _ALLOWED_FORMAT):
            raise invalid("control_characters", f"The {what} contains control characters.")
    return value


def _client_message_id(body: dict[str, Any]) -> str | None:
    if "client_message_id" not in body:
        return None
    value = body["client_message_id"]
    if not isinstance(value, str) or not CLIENT_MESSAGE_ID.fullmatch(value):
        raise invalid(
            "invalid_client_message_id",
            '"client_message_id" must be 8 to 64 characters: letters, digits, "-" or "_".',
        )
    return value


def parse_message(body: Any, *, max_chars: int) -> Incoming:
    """``{"text": "..."}`` or ``{"payload": "/intent{...}"}``; exactly one of them, nothing else.

    An optional ``client_message_id`` may come with either.
    """
    if not isinstance(body, dict):
        raise invalid("invalid_shape", 'Send a JSON object: {"text": "..."} or {"payload": "..."}.')
    unknown = set(body) - {"text", "payload", "client_message_id"}
    if unknown:
        raise invalid("invalid_shape", "Unknown field(s): " + ", ".join(sorted(str(k)[:40] for k in unknown)) + ".")
    if ("text" in body) == ("payload" in body):
        raise invalid("invalid_shape", 'Send exactly one of "text" or "payload".')
    client_message_id = _client_message_id(body)
    if "text" in body:
        text = body["text"]
        if not isinstance(text, str):
            raise invalid("invalid_shape", '"text" must be a string.')
        text = check_text(text, max_chars=max_chars, what="message").strip()
        if not text:
            raise invalid("empty_message", "The message is empty.")
        if text.startswith("/"):
            # Rasa reads "/intent{...}" as a command that skips NLU; only offered buttons may do that.
            raise invalid("reserved_prefix", 'Messages cannot start with "/". Please rephrase.')
        return Incoming("text", text, client_message_id)
    payload = body["payload"]
    if not isinstance(payload, str) or not payload:
        raise invalid("invalid_shape", '"payload" must be a non-empty string.')
    check_text(payload, max_chars=max_chars, what="button payload")
    return Incoming("payload", payload, client_message_id)
