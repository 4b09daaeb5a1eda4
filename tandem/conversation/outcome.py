"""The outcome of a session, in a few numbers: the seed of conversation analytics.

Rasa starts a new session (a ``session_started`` event) after a period of inactivity or on
``/restart``; :func:`last_session` cuts the events of the latest one, :func:`session_outcome`
summarises any list of events. Analytics will add fields (resolution, rating, goals); the ones
here are defined as follows:

- ``user_turns``: user messages;
- ``fallback_turns``: user messages whose first decision was the fallback action (the chain
  answered, clarified or escalated: the NLU alone could not handle them);
- ``handoff``: the handoff action ran (a ticket was asked for; limited or not);
- ``channel``: the channel of the first user message that names one;
- ``started_at`` / ``ended_at``: the first and last event timestamps (epoch seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tandem.conversation.turns import turns
from tandem.conversation.walks import FALLBACK_ACTION, HANDOFF_ACTION, decisions_per_user_turn


@dataclass(frozen=True)
class SessionOutcome:
    user_turns: int
    fallback_turns: int
    handoff: bool
    channel: str | None
    started_at: float | None
    ended_at: float | None


def last_session(events: Sequence[Any]) -> list[Any]:
    """The events from the latest ``session_started`` on (all of them when there is none)."""
    starts = [i for i, e in enumerate(events) if isinstance(e, Mapping) and e.get("event") == "session_started"]
    return list(events[starts[-1] :] if starts else events)


def session_outcome(
    events: Sequence[Any], *, fallback_action: str = FALLBACK_ACTION, handoff_action: str = HANDOFF_ACTION
) -> SessionOutcome:
    """The summary of ``events`` (pass :func:`last_session` for the latest session only)."""
    mappings = [e for e in events if isinstance(e, Mapping)]
    stamps = [t for e in mappings if isinstance(t := e.get("timestamp"), int | float) and not isinstance(t, bool)]
    user_turns = [t for t in turns(mappings) if t.role == "user"]
    return SessionOutcome(
        user_turns=len(user_turns),
        fallback_turns=sum(1 for name in decisions_per_user_turn(mappings) if name == fallback_action),
        handoff=any(e.get("event") == "action" and e.get("name") == handoff_action for e in mappings),
        channel=next((t.channel for t in user_turns if t.channel), None),
        started_at=float(min(stamps)) if stamps else None,
        ended_at=float(max(stamps)) if stamps else None,
    )
