"""Walks over a tracker's action events: what the bot decided, turn by turn.

Rasa records every action it runs as an ``{"event": "action", "name": ...}`` event, also its own
bookkeeping (listening, slot extraction, form validation). The dialogue's *decision* after a user
message is the first other action: these walks skip the bookkeeping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FALLBACK_ACTION = "action_fallback"
HANDOFF_ACTION = "action_handoff"


def is_bot_decision(name: object) -> bool:
    """An action the dialogue chose, as opposed to Rasa's bookkeeping (listening, extracting
    slots, a form's validation)."""
    return name not in ("action_listen", "action_extract_slots") and not str(name).startswith("validate_")


def _kind(event: Any) -> Any:
    return event.get("event") if isinstance(event, Mapping) else None


def previous_bot_action(events: Sequence[Any]) -> str | None:
    """The last action the bot ran before the latest user message (bookkeeping skipped)."""
    seen_user = False
    for event in reversed(events):
        if _kind(event) == "user":
            seen_user = True
            continue
        if seen_user and _kind(event) == "action" and is_bot_decision(event.get("name")):
            return str(event.get("name"))
    return None


def decisions_per_user_turn(events: Iterable[Any]) -> list[str | None]:
    """For each user message, the first action the bot decided on after it (None: none yet)."""
    first_action_after_user: list[str | None] = []
    for event in events:
        if _kind(event) == "user":
            first_action_after_user.append(None)
        elif (
            _kind(event) == "action"
            and first_action_after_user
            and first_action_after_user[-1] is None
            and is_bot_decision(event.get("name"))
        ):
            first_action_after_user[-1] = event.get("name")
    return first_action_after_user


def consecutive_fallbacks(events: Iterable[Any], fallback_action: str = FALLBACK_ACTION) -> int:
    """How many user turns in a row, the current one included, ended in the fallback.

    Called from inside the fallback action: the current turn has no decision recorded yet (the
    action is running now) and counts.
    """
    count = 0
    for index, action in enumerate(reversed(decisions_per_user_turn(events))):
        if index == 0 and action is None:
            count += 1  # the current turn: this action is running now
        elif action == fallback_action:
            count += 1
        else:
            break
    return count
