"""The action server's composition root: where the toolbox is built.

The toolbox is built on first use from the environment, never at import time, and kept for
the life of the process (it owns the database engine's connection pool). Tests replace it
with :func:`use_toolbox`.
"""

from __future__ import annotations

import threading
from zoneinfo import ZoneInfo

from tandem.settings import Settings, load_settings
from tandem.tools import Toolbox


class _Registry:
    """Holds the process's toolbox; one instance, created explicitly below."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._toolbox: Toolbox | None = None

    def get(self) -> Toolbox:
        with self._lock:
            if self._toolbox is None:
                self._toolbox = Toolbox.from_settings(load_settings())
            return self._toolbox

    def set(self, toolbox: Toolbox | None) -> None:
        with self._lock:
            self._toolbox = toolbox


_registry = _Registry()


def toolbox() -> Toolbox:
    """The toolbox of this action server process."""
    return _registry.get()


def settings() -> Settings:
    """The settings the toolbox was built with."""
    return toolbox().settings


def airline_zone() -> ZoneInfo:
    """The airline's local time zone (what "today" means to customers)."""
    return ZoneInfo(settings().timezone)


def use_toolbox(replacement: Toolbox | None) -> None:
    """Replace the toolbox (tests); ``None`` makes the next call build it from the environment."""
    _registry.set(replacement)
