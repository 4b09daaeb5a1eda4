"""Telegram's side: the webhook secret, updates as typed values, and the bot's messages as Bot API calls.

Why written here: Rasa 3.6's Telegram connector checks no secret (a forged update with any chat
id runs a turn), answers 500 to every update that is not a message, an edit or a click (so
Telegram keeps redelivering the one it sends when a user blocks the bot), never answers a click,
puts payloads into ``callback_data`` (64 bytes at most) and strips "/bot" anywhere in the text.

- :func:`verify_secret`: the ``X-Telegram-Bot-Api-Secret-Token`` header (set with
  ``setWebhook``'s ``secret_token``) against the configured secret, in constant time;
- :func:`parse_update`: ``message`` with text → :class:`TelegramInbound`, ``callback_query`` →
  :class:`TelegramClick`, anything else → :class:`Ignored` (with the chat to tell "please send
  text" when a person sent a sticker, photo, voice note... in a private chat, and the callback
  query to answer when a click cannot run). Every key is per ``update_id``; a click also has a
  per-message key so that only the first click on a keyboard counts;
- :func:`render_messages`: HTML-escaped text (``parse_mode: HTML``) in pieces of at most 4,096
  characters as Telegram counts them (UTF-16 code units, after entity parsing), an inline
  keyboard on the last piece whose ``callback_data`` are random 16-character ids; the caller
  stores :attr:`TelegramRendered.callbacks` (id → payload) server-side before sending.

Only private chats run turns by default (a support conversation is one person's). Text never
starts with ``/`` when it reaches Rasa: ``/start`` (and other known commands) map to a text, an
unknown ``/cmd args`` becomes ``cmd args``; ``/cmd@otherbot`` is ignored.
"""

from __future__ import annotations

import hmac
import html
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tandem.gateway.channels.bot_messages import cut, handoff_state, parse_bot_messages, split_text, utf16_units
from tandem.gateway.channels.payloads import load_object, mapping

__all__ = [
    "CallbackOption",
    "Ignored",
    "TelegramCall",
    "TelegramClick",
    "TelegramInbound",
    "TelegramRendered",
    "answer_callback",
    "chosen_message",
    "escape_html",
    "parse_update",
    "remove_keyboard",
    "render_messages",
    "text_message",
    "verify_secret",
]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name, not a secret)
MAX_TEXT_UNITS = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_BUTTONS = 50
MAX_BUTTON_TEXT = 64
MAX_CALLBACK_ANSWER = 200
DEFAULT_COMMANDS: Mapping[str, str] = {"start": "Hello", "help": "What can you do?"}
# What a person sends that is not text: the caller answers these with "please send text".
_PERSONAL_CONTENT = frozenset(
    {
        "animation",
        "audio",
        "contact",
        "dice",
        "document",
        "game",
        "location",
        "photo",
        "poll",
        "sticker",
        "story",
        "venue",
        "video",
        "video_note",
        "voice",
    }
)
_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?=\s|$)")


def verify_secret(expected: str, header: str | None) -> bool:
    """True only when the header equals the configured (non-empty) secret; constant time."""
    if not expected or header is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), header.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Ignored:
    """Nothing to run; answer 200. ``reply_chat_id``: tell this chat "please send text";
    ``callback_query_id``: answer this click (or the client spins)."""

    reason: str
    reply_chat_id: int | None = None
    callback_query_id: str | None = None


@dataclass(frozen=True)
class TelegramInbound:
    update_id: int
    chat_id: int
    from_id: int
    text: str
    message_id: int
    dedupe_key: str
    command: str | None = None


@dataclass(frozen=True)
class TelegramClick:
    update_id: int
    callback_query_id: str
    chat_id: int
    from_id: int
    data: str
    message_id: int
    dedupe_key: str
    message_key: str  # one per keyboard: claim it so that only the first click on a message counts


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _command_text(
    text: str, *, bot_username: str | None, commands: Mapping[str, str]
) -> tuple[str | None, str | None, bool]:
    """(text for Rasa, command name, addressed to another bot)."""
    match = _COMMAND.match(text)
    if not match:
        return text.lstrip("/").strip(), None, False
    name, addressee = match.group(1).lower(), match.group(2)
    if addressee and bot_username and addressee.lower() != bot_username.lstrip("@").lower():
        return None, name, True
    if name in commands:
        return commands[name], name, False
    rest = text[match.end() :].strip()
    return f"{name} {rest}".strip(), name, False


