"""The failures that end a turn unsaved (issue 15: faults mid-load).

Rasa 3.6 is built to carry on when a dependency fails: its message processor catches any
``Exception`` an action raises and goes on without the action's events, and its
``FailSafeTrackerStore`` (wrapped around every tracker store by the agent) answers a failed
``retrieve`` with "no such conversation" and a failed ``save`` by keeping the tracker in memory.
Under a fault that turns into answers the history never holds: measured with PostgreSQL restarted
under load, turns answered 200 whose events were kept in a replica's memory and never reached the
database (the next turn went on from the state before them); with the action server restarting,
30 turns answered 200 with no message at all.

A :class:`TurnFailed` is a ``BaseException``, so those ``except Exception`` blocks let it through:
the turn stops where it is, nothing of it is saved (Rasa saves a turn's events at its end, in one
transaction), the conversation's lock is released by its ``finally``, and the gateway channel
answers ``500 {"error": "turn_failed"}`` (tandem_rasa/channel.py), which the visitor sees as a
retryable ``503 turn_failed``. Sending the message again runs the turn from where the conversation
really is. Anywhere else (Rasa's HTTP API) the request's connection is closed without an answer,
which the gateway reports as ``503 upstream_unavailable`` instead of an empty history.
"""

from __future__ import annotations


class TurnFailed(BaseException):
    """A dependency of the turn failed; the turn must end unsaved. Not an ``Exception``: see above."""


__all__ = ["TurnFailed"]
