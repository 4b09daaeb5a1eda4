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

MAX_BUTTONS = 12


def _iso(timestamp: float | None) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC) if timestamp else datetime.now(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _buttons(raw: Any) -> list[dict[str, str]]:
    buttons: list[dict[str, str]] = []
    if not isinstance(raw, list):
        return buttons
    for button in raw[:MAX_BUTTONS]:
        if isinstance(button, dict) and isinstance(button.get("payload"), str):
            title = button.get("title")
            payload = button["payload"]
            buttons.append({"title": str(title if title is not None else payload), "payload": payload})
    return buttons


def _custom(raw: dict[str, Any]) -> dict[str, Any] | None:
    custom = raw.get("custom")
    if isinstance(custom, dict):
        return custom
    if custom is not None:
        return {"value": custom}
    return None


def bot_message(raw: dict[str, Any], *, message_id: str, timestamp: float | None = None) -> dict[str, Any]:
    """One of Rasa's REST channel outputs (or a tracker ``bot`` event's fields) in the gateway's shape."""
    image = raw.get("image")
    return {
        "id": message_id,
        "role": "bot",
        "text": raw.get("text") if isinstance(raw.get("text"), str) else None,
        "buttons": _buttons(raw.get("buttons")),
        "image": image if isinstance(image, str) else None,
        "custom": _custom(raw),
        "payload": None,
        "timestamp": _iso(timestamp),
    }


def offered_payloads(messages: list[dict[str, Any]]) -> set[str]:
    return {b["payload"] for m in messages for b in m.get("buttons", [])}


def history_from_tracker(tracker: dict[str, Any]) -> tuple[list[dict[str, Any]], set[str]]:
    """The visible conversation, and the payloads offered by the bot since the visitor's last message.

    A button click is stored by Rasa as its payload (``/inform{...}``); it is shown with the title of
    the button that offered it, as the visitor saw it.
    """
    messages: list[dict[str, Any]] = []
    titles: dict[str, str] = {}
    offered: set[str] = set()
    for index, event in enumerate(tracker.get("events") or []):
        if not isinstance(event, dict):
            continue
        kind = event.get("event")
        if kind == "user":
            text = event.get("text")
            if not isinstance(text, str):
                continue
            shown = titles.get(text, text) if text.startswith("/") else text
            messages.append(
                {
                    "id": f"e{index}",
                    "role": "user",
                    "text": shown,
                    "payload": text if text.startswith("/") else None,
                    "buttons": [],
                    "image": None,
                    "custom": None,
                    "timestamp": _iso(event.get("timestamp")),
                }
            )
            offered = set()
        elif kind == "bot":
            data = event.get("data") or {}
            raw = {**(data if isinstance(data, dict) else {}), "text": event.get("text")}
            message = bot_message(raw, message_id=f"e{index}", timestamp=event.get("timestamp"))
            if not (message["text"] or message["buttons"] or message["image"] or message["custom"]):
                continue
            for button in message["buttons"]:
                titles[button["payload"]] = button["title"]
                offered.add(button["payload"])
            messages.append(message)
    return messages, offered


def turn_from_tracker(tracker: dict[str, Any], correlation_id: str) -> list[dict[str, Any]] | None:
    """The bot's replies to the user message sent with ``correlation_id``, or None when Rasa has none.

    Rasa keeps the metadata the gateway sent with each user event; this finds a turn the gateway
    gave up waiting for (a timeout) but Rasa finished, so that a retry gets its answer instead of
    sending the message a second time.
    """
    events = [e for e in tracker.get("events") or [] if isinstance(e, dict)]
    start = None
    for index, event in enumerate(events):
        metadata = event.get("metadata")
        if (
            event.get("event") == "user"
            and isinstance(metadata, dict)
            and metadata.get("correlation_id") == correlation_id
        ):
            start = index
            break
    if start is None:
        return None
    replies: list[dict[str, Any]] = []
    for event in events[start + 1 :]:
        if event.get("event") == "user":
            break
        if event.get("event") == "bot":
            data = event.get("data") or {}
            raw = {**(data if isinstance(data, dict) else {}), "text": event.get("text")}
            if raw.get("text") or raw.get("buttons") or raw.get("image") or raw.get("custom"):
                replies.append(raw)
    return replies
