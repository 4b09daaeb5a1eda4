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

With several action servers (``ACTION_SERVER_FALLBACK_URLS``, comma-separated, set by ``make run``
with ``ACTION_REPLICAS`` > 1), a call that certainly never ran — the connection was refused, or the
server answered 503 — is first sent to the next action server of that list; the turn fails only
when none of them can take it. A call that may have run (a dropped connection, a timeout) is never
sent again: the action may have changed data.

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
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from rasa.core.actions.action import RemoteAction
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import EndpointConfig

from tandem_rasa.failures import TurnFailed

logger = logging.getLogger(__name__)

# What an action server (or a proxy in front of it) answers when it cannot serve right now.
UNAVAILABLE_STATUSES = frozenset({429, 502, 503, 504})
# The reasons of a call that certainly never ran: it may go to another action server.
NOT_RUN = frozenset({"connect", "HTTP 503"})
FALLBACK_URLS_VARIABLE = "ACTION_SERVER_FALLBACK_URLS"

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
        if isinstance(current, aiohttp.ClientConnectorError):
            return "connect"  # the connection was never made: nothing was sent
        if isinstance(current, aiohttp.ClientConnectionError):
            return "connection"
        if isinstance(current, asyncio.TimeoutError):  # on Python 3.10 (Rasa) not the builtin TimeoutError
            return "timeout"
        status = getattr(current, "status", None)
        if isinstance(current, aiohttp.ClientError) and status in UNAVAILABLE_STATUSES:
            return f"HTTP {status}"
        current = current.__cause__ or current.__context__
    return None


def fallback_urls(environ: Mapping[str, str]) -> list[str]:
    """The other action servers' URLs, in the order to try them (``ACTION_SERVER_FALLBACK_URLS``)."""
    return [url.strip() for url in environ.get(FALLBACK_URLS_VARIABLE, "").split(",") if url.strip()]


def install(fallbacks: Sequence[str] = ()) -> None:
    """Wrap ``RemoteAction.run`` so that an unreachable action server fails the turn, after the
    ``fallbacks`` (other action servers' URLs) were tried for a call that never ran."""
    if getattr(RemoteAction, _MARK, False):
        return
    run = RemoteAction.run
    others = tuple(fallbacks)

    async def run_or_fail_the_turn(self: RemoteAction, *args: Any, **kwargs: Any) -> Any:
        try:
            return await run(self, *args, **kwargs)
        except (RasaException, asyncio.TimeoutError, aiohttp.ClientError) as error:  # noqa: UP041 (Python 3.10)
            reason = unreachable_reason(error)
            if reason is None:
                raise
            failure: BaseException = error
        if reason in NOT_RUN and self.action_endpoint is not None:
            for url in others:
                other = RemoteAction(self.name(), _at(self.action_endpoint, url))
                try:
                    events = await run(other, *args, **kwargs)
                except (RasaException, asyncio.TimeoutError, aiohttp.ClientError) as error:  # noqa: UP041
                    again = unreachable_reason(error)
                    if again is None:
                        raise
                    reason, failure = again, error
                    if again not in NOT_RUN:
                        break  # it may have run there: not sent anywhere else
                    continue
                logger.warning(f"Action '{self.name()}' ran on another action server: its own was unreachable")
                return events
        logger.error(f"Action server unreachable running '{self.name()}' ({reason}): the turn fails unsaved")
        raise ActionServerUnreachable(self.name(), reason) from failure

    RemoteAction.run = run_or_fail_the_turn  # type: ignore[method-assign]
    setattr(RemoteAction, _MARK, True)


def _at(endpoint: EndpointConfig, url: str) -> EndpointConfig:
    """``endpoint`` (its headers: the action server's token) at another URL."""
    moved = endpoint.copy()
    moved.url = url
    return moved


__all__ = [
    "FALLBACK_URLS_VARIABLE",
    "NOT_RUN",
    "UNAVAILABLE_STATUSES",
    "ActionServerUnreachable",
    "fallback_urls",
    "install",
    "unreachable_reason",
]
