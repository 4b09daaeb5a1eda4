"""Reading what a platform posted: a JSON object from bounded raw bytes, nested objects defensively.

Slack's events and clicks and Telegram's updates are parsed the same way: at most
:data:`MAX_BODY_BYTES`, UTF-8, a JSON object at the top; anything else is "not a body we read"
(None), never an exception. Nested values that should be objects but are not read as empty ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_BODY_BYTES = 1_000_000


def load_object(body: bytes | Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The JSON object in ``body`` (a mapping passes through), or None."""
    if isinstance(body, Mapping):
        return body
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, Mapping) else None


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is an object, else an empty one."""
    return value if isinstance(value, Mapping) else {}
