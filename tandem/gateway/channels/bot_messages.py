"""The bot's messages as both platform renderers read them, and text splitting at a platform's limit.

Rasa's outputs (``{"text", "buttons": [{"title", "payload"}], "image", "custom"}``) are dicts of
any shape; they are parsed once, defensively, here so that the Slack and Telegram renderers only
see typed values. Unlike :func:`tandem.conversation.parse_buttons` (the website's cap of 12),
nothing is cut here: each platform has its own limits and its own rule for what does not fit.

Long text is split on paragraph, line or word boundaries (a hard cut only inside a very long
word), measured with the platform's own notion of length (Telegram counts UTF-16 code units after
entity parsing, Slack counts the escaped text), never in the middle of a character or a combining
sequence, and so that joining the pieces gives the text back.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tandem.conversation import Button, parse_custom

__all__ = [
    "BotMessage",
    "cut",
    "handoff_state",
    "http_url",
    "parse_bot_message",
    "parse_bot_messages",
    "split_text",
    "utf16_units",
]

MAX_URL_CHARS = 3000  # Slack's image_url limit; a sane bound for Telegram's photo URL too
ELLIPSIS = "…"
# A boundary this far into the window at least, or the pieces get silly small (a paragraph break
# 20 characters into a 4,096-character window would leave a 20-character message).
_MIN_BOUNDARY_FRACTION = 0.5


@dataclass(frozen=True)
class BotMessage:
    """One bot message: text, buttons (all of them, in order), an image URL, a custom payload."""

    text: str | None
    buttons: tuple[Button, ...] = ()
    image: str | None = None
    custom: Mapping[str, Any] | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.text or self.buttons or self.image or self.custom)


def _buttons(raw: Any) -> tuple[Button, ...]:
    if not isinstance(raw, list):
        return ()
    buttons: list[Button] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        payload = item.get("payload")
        if not isinstance(payload, str) or not payload.strip():
            continue
        title = item.get("title")
        text = title.strip() if isinstance(title, str) and title.strip() else payload
        buttons.append(Button(text, payload))
    return tuple(buttons)


def http_url(value: Any) -> str | None:
    """An http(s) URL of reasonable length, else None (no ``javascript:``, ``file:`` or junk)."""
    if not isinstance(value, str):
        return None
    url = value.strip()
    if not url.lower().startswith(("https://", "http://")) or len(url) > MAX_URL_CHARS:
        return None
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        return None
    return url


def parse_bot_message(raw: Mapping[str, Any]) -> BotMessage:
    text = raw.get("text")
    return BotMessage(
        text=text if isinstance(text, str) and text.strip() else None,
        buttons=_buttons(raw.get("buttons")),
        image=http_url(raw.get("image")),
        custom=parse_custom(raw),
    )


def parse_bot_messages(raws: Iterable[Any]) -> list[BotMessage]:
    """Rasa's output list → the messages worth sending, in order (non-dicts and empty ones dropped)."""
    messages = [parse_bot_message(raw) for raw in raws if isinstance(raw, Mapping)]
    return [m for m in messages if not m.is_empty]


def handoff_state(custom: Mapping[str, Any] | None) -> str | None:
    """``{"handoff": {"state": "pending"}}`` → ``"pending"`` (the marker of the human handoff)."""
    handoff = custom.get("handoff") if custom else None
    state = handoff.get("state") if isinstance(handoff, Mapping) else None
    return state if isinstance(state, str) and state else None


def utf16_units(char: str) -> int:
    """How Telegram counts a character: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return 2 if ord(char) > 0xFFFF else 1


def _one(char: str) -> int:
    return 1


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, with an ellipsis when something was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)].rstrip() + ELLIPSIS


def _joins_previous(char: str) -> bool:
    """Characters that belong to the one before them: a cut just before them splits a glyph."""
    return unicodedata.combining(char) != 0 or char in ("\u200d", "\ufe0e", "\ufe0f")


def _boundary(window: str) -> int:
    """Where to end a piece taken from ``window`` (the longest prefix that fits)."""
    floor = int(len(window) * _MIN_BOUNDARY_FRACTION)
    for separator in ("\n\n", "\n", " "):
        position = window.rfind(separator)
        if position >= 0 and position + len(separator) > floor:
            return position + len(separator)
    position = window.rfind(" ")  # a long word after an early space: still better than mid-word
    if position > 0:
        return position + 1
    return len(window)  # no space at all: a hard cut (the caller keeps glyphs whole)


def split_text(text: str, limit: int, *, weight: Callable[[str], int] = _one) -> list[str]:
    """``text`` in pieces of at most ``limit`` (the sum of ``weight`` per character).

    Pieces end after a paragraph break, else a line break, else a space; joined they give ``text``
    back, except that pieces of only whitespace are left out (a platform refuses an empty message).
    """
    if limit < 8:
        raise ValueError("the limit is too small to split text sensibly")
    pieces: list[str] = []
    start = 0
    while start < len(text):
        total = 0
        end = start
        while end < len(text) and total + weight(text[end]) <= limit:
            total += weight(text[end])
            end += 1
        if end < len(text):
            window = text[start:end]
            size = _boundary(window)
            if size == len(window):
                # A hard cut: keep a combining mark, a joiner or a variation selector with its base.
                while size > 1 and (_joins_previous(text[start + size]) or text[start + size - 1] == "\u200d"):
                    size -= 1
            end = start + size
        pieces.append(text[start:end])
        start = end
    return [piece for piece in pieces if piece.strip()]
