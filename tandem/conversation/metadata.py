"""The metadata the gateway attaches to every message it forwards, read the same way on both sides.

The gateway posts to Rasa's authenticated channel (tandem_rasa/channel.py), so nobody else can set
these: the real channel, an opaque per-client key (a keyed hash of the client address or chat
account, never the address), the turn's correlation id and its W3C trace context (``traceparent``,
``tracestate``: the gateway's span, which the action server continues; tandem/tracing.py). Rasa's
channel reduces what it receives with :func:`clean_metadata` before the tracker stores it, and the
actions read the latest message's metadata with it again (a tracker written before this check, or
by a test, holds anything). Standard library only: both the Rasa environment and the application
import it.
"""

from __future__ import annotations

import re
from typing import Any

# Each key the gateway sends and its longest value.
METADATA_LIMITS = {"channel": 32, "client": 64, "correlation_id": 64}
# The doors a message may come through (``agent``: a person's reply in a handoff).
CHANNELS = frozenset({"website", "slack", "telegram", "shell", "rest", "agent"})

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# W3C Trace Context, level 1: version 00, a trace id and a parent (span) id in lower-case hex,
# neither all zeros, and the flags. Other versions are not accepted: nobody but the gateway sends one.
_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
# One list member of a tracestate: a key (``vendor`` or ``tenant@vendor``) and a value of printable
# ASCII without ``,`` and ``=`` that does not end in a space.
_TRACESTATE_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
MAX_TRACESTATE_CHARS = 512
MAX_TRACESTATE_MEMBERS = 32


def valid_traceparent(value: object) -> bool:
    """Whether ``value`` is a W3C ``traceparent`` of version 00 with a real trace and span id."""
    return isinstance(value, str) and _TRACEPARENT.fullmatch(value) is not None


def valid_tracestate(value: object) -> bool:
    """Whether ``value`` is a W3C ``tracestate``: 1-32 ``key=value`` members, 512 characters at most."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TRACESTATE_CHARS:
        return False
    members = [member.strip(" \t") for member in value.split(",")]
    return len(members) <= MAX_TRACESTATE_MEMBERS and all(_TRACESTATE_MEMBER.fullmatch(m) for m in members)


def clean_metadata(raw: Any) -> dict[str, str]:
    """Only the known keys, as short printable strings, and a known channel; the rest is dropped.

    A trace context is kept only when it is well formed (:func:`valid_traceparent`), and its
    ``tracestate`` only with it.
    """
    if not isinstance(raw, dict):
        return {}
    cleaned: dict[str, str] = {}
    for key, limit in METADATA_LIMITS.items():
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= limit and value.isprintable():
            cleaned[key] = value
    if cleaned.get("channel") not in CHANNELS:
        cleaned.pop("channel", None)
    if valid_traceparent(raw.get(TRACEPARENT)):
        cleaned[TRACEPARENT] = raw[TRACEPARENT]
        if valid_tracestate(raw.get(TRACESTATE)):
            cleaned[TRACESTATE] = raw[TRACESTATE]
    return cleaned
