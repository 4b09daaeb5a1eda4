"""The metadata the gateway attaches to every message it forwards, read the same way on both sides.

The gateway posts to Rasa's authenticated channel (tandem_rasa/channel.py), so nobody else can set
these: the real channel, an opaque per-client key (a keyed hash of the client address or chat
account, never the address) and the turn's correlation id. Rasa's channel reduces what it receives
with :func:`clean_metadata` before the tracker stores it, and the actions read the latest
message's metadata with it again (a tracker written before this check, or by a test, holds
anything). Standard library only: both the Rasa environment and the application import it.
"""

from __future__ import annotations

from typing import Any

# Each key the gateway sends and its longest value.
METADATA_LIMITS = {"channel": 32, "client": 64, "correlation_id": 64}
# The doors a message may come through (``agent``: a person's reply in a handoff).
CHANNELS = frozenset({"website", "slack", "telegram", "shell", "rest", "agent"})


def clean_metadata(raw: Any) -> dict[str, str]:
    """Only the known keys, as short printable strings, and a known channel; the rest is dropped."""
    if not isinstance(raw, dict):
        return {}
    cleaned: dict[str, str] = {}
    for key, limit in METADATA_LIMITS.items():
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
            cleaned[key] = value
    if cleaned.get("channel") not in CHANNELS:
        cleaned.pop("channel", None)
    return cleaned
