"""Rasa's messages and tracker events → the gateway's documented message shape.

A message is ``{"id", "role": "bot"|"user", "text", "buttons": [{"title", "payload"}], "image",
"custom", "payload", "timestamp"}``; ``payload`` is set in the history on a visitor's message that came
from a button. Only known fields are passed on, as plain data: the widget renders text with
``textContent``, never as HTML. ``custom`` carries structured payloads; ``{"handoff": {...}}`` in it is
the marker of the "an agent will join" state (see docs/website-channel.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tandem.conversation import MAX_BUTTONS, ConversationTurn, parse_buttons, parse_custom, turns
from tandem.conversation import offered_payloads as offered_since_last_user

__all__ = [
    "MAX_BUTTONS",
    "bot_message",
    "handoff_message",
    "history_from_tracker",
    "merge_by_time",
    "offered_payloads",
    "turn_from_tracker",
]


def _iso(timestamp: float | None) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bot_message(raw: dict[str, Any], *, message_id: str, timestamp: float | None = None) -> dict[str, Any]:
    """One of Rasa's REST channel outputs (or a tracker ``bot`` event's fields) in the gateway's shape."""
    image = raw.get("image")
    return {
        "id": message_id,
        "role": "bot",
        "text": raw.get("text") if isinstance(raw.get("text"), str) else None,
        "buttons": [button.as_dict() for button in parse_buttons(raw.get("buttons"))],
        "image": image if isinstance(image, str) else None,
        "custom": parse_custom(raw),
        "payload": None,
        "timestamp": _iso(timestamp),
    }


def offered_payloads(messages: list[dict[str, Any]]) -> set[str]:
    return {b["payload"] for m in messages for b in m.get("buttons", [])}


def _turn_message(turn: ConversationTurn, titles: dict[str, str]) -> dict[str, Any]:
    """A turn in the documented shape; an agent's message is a ``bot`` message (``custom.agent_name`` labels it)."""
    message_id = f"e{turn.index}"
    if turn.role != "user":
        return bot_message(dict(turn.data), message_id=message_id, timestamp=turn.timestamp)
    text = turn.text or ""
    return {
        "id": message_id,
        "role": "user",
        "text": titles.get(text, text) if turn.payload else text,
        "payload": turn.payload,
        "buttons": [],
        "image": None,
        "custom": None,
        "timestamp": _iso(turn.timestamp),
    }


def history_from_tracker(tracker: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """The visible conversation, and the payloads offered by the bot since the visitor's last message.

    A button click is stored by Rasa as its payload (``/inform{...}``); it is shown with the title of
    the button that offered it, as the visitor saw it.
    """
    conversation = turns(tracker.get("events") or [])
    messages: list[dict[str, Any]] = []
    titles: dict[str, str] = {}
    for turn in conversation:
        if turn.role == "user" and turn.text is None:
            continue
        if turn.role != "user" and not turn.has_content:
            continue
        messages.append(_turn_message(turn, titles))
        titles.update((button.payload, button.title) for button in turn.buttons)
    return messages, offered_since_last_user(conversation)


def turn_from_tracker(tracker: dict[str, Any], correlation_id: str) -> list[dict[str, Any]] | None:
    """The bot's replies to the user message sent with ``correlation_id``, or None when Rasa has none.

    Rasa keeps the metadata the gateway sent with each user event; this finds a turn the gateway
    gave up waiting for (a timeout) but Rasa finished, so that a retry gets its answer instead of
    sending the message a second time.
    """
    conversation = turns(tracker.get("events") or [])
    start = next(
        (i for i, t in enumerate(conversation) if t.role == "user" and t.correlation_id == correlation_id), None
    )
    if start is None:
        return None
    replies: list[dict[str, Any]] = []
    for turn in conversation[start + 1 :]:
        if turn.role == "user":
            break
        raw = dict(turn.data)
        if raw.get("text") or raw.get("buttons") or raw.get("image") or raw.get("custom"):
            replies.append(raw)
    return replies


def merge_by_time(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two lists of messages, each in order, as one ordered by ``timestamp`` (ISO 8601 UTC, same format);
    on equal times ``first`` comes first."""
    if not second:
        return first
    tagged = [(m.get("timestamp") or "", 0, i, m) for i, m in enumerate(first)]
    tagged += [(m.get("timestamp") or "", 1, i, m) for i, m in enumerate(second)]
    return [m for *_, m in sorted(tagged, key=lambda t: (t[0], t[1], t[2]))]


def handoff_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message of a handoff (``tandem.services.handoff_views.message_json``) in the API's shape: the
    customer's is a ``user`` message, an agent's a ``bot`` message labelled by ``custom.agent_name``."""
    message_id, at = f"h{message['id']}", message["at"]
    if message["role"] == "customer":
        return {
            "id": message_id,
            "role": "user",
            "text": message["text"],
            "payload": None,
            "buttons": [],
            "image": None,
            "custom": None,
            "timestamp": at,
        }
    name = message.get("agent_name") if message["role"] == "agent" else None
    shaped = bot_message(
        {"text": message["text"], **({"custom": {"agent_name": name}} if name else {})}, message_id=message_id
    )
    shaped["timestamp"] = at
    return shaped
