"""The bot's messages → Slack ``chat.postMessage`` bodies (Block Kit), and the ``chat.update`` after a click.

Slack's limits, from its Block Kit reference: at most 50 blocks per message, 25 elements per
``actions`` block, 3,000 characters of section text, button text (``plain_text``) at most 75
characters, a button ``value`` at most 2,000, ``action_id`` unique in its block, ``block_id``
unique per message *and per iteration of a message* (an update uses new ones). Rasa 3.6's Slack
connector drops every button when there are more than 5; here:

- text is mrkdwn with ``&``, ``<`` and ``>`` escaped (nothing else: Slack asks for exactly these),
  split into sections of at most 3,000 escaped characters; the top-level ``text`` is the fallback
  that notifications and screen readers show;
- buttons go in ``actions`` blocks of 25, in order; the 26th and later ones go into a further
  ``actions`` block (nothing is dropped unless the message would pass 50 blocks, which is counted
  in :attr:`SlackPost.dropped_buttons`); a title is cut to 75 characters with an ellipsis; a
  button whose payload is longer than 2,000 characters cannot be offered and is dropped (counted);
- an image is an ``image`` block (http(s) URLs only); ``custom`` payloads are not shown, except
  the handoff marker when the caller gives a text for its state.

Every button's ``value`` is the bot's payload itself: the caller accepts a click only for a
payload the bot offered in that conversation (:attr:`SlackPost.buttons`), as on the web.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tandem.conversation import Button
from tandem.gateway.channels.bot_messages import (
    ELLIPSIS,
    BotMessage,
    cut,
    handoff_state,
    parse_bot_messages,
    split_text,
)

__all__ = ["SlackPost", "chosen_update", "escape_mrkdwn", "render_messages"]

MAX_BLOCKS = 50
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_SECTION_TEXT = 3000
MAX_FALLBACK_TEXT = 3000
MAX_ALT_TEXT = 2000
_KEPT_ON_UPDATE = frozenset({"section", "image", "context", "divider", "header"})


def _block_id() -> str:
    return secrets.token_urlsafe(9)


def escape_mrkdwn(text: str) -> str:
    """Slack's three escapes (``&`` first, or ``&lt;`` would become ``&amp;lt;``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escaped_length(char: str) -> int:
    return {"&": 5, "<": 4, ">": 4}.get(char, 1)


@dataclass(frozen=True)
class SlackPost:
    """One ``chat.postMessage`` body, the buttons it offers and how many did not fit."""

    body: dict[str, Any]
    buttons: tuple[Button, ...] = ()
    dropped_buttons: int = 0


def _button(button: Button, index: int) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": cut(button.title, MAX_BUTTON_TEXT), "emoji": True},
        "value": button.payload,
        "action_id": f"choice-{index}",
    }


def _fallback(text: str) -> str:
    """The top-level ``text``: the message's text, escaped, in at most 3,000 characters."""
    pieces = split_text(text, MAX_FALLBACK_TEXT - 1, weight=_escaped_length)
    if len(pieces) <= 1:
        return escape_mrkdwn(text)
    return escape_mrkdwn(pieces[0].rstrip()) + ELLIPSIS


def _text_of(message: BotMessage, handoff_texts: Mapping[str, str] | None) -> str | None:
    if message.text:
        return message.text
    state = handoff_state(message.custom)
    return handoff_texts.get(state) if handoff_texts and state else None


def _render_one(
    message: BotMessage,
    *,
    channel: str,
    thread_ts: str | None,
    handoff_texts: Mapping[str, str] | None,
    new_block_id: Callable[[], str],
) -> SlackPost | None:
    text = _text_of(message, handoff_texts)
    blocks: list[dict[str, Any]] = []
    if text:
        for piece in split_text(text, MAX_SECTION_TEXT, weight=_escaped_length):
            section = {"type": "mrkdwn", "text": escape_mrkdwn(piece)}
            blocks.append({"type": "section", "block_id": new_block_id(), "text": section})
    if message.image:
        alt = cut(text or "image", MAX_ALT_TEXT)
        blocks.append({"type": "image", "block_id": new_block_id(), "image_url": message.image, "alt_text": alt})
    offerable = [b for b in message.buttons if len(b.payload) <= MAX_BUTTON_VALUE]
    dropped = len(message.buttons) - len(offerable)
    room = max(MAX_BLOCKS - len(blocks), 0) * MAX_ACTIONS_ELEMENTS
    dropped += max(len(offerable) - room, 0)
    offered = tuple(offerable[:room])
    for start in range(0, len(offered), MAX_ACTIONS_ELEMENTS):
        elements = [_button(b, start + i) for i, b in enumerate(offered[start : start + MAX_ACTIONS_ELEMENTS])]
        blocks.append({"type": "actions", "block_id": new_block_id(), "elements": elements})
    if not blocks:
        return None
    if len(blocks) > MAX_BLOCKS:  # only text longer than 50 sections: the rest is not sent
        blocks = blocks[:MAX_BLOCKS]
    fallback = _fallback(text or " / ".join(b.title for b in offered) or "image")
    body: dict[str, Any] = {"channel": channel, "text": fallback, "blocks": blocks}
    if thread_ts:
        body["thread_ts"] = thread_ts
    return SlackPost(body=body, buttons=offered, dropped_buttons=dropped)


def render_messages(
    messages: Iterable[Any],
    *,
    channel: str,
    thread_ts: str | None = None,
    handoff_texts: Mapping[str, str] | None = None,
    new_block_id: Callable[[], str] = _block_id,
) -> list[SlackPost]:
    """Rasa's output messages → one ``chat.postMessage`` body each, in order (empty ones skipped).

    ``handoff_texts`` maps a handoff state (``pending``, ``agent_joined``, ``ended``) to the text
    shown for a ``{"custom": {"handoff": ...}}`` message without text (from the domain's
    responses); other custom payloads are not shown.
    """
    posts: list[SlackPost] = []
    for message in parse_bot_messages(messages):
        post = _render_one(
            message, channel=channel, thread_ts=thread_ts, handoff_texts=handoff_texts, new_block_id=new_block_id
        )
        if post is not None:
            posts.append(post)
    return posts


def chosen_update(
    *,
    channel: str,
    ts: str,
    title: str,
    blocks: Sequence[Mapping[str, Any]] = (),
    template: str = "You chose: {title}",
    new_block_id: Callable[[], str] = _block_id,
) -> dict[str, Any]:
    """The ``chat.update`` body that replaces a message's buttons by the choice made.

    ``blocks`` are the message's blocks as the click payload carried them: its text, images and
    context stay (with new ``block_id`` values, as Slack asks of an update); every ``actions`` block
    goes, and a context line saying the choice takes its place.
    """
    kept: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") in _KEPT_ON_UPDATE:
            kept.append({**block, "block_id": new_block_id()})
    choice = template.format(title=cut(title, MAX_BUTTON_TEXT))
    kept = kept[: MAX_BLOCKS - 1]
    kept.append(
        {"type": "context", "block_id": new_block_id(), "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(choice)}]}
    )
    return {"channel": channel, "ts": ts, "text": escape_mrkdwn(choice), "blocks": kept}
