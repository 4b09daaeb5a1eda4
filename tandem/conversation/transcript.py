"""What a human agent reads when a conversation is handed over: the transcript and a summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tandem.conversation.turns import ConversationTurn, turns

TRANSCRIPT_TURNS = 40
# Intents that say nothing about what the customer needed.
NOT_TOPICS = ("request_human", "greet")


def transcript(events: Iterable[Any], *, limit: int = TRANSCRIPT_TURNS) -> list[dict[str, Any]]:
    """The last ``limit`` turns as ``{"role", "text", "at"}`` (user turns also ``"intent"``).

    Bot turns without text (buttons only, custom payloads) are left out; a user turn always
    counts. A person's message in the conversation has the role ``agent``.
    """
    rows: list[dict[str, Any]] = []
    for turn in turns(events):
        if turn.role == "user":
            rows.append({"role": "user", "text": turn.text or "", "at": turn.timestamp, "intent": turn.intent})
        elif turn.text:
            rows.append({"role": turn.role, "text": turn.text, "at": turn.timestamp})
    return rows[-limit:]


def topics(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The user's intents in a transcript, first occurrence first, without greetings and the request for a person."""
    intents = [str(t["intent"]) for t in rows if t["role"] == "user" and t.get("intent")]
    return list(dict.fromkeys(i for i in intents if i not in NOT_TOPICS))


def handoff_summary(events: Iterable[Any], *, reason: str, active_form: str | None) -> str:
    """One line for the agents' queue: ``reason: ...; topics: ...; active form: ...``."""
    found = ", ".join(topics(transcript(events)))
    return f"reason: {reason}; topics: {found or 'none'}; active form: {active_form or 'none'}"


__all__ = ["TRANSCRIPT_TURNS", "ConversationTurn", "handoff_summary", "topics", "transcript"]
