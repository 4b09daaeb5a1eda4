"""Structured JSON log lines for every process (gateway, action server), with the turn's correlation id.

A line is one JSON object: time, level, logger, message and the record's extra fields. The
correlation id of the turn being served (the gateway's opaque turn id, sent to Rasa as message
metadata and from Rasa to the action server in the tracker) is added to every line written while
the :data:`correlation_id` context variable holds one, so the lines of the gateway and the action
server for one turn can be joined. The text of messages is never logged at INFO: callers log
lengths and kinds, not content.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

# Set per unit of work (an action call); asyncio tasks and worker threads (asyncio.to_thread)
# inherit it, so the tool layer's lines carry it too.
correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

MAX_CORRELATION_ID_CHARS = 64

# Attributes every LogRecord has; anything else passed through ``extra=`` becomes a JSON field.
# (uvicorn's "color_message" is the same text with terminal colours.)
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class CorrelationFilter(logging.Filter):
    """Adds the context's correlation id to a record that does not carry one (``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = correlation_id.get()
        if current is not None and getattr(record, "correlation_id", None) is None:
            record.correlation_id = current
        return True


def plausible_correlation_id(value: object) -> str | None:
    """A correlation id fit for logs: 1-64 printable characters, else None (never log junk)."""
    if isinstance(value, str) and 0 < len(value) <= MAX_CORRELATION_ID_CHARS and value.isprintable():
        return value
    return None


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing JSON lines with the correlation id."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(CorrelationFilter())
    return handler


def configure_json_logging(
    level: str, *, loggers: Iterable[str] = ("",), stream: IO[str] | None = None
) -> logging.Handler:
    """Route ``loggers`` (default: the root logger) to one JSON handler; called once where a process starts.

    A named logger stops propagating (its lines are not written twice); the root logger's other
    handlers are replaced. Returns the handler (tests remove it again).
    """
    handler = json_handler(stream)
    for name in loggers:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        if name:
            logger.propagate = False
    return handler
