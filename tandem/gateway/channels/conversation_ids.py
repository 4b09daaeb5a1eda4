"""Conversation ids for Slack and Telegram, derived on the server: a keyed hash, never a platform id.

A Rasa sender id ends up in the tracker store, logs, tickets and analytics; a raw Slack user id
or Telegram chat id there would tie every record to a person's account. So the id is
``slack-`` / ``telegram-`` + the first 32 hex characters of HMAC-SHA256(server secret,
``slack:{team}:{channel}:{user}`` / ``telegram:{chat_id}:{from_id}``): stable (the same person in
the same place keeps their conversation), opaque without the secret (the id space is small
enough to enumerate, hence keyed, not a plain hash), and in a separate domain from the web's
``conversation:`` / ``client-key:`` messages should the same secret be used. The platform ids go
in the turn's metadata only. The parts are checked: a ``:`` inside one would make two different
triples hash alike.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["MIN_SECRET_BYTES", "slack_conversation_id", "telegram_conversation_id"]

MIN_SECRET_BYTES = 16
_HEX_CHARS = 32


def _digest(secret: bytes, message: str) -> str:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError("the conversation id secret is too short")
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()[:_HEX_CHARS]


def _part(value: str, what: str) -> str:
    if not value or ":" in value or not value.isprintable() or len(value) > 64:
        raise ValueError(f"not a plausible Slack {what} id")
    return value


def slack_conversation_id(secret: bytes, *, team: str, channel: str, user: str) -> str:
    """One conversation per person per Slack channel (a DM is a channel) per workspace."""
    message = f"slack:{_part(team, 'team')}:{_part(channel, 'channel')}:{_part(user, 'user')}"
    return "slack-" + _digest(secret, message)


def telegram_conversation_id(secret: bytes, *, chat_id: int, from_id: int) -> str:
    """One conversation per person per Telegram chat (in a private chat the two ids are equal)."""
    if isinstance(chat_id, bool) or isinstance(from_id, bool):
        raise ValueError("Telegram ids are integers")
    return "telegram-" + _digest(secret, f"telegram:{int(chat_id)}:{int(from_id)}")
