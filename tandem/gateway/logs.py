"""The gateway's JSON logs (the formatter is :mod:`tandem.logs`'s). Visitors' message text is never
logged at INFO (only lengths and kinds)."""

from __future__ import annotations

import logging

from tandem.logs import JsonFormatter, json_handler

__all__ = ["LOGGER_NAME", "JsonFormatter", "configure_logging"]

LOGGER_NAME = "tandem.gateway"


def configure_logging(level: str) -> None:
    """JSON lines on stderr for the gateway's and uvicorn's loggers; called once where the process starts."""
    handler = json_handler()
    for name in (LOGGER_NAME, "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # The gateway logs each request itself (with route, status and correlation id).
    logging.getLogger("uvicorn.access").disabled = True
