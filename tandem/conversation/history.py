"""The fallback chain's view of a conversation: the turns before the current message.

Kept apart from :mod:`tandem.conversation` itself because it builds :class:`tandem.llm.Turn`
objects (the gateway reads conversations too and has no use for the LLM package).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tandem.conversation.turns import turns
from tandem.llm.prompts import Turn

HISTORY_EVENTS = 30


def history(events: Sequence[Any], *, window: int = HISTORY_EVENTS) -> list[Turn]:
    """User and bot texts among the last ``window`` events, before the latest user message.

    The latest user message is the fallback request's text, not history: everything from it on is
    left out (with no user message in the window, the whole window counts). The chain masks PII
    and clips the history further.
    """
    recent = list(events)[-window:]
    last_user = max(
        (i for i, e in enumerate(recent) if isinstance(e, Mapping) and e.get("event") == "user"), default=len(recent)
    )
    return [
        Turn("user" if turn.role == "user" else "assistant", turn.text)
        for turn in turns(recent[:last_user])
        if turn.text
    ]
