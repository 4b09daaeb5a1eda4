"""Typed errors raised by services; the Rasa layer turns them into helpful responses."""

from __future__ import annotations


class ServiceError(Exception):
    """Base class of every error a service raises on purpose."""


class NotFound(ServiceError):
    """The thing asked for does not exist (or the caller may not know that it does)."""


class Invalid(ServiceError):
    """The input does not pass validation. ``reason`` is a short machine-readable code."""

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class Conflict(ServiceError):
    """The operation cannot be done in the current state (sold out, already cancelled...)."""

    def __init__(self, message: str, *, reason: str = "conflict") -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(ServiceError):
    """The caller's role may not use this tool."""


class RateLimited(ServiceError):
    """Too many requests of this kind; try again later."""

    def __init__(self, message: str, *, retry_after_seconds: int = 60) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(ServiceError):
    """A dependency (database, cache, ...) did not answer in time or at all."""