def _message(
    update_id: int, message: Mapping[str, Any], *, bot_username: str | None, commands: Mapping[str, str], private: bool
) -> TelegramInbound | Ignored:
    chat, sender = mapping(message.get("chat")), mapping(message.get("from"))
    chat_id, from_id, message_id = _int(chat.get("id")), _int(sender.get("id")), _int(message.get("message_id"))
    if chat_id is None or from_id is None or message_id is None:
        return Ignored("incomplete_update")
    if sender.get("is_bot") is True:
        return Ignored("from_bot")
    is_private = chat.get("type") == "private"
    if private and not is_private:
        return Ignored("not_private_chat")
    reply = chat_id if is_private else None
    raw = message.get("text")
    if not isinstance(raw, str):
        person_wrote = any(key in message for key in _PERSONAL_CONTENT)
        return Ignored("not_text", reply_chat_id=reply if person_wrote else None)
    text, command, elsewhere = _command_text(raw.strip(), bot_username=bot_username, commands=commands)
    if elsewhere:
        return Ignored("command_for_another_bot")
    if not text:
        return Ignored("no_text", reply_chat_id=reply)
    return TelegramInbound(
        update_id=update_id,
        chat_id=chat_id,
        from_id=from_id,
        text=text,
        message_id=message_id,
        dedupe_key=f"telegram:update:{update_id}",
        command=command,
    )


def _click(update_id: int, query: Mapping[str, Any], *, private: bool) -> TelegramClick | Ignored:
    query_id = query.get("id")
    if not isinstance(query_id, str) or not query_id:
        return Ignored("incomplete_update")
    message = mapping(query.get("message"))
    chat, sender = mapping(message.get("chat")), mapping(query.get("from"))
    chat_id, from_id, message_id = _int(chat.get("id")), _int(sender.get("id")), _int(message.get("message_id"))
    data = query.get("data")
    if chat_id is None or from_id is None or message_id is None:
        return Ignored("no_message", callback_query_id=query_id)  # an inline-mode message: not ours
    if not isinstance(data, str) or not data:
        return Ignored("no_callback_data", callback_query_id=query_id)
    if private and chat.get("type") != "private":
        return Ignored("not_private_chat", callback_query_id=query_id)
    return TelegramClick(
        update_id=update_id,
        callback_query_id=query_id,
        chat_id=chat_id,
        from_id=from_id,
        data=data,
        message_id=message_id,
        dedupe_key=f"telegram:update:{update_id}",
        message_key=f"telegram-click:{chat_id}:{message_id}",
    )


def parse_update(
    body: bytes | Mapping[str, Any],
    *,
    bot_username: str | None = None,
    commands: Mapping[str, str] = DEFAULT_COMMANDS,
    private_only: bool = True,
) -> TelegramInbound | TelegramClick | Ignored:
    """An update (already authenticated by :func:`verify_secret`) → what to do with it.

    ``commands`` maps a command name (``start``) to the text Rasa gets for it (a greeting).
    """
    data = load_object(body)
    update_id = _int(data.get("update_id")) if data is not None else None
    if data is None or update_id is None:
        return Ignored("invalid_update")
    if isinstance(data.get("message"), Mapping):
        return _message(update_id, data["message"], bot_username=bot_username, commands=commands, private=private_only)
    if isinstance(data.get("callback_query"), Mapping):
        return _click(update_id, data["callback_query"], private=private_only)
    member = mapping(data.get("my_chat_member"))
    if mapping(member.get("new_chat_member")).get("status") == "kicked":
        return Ignored("bot_blocked")  # the user blocked the bot: stop writing to them
    kinds = sorted(key for key in data if key != "update_id")
    return Ignored(kinds[0] if len(kinds) == 1 and len(kinds[0]) <= 40 else "unsupported_update")


