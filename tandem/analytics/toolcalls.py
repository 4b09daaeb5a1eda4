"""The tool calls of one action call, collected for the tracker's :data:`TOOL_CALLS_SLOT`.

The action server opens a collection around each action call (:func:`collecting`); the toolbox
reports each call into it (:func:`record`); the action server then appends one ``SlotSet`` of the
list to the action's events. Actions need not know: every tool call of every action is recorded.
Each call is also one JSON log line (``{"event": "tool", "tool", "outcome", "duration_ms"}``),
which carries the turn's correlation id like every line of an action call (tandem/logs.py).
The collection lives in a context variable, like the correlation id (tandem/logs.py): asyncio
tasks and worker threads of the call inherit it; outside a collection :func:`record` does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

log = logging.getLogger("tandem.tools")

MAX_CALLS_PER_ACTION = 20

_current: ContextVar[list[dict[str, Any]] | None] = ContextVar("tool_calls", default=None)


@contextmanager
def collecting() -> Iterator[list[dict[str, Any]]]:
    """Collect the tool calls made until the block ends; yields the list they are added to."""
    calls: list[dict[str, Any]] = []
    token = _current.set(calls)
    try:
        yield calls
    finally:
        _current.reset(token)


def record(tool: str, outcome: str, duration_ms: int) -> None:
    """Log one call and add it to the collection (``outcome`` as
    :func:`tandem.analytics.metrics.tool_outcome` gives it)."""
    log.info("tool call", extra={"event": "tool", "tool": tool[:64], "outcome": outcome, "duration_ms": duration_ms})
    calls = _current.get()
    if calls is not None and len(calls) < MAX_CALLS_PER_ACTION:
        calls.append({"tool": tool[:64], "outcome": outcome, "ms": max(int(duration_ms), 0)})
