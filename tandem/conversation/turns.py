"""Rasa tracker events → conversation turns, without Rasa.

The events are the plain dicts that both rasa-sdk's ``tracker.events`` and Rasa's HTTP tracker
JSON hold (``{"event": "user" | "bot" | "action" | "slot" | ..., ...}``). Everything that reads a
conversation (the gateway's history, the ticket transcript, the fallback chain's history, analytics)
reads it through this module, so a new event field is interpreted in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "bot", "agent"]
Event = Mapping[str, Any]

MAX_BUTTONS = 12
MAX_CHANNEL_CHARS = 32
MAX_AGENT_NAME_CHARS = 64
# Rasa's names of its input channels → the channel names of the project (Caller.channel, audit
# rows, tickets). The gateway's channel says which channel it serves in the message metadata.
INPUT_CHANNELS = {
    "cmdline": "shell",
    "rest": "rest",
    "slack": "slack",
    "telegram": "telegram",
    "socketio": "website",
}


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class ConversationTurn:
    """One user or bot event of a tracker, as the people in the conversation saw it.

    ``index`` is the event's position in the event list (the gateway's message ids are built from
    it). ``role`` is ``agent`` for a bot event written by a person (``custom.agent_name`` or
    ``metadata.agent_name``: the widget labels such bubbles with the name). ``text`` is what Rasa
    stored: for a button click the payload (``/inform{...}``), also in ``payload``. ``data`` is the
    bot message's payload as Rasa stored it (its ``data`` fields plus ``text``); ``buttons``,
    ``image`` and ``custom`` are its checked parts. ``intent``, ``confidence``, ``channel`` and
    ``correlation_id`` are known on user turns only.
    """

    index: int
    role: Role
    text: str | None
    timestamp: float | None = None
    buttons: tuple[Button, ...] = ()
    image: str | None = None
    custom: dict[str, Any] | None = None
    payload: str | None = None
    intent: str | None = None
    confidence: float | None = None
    channel: str | None = None
    correlation_id: str | None = None
    agent_name: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_content(self) -> bool:
        """Whether a bot turn shows anything (Rasa also stores empty bot events)."""
        return bool(self.text or self.buttons or self.image or self.custom)


def parse_buttons(raw: Any) -> tuple[Button, ...]:
    """Rasa's ``buttons``: at most :data:`MAX_BUTTONS` with a string payload; a missing title is the payload."""
    if not isinstance(raw, list):
        return ()
    buttons: list[Button] = []
    for button in raw[:MAX_BUTTONS]:
        if isinstance(button, dict) and isinstance(button.get("payload"), str):
            title = button.get("title")
            buttons.append(Button(str(title if title is not None else button["payload"]), button["payload"]))
    return tuple(buttons)


def parse_custom(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    """A message's ``custom`` payload as a dict (a scalar becomes ``{"value": ...}``)."""
    custom = raw.get("custom")
    if isinstance(custom, dict):
        return custom
    if custom is not None:
        return {"value": custom}
    return None


def channel_name(metadata: Any = None, input_channel: Any = None) -> str | None:
    """The channel a message came in on: ``website``, ``slack``, ``telegram``, ``shell``, ``rest`` ...

    The metadata's ``channel`` wins (the gateway's Rasa channel serves the website and says so;
    only the gateway can set it, see tandem_rasa/channel.py); else Rasa's input channel name,
    mapped by :data:`INPUT_CHANNELS` (``rasa shell`` is ``cmdline``: ``shell``). Unknown names
    pass through if they are short and printable; anything else is None.
    """
    for name in (metadata.get("channel") if isinstance(metadata, Mapping) else None, input_channel):
        if isinstance(name, str) and 0 < len(name) <= MAX_CHANNEL_CHARS and name.isprintable():
            lowered = name.strip().lower()
            if lowered:
                return INPUT_CHANNELS.get(lowered, lowered)
    return None


def as_number(value: Any) -> float | None:
    """A JSON number as a float (a timestamp, a confidence, a slot value), else None (``True`` is not one)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: Any, limit: int | None = None) -> str | None:
    if isinstance(value, str) and value and (limit is None or len(value) <= limit):
        return value
    return None


def _user_turn(index: int, event: Event) -> ConversationTurn:
    text = event.get("text")
    text = text if isinstance(text, str) else None
    parse_data = event.get("parse_data")
    intent = (parse_data.get("intent") if isinstance(parse_data, Mapping) else None) or {}
    if not isinstance(intent, Mapping):
        intent = {}
    metadata = event.get("metadata")
    return ConversationTurn(
        index=index,
        role="user",
        text=text,
        timestamp=as_number(event.get("timestamp")),
        payload=text if text is not None and text.startswith("/") else None,
        intent=name if isinstance(name := intent.get("name"), str) else None,
        confidence=as_number(intent.get("confidence")),
        channel=channel_name(metadata, event.get("input_channel")),
        correlation_id=_str(metadata.get("correlation_id")) if isinstance(metadata, Mapping) else None,
    )


def _bot_turn(index: int, event: Event) -> ConversationTurn:
    data = event.get("data")
    raw = {**(data if isinstance(data, Mapping) else {}), "text": event.get("text")}
    custom = parse_custom(raw)
    metadata = event.get("metadata")
    agent_name = _str((custom or {}).get("agent_name"), MAX_AGENT_NAME_CHARS) or (
        _str(metadata.get("agent_name"), MAX_AGENT_NAME_CHARS) if isinstance(metadata, Mapping) else None
    )
    image = raw.get("image")
    return ConversationTurn(
        index=index,
        role="agent" if agent_name else "bot",
        text=raw["text"] if isinstance(raw["text"], str) else None,
        timestamp=as_number(event.get("timestamp")),
        buttons=parse_buttons(raw.get("buttons")),
        image=image if isinstance(image, str) else None,
        custom=custom,
        agent_name=agent_name,
        data=raw,
    )


def is_external(event: Mapping[str, Any]) -> bool:
    """A user event nobody typed: Rasa's ``trigger_intent`` (the hand-back after a handoff, a refund
    decision) stores one with the text ``EXTERNAL: <intent>`` and ``metadata.is_external``."""
    metadata = event.get("metadata")
    return isinstance(metadata, Mapping) and metadata.get("is_external") is True


def turns(events: Iterable[Any]) -> list[ConversationTurn]:
    """Every user and bot event, in order (also empty ones: callers decide what they show).

    External user events (:func:`is_external`) are not turns: nobody said them.
    """
    result: list[ConversationTurn] = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping):
            continue
        kind = event.get("event")
        if kind == "user" and not is_external(event):
            result.append(_user_turn(index, event))
        elif kind == "bot":
            result.append(_bot_turn(index, event))
    return result


def offered_payloads(conversation: Iterable[ConversationTurn]) -> set[str]:
    """The button payloads the bot offered since the user's last message: what may be clicked now.

    A user event without text (none in practice) does not count as the user's message.
    """
    offered: set[str] = set()
    for turn in conversation:
        if turn.role == "user":
            if turn.text is not None:
                offered = set()
        elif turn.has_content:
            offered.update(button.payload for button in turn.buttons)
    return offered