# --- rendering ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackOption:
    """What a button id stands for: the bot's payload and the title the person saw."""

    payload: str
    title: str


@dataclass(frozen=True)
class TelegramCall:
    """One Bot API call: ``sendMessage`` or ``sendPhoto`` and its JSON body."""

    method: str
    body: dict[str, Any]


@dataclass(frozen=True)
class TelegramRendered:
    calls: tuple[TelegramCall, ...]
    callbacks: Mapping[str, CallbackOption] = field(default_factory=dict)
    dropped_buttons: int = 0


def _callback_id() -> str:
    return secrets.token_urlsafe(12)  # 16 URL-safe characters, 96 random bits


def escape_html(text: str) -> str:
    """``&``, ``<`` and ``>`` as entities: all Telegram's HTML mode needs outside tags."""
    return html.escape(text, quote=False)


def text_message(chat_id: int, text: str) -> dict[str, Any]:
    """A ``sendMessage`` body with plain text (escaped), e.g. "please send text" or "You chose: …"."""
    return {"chat_id": chat_id, "text": escape_html(text), "parse_mode": "HTML"}


def render_messages(
    messages: Iterable[Any],
    *,
    chat_id: int,
    button_prompt: str = "Please choose:",
    handoff_texts: Mapping[str, str] | None = None,
    new_callback_id: Callable[[], str] = _callback_id,
) -> TelegramRendered:
    """Rasa's output messages → Bot API calls in order, and the button ids to store.

    A message's text is split at 4,096 UTF-16 units (paragraph, line or space boundaries) and the
    keyboard (one button per row) goes on its last piece; buttons without text get
    ``button_prompt``; an image is a ``sendPhoto`` after the text; ``custom`` payloads are not
    shown, except the handoff marker when ``handoff_texts`` has a text for its state.
    """
    calls: list[TelegramCall] = []
    callbacks: dict[str, CallbackOption] = {}
    dropped = 0
    for message in parse_bot_messages(messages):
        text = message.text
        if not text:
            state = handoff_state(message.custom)
            text = handoff_texts.get(state) if handoff_texts and state else None
        offered = message.buttons[:MAX_BUTTONS]
        dropped += len(message.buttons) - len(offered)
        if offered and not text:
            text = button_prompt
        pieces = split_text(text, MAX_TEXT_UNITS, weight=utf16_units) if text else []
        for index, piece in enumerate(pieces):
            body: dict[str, Any] = {"chat_id": chat_id, "text": escape_html(piece), "parse_mode": "HTML"}
            if offered and index == len(pieces) - 1:
                rows = []
                for button in offered:
                    callback_id = new_callback_id()
                    if not 0 < len(callback_id.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                        raise ValueError("a callback id must be 1-64 bytes")
                    callbacks[callback_id] = CallbackOption(button.payload, button.title)
                    rows.append([{"text": cut(button.title, MAX_BUTTON_TEXT), "callback_data": callback_id}])
                body["reply_markup"] = {"inline_keyboard": rows}
            calls.append(TelegramCall("sendMessage", body))
        if message.image:
            calls.append(TelegramCall("sendPhoto", {"chat_id": chat_id, "photo": message.image}))
    return TelegramRendered(calls=tuple(calls), callbacks=callbacks, dropped_buttons=dropped)


def chosen_message(chat_id: int, title: str, *, template: str = "You chose: {title}") -> dict[str, Any]:
    """The ``sendMessage`` body that says which button was clicked (after :func:`remove_keyboard`)."""
    return text_message(chat_id, template.format(title=title))


def remove_keyboard(chat_id: int, message_id: int) -> dict[str, Any]:
    """The ``editMessageReplyMarkup`` body that takes a message's inline keyboard away
    (no ``reply_markup``: the message is left without one)."""
    return {"chat_id": chat_id, "message_id": message_id}


def answer_callback(callback_query_id: str, text: str | None = None) -> dict[str, Any]:
    """The ``answerCallbackQuery`` body (stops the client's spinner; ``text`` is a short toast)."""
    body: dict[str, Any] = {"callback_query_id": callback_query_id}
    if text:
        body["text"] = cut(text, MAX_CALLBACK_ANSWER)
    return body
