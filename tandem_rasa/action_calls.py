"""A turn whose action server cannot be reached fails as a whole instead of half-done (issue 15).

Rasa 3.6 runs every custom action through ``RemoteAction.run``, and its message processor catches
*any* exception an action raises: it logs it, drops the action's events and goes on predicting. When
the action server is down or restarting, the turn therefore ends "successfully" — the user's
message is saved with the failed actions and no bot message, and the customer gets an empty answer
(measured: 30 silent HTTP 200s while an action server restarted under load). A form step is worse:
its validation never ran, so the saved conversation is not where the customer thinks it is.

:func:`install` wraps ``RemoteAction.run``: when the call fails because the action server could not
be reached (connection refused or dropped, no answer within Rasa's request timeout) or answered
that it cannot serve (HTTP 429, 502, 503, 504), it raises :class:`ActionServerUnreachable`. That is
a ``BaseException`` on purpose (tandem_rasa/failures.py): the processor's ``except Exception`` lets
it through, so nothing of the turn is saved (Rasa saves a turn's events only at its end, in one transaction), the
conversation's lock is released by its ``finally``, and the gateway channel answers the gateway
``500 {"error": "turn_failed"}``, which the customer sees as a retryable ``503 turn_failed``.
Sending the message again once the action server is back runs the turn from where the
conversation really is.

An action that fails *inside* a reachable action server (HTTP 500, a bad answer, a rejection) keeps
Rasa's behaviour: it is the action's bug, and failing the turn would make every retry fail too.

Side effects already done by an earlier action of the same turn are not undone: if the action
server dies in the milliseconds between two calls of one turn (a tool that changed data, then the
next action), the retried turn runs that tool again. The tools carry no idempotency key across
turns; the window is the same one Rasa's own behaviour has, where the second call's events are lost.

Called by the gateway channel when Rasa builds it (``tandem_rasa/channel.py``), never at import
time; calling it again changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from rasa.core.actions.action import RemoteAction
from rasa.shared.exceptions import RasaException

from tandem_rasa.failures import TurnFailed

logger = logging.getLogger(__name__)

# What an action server (or a proxy in front of it) answers when it cannot serve right now.
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})

_MARK = "_tandem_fails_the_turn"


class ActionServerUnreachable(TurnFailed):
    """The action server could not run an action of this turn: the turn must not be saved.

    Not an ``Exception`` (tandem_rasa/failures.py): Rasa's processor catches those from actions and
    carries on.
    """

    def __init__(self, action: str, reason: str) -> None:
        super().__init__(f"action server unreachable running {action} ({reason})")
        self.action = action
        self.reason = reason


def unreachable_reason(error: BaseException) -> str | None:
    """Why ``error`` (raised by ``RemoteAction.run``) means the server was unreachable, else None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, aiohttp.ClientConnectionError):
            return "connection"
        if isinstance(current, asyncio.TimeoutError):  # on Python 3.10 (Rasa) not the builtin TimeoutError
            return "timeout"
        status = getattr(current, "status", None)
        if isinstance(current, aiohttp.ClientError) and status in UNAVAILABLE_STATUSES:
            return f"HTTP {status}"
        current = current.__cause__ or current.__context__
    return None


def install() -> None:
    """Wrap ``RemoteAction.run`` so that an unreachable action server fails the turn."""
    if getattr(RemoteAction, _MARK, False):
        return
    run = RemoteAction.run

    async def run_or_fail_the_turn(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run(self, *args, **kwargs)
        except (RasaException, asyncio.TimeoutError, aiohttp.ClientError) as error:  # noqa: UP041 (Python 3.10)
            reason = unreachable_reason(error)
            if reason is None:
                raise
            logger.error(f"Action server unreachable running '{self.name()}' ({reason}): the turn fails unsaved")
            raise ActionServerUnreachable(self.name(), reason) from error

    RemoteAction.run = run_or_fail_the_turn  # type: ignore[method-assign]
    setattr(RemoteAction, _MARK, True)


__all__ = ["UNAVAILABLE_STATUSES", "ActionServerUnreachable", "install", "unreachable_reason"]
