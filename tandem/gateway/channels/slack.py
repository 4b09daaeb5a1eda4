"""Slack's inbound side: request signatures, Events API bodies and button clicks, as typed values.

Why written here: Rasa 3.6's Slack connector runs a retry as a second turn unless Slack marked it
``http_timeout``, and runs an @-mention twice (``app_mention`` and its ``message`` twin). Here:

- :func:`verify_signature` checks Slack's v0 scheme on the raw bytes (HMAC-SHA256 of
  ``v0:{timestamp}:{body}``, constant-time compare, at most 5 minutes from now either way);
- :func:`parse_event` turns an Events API body into :class:`Challenge`, :class:`SlackInbound` or
  :class:`Ignored`. The de-duplication key is ``slack:{team}:{channel}:{ts}``: a message's
  ``ts`` is unique in its channel and the same in every delivery of it, so a retry (whatever
  ``X-Slack-Retry-Reason`` says) and the ``app_mention``/``message`` twin of one post map to one
  key, while a first delivery that never reached us still runs when its retry arrives;
- :func:`parse_interactivity` reads a ``block_actions`` click (``payload=`` form field); its key
  is per message, so only the first click on a message's buttons counts.

Text arrives in Slack's markup (``&amp;``, ``<@U123>``, ``<https://x|label>``); it is turned into
plain text, and a leading ``/`` is dropped (Rasa would read ``/intent{...}`` as a payload that
skips NLU; only offered buttons may do that). Nothing here logs or does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs

from tandem.gateway.channels.payloads import MAX_BODY_BYTES, load_object, mapping
from tandem.gateway.channels.slack_render import chosen_update, escape_mrkdwn, render_messages

__all__ = [
    "Challenge",
    "Ignored",
    "SlackClick",
    "SlackInbound",
    "chosen_update",
    "escape_mrkdwn",
    "parse_event",
    "parse_interactivity",
    "plain_text",
    "render_messages",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
RETRY_NUM_HEADER = "X-Slack-Retry-Num"
RETRY_REASON_HEADER = "X-Slack-Retry-Reason"
DEFAULT_TOLERANCE_SECONDS = 300
_MAX_TIMESTAMP_DIGITS = 12
_MENTION = re.compile(r"^\s*<@([UW][A-Z0-9]+)(?:\|[^>]*)?>[\s,:]*")
_MARKUP = re.compile(r"<([^<>]*)>")


def verify_signature(
    *,
    signing_secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True only for a v0 signature of exactly these bytes, made within ``tolerance_seconds`` of now.

    The timestamp must be ASCII digits (no sign, no exponent, no spaces); a stale or future one is
    refused before any HMAC is computed (a replayed request is stale).
    """
    if not signing_secret or timestamp is None or signature is None:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return False
    if abs(now - int(timestamp)) > tolerance_seconds:
        return False
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))


@dataclass(frozen=True)
class Challenge:
    """``url_verification``: answer 200 with this value (as ``{"challenge": value}`` or plain text)."""

    value: str


@dataclass(frozen=True)
class Ignored:
    """Nothing to run; answer 200 all the same (anything else makes Slack retry)."""

    reason: str


@dataclass(frozen=True)
class SlackInbound:
    """A person's message to the bot: a DM (``message``, ``channel_type: im``) or an ``app_mention``."""

    team: str
    channel: str
    user: str
    text: str
    ts: str
    event_type: Literal["message", "app_mention"]
    dedupe_key: str
    event_id: str | None = None
    thread_ts: str | None = None
    channel_type: str | None = None
    retry_num: int | None = None
    retry_reason: str | None = None

    @property
    def reply_thread_ts(self) -> str | None:
        """Where to answer: in the thread when the message is in one; a mention in a channel gets
        its answer in a thread under it (a busy channel is not flooded); a DM answers in place."""
        if self.thread_ts:
            return self.thread_ts
        return None if self.channel_type == "im" else self.ts


@dataclass(frozen=True)
class SlackClick:
    """A button click (``block_actions``): the clicked button's ``value`` and the message to update."""

    team: str
    channel: str
    user: str
    value: str
    message_ts: str
    dedupe_key: str
    action_id: str | None = None
    title: str | None = None
    thread_ts: str | None = None
    message_blocks: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _retry_num(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 4:
        return None
    return int(value)


def _retry_reason(value: str | None) -> str | None:
    """A header value fit for logs and metric labels (Slack's are short words: ``http_timeout``)."""
    if value is None:
        return None
    if 0 < len(value) <= 40 and all(c.isascii() and (c.isalnum() or c == "_") for c in value):
        return value
    return "other"


def plain_text(text: str) -> str:
    """Slack's message markup → plain text: ``<@U1>`` → ``@U1``, ``<url|label>`` → ``label``,
    ``<!here>`` → ``@here``, ``<#C1|general>`` → ``#general``; then ``&amp;``/``&lt;``/``&gt;``."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            name = target[1:].split("^", 1)[0]
            return label or "@" + name
        return label or target

    converted = _MARKUP.sub(replace, text)
    return converted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _message_text(raw: str, *, bot_user_id: str | None, mention: bool) -> str:
    match = _MENTION.match(raw)
    if match and (match.group(1) == bot_user_id or (bot_user_id is None and mention)):
        raw = raw[match.end() :]
    return plain_text(raw).strip().lstrip("/").strip()


def _ignored_subtype(subtype: str) -> Ignored:
    reasons = {"message_changed": "edited", "message_deleted": "deleted", "bot_message": "bot_message"}
    return Ignored(reasons.get(subtype, "subtype"))


def parse_event(
    body: bytes | Mapping[str, Any],
    *,
    bot_user_id: str | None = None,
    retry_num: str | None = None,
    retry_reason: str | None = None,
) -> Challenge | SlackInbound | Ignored:
    """An Events API body (already verified) → what to do with it.

    ``bot_user_id`` (the bot's ``U…`` id, from ``auth.test`` or the app's settings) makes the
    leading mention that is stripped exactly the bot's, and the bot's own messages ignored. The
    retry headers are carried for logs and metrics only: the de-duplication key does not depend
    on them.
    """
    data = load_object(body)
    if data is None:
        return Ignored("invalid_body")
    kind = data.get("type")
    if kind == "url_verification":
        challenge = _str(data.get("challenge"))
        return Challenge(challenge) if challenge else Ignored("invalid_body")
    if kind != "event_callback":
        return Ignored("unsupported_type")
    event = data.get("event")
    if not isinstance(event, Mapping):
        return Ignored("invalid_body")
    event_type = event.get("type")
    if event_type not in ("message", "app_mention"):
        return Ignored("unsupported_event")
    if event.get("bot_id") or event.get("bot_profile") or event.get("subtype") == "bot_message":
        return Ignored("bot_message")
    subtype = event.get("subtype")
    if subtype is not None:
        return _ignored_subtype(str(subtype))
    channel_type = _str(event.get("channel_type"))
    if event_type == "message" and channel_type != "im":
        return Ignored("not_direct_message")
    team = _str(data.get("team_id")) or _str(event.get("team"))
    channel, user, ts = _str(event.get("channel")), _str(event.get("user")), _str(event.get("ts"))
    if not (team and channel and user and ts):
        return Ignored("incomplete_event")
    if bot_user_id is not None and user == bot_user_id:
        return Ignored("bot_message")
    raw_text = event.get("text")
    text = (
        _message_text(raw_text, bot_user_id=bot_user_id, mention=event_type == "app_mention")
        if isinstance(raw_text, str)
        else ""
    )
    if not text:
        return Ignored("no_text")
    return SlackInbound(
        team=team,
        channel=channel,
        user=user,
        text=text,
        ts=ts,
        event_type=event_type,
        dedupe_key=f"slack:{team}:{channel}:{ts}",
        event_id=_str(data.get("event_id")),
        thread_ts=_str(event.get("thread_ts")),
        channel_type=channel_type,
        retry_num=_retry_num(retry_num),
        retry_reason=_retry_reason(retry_reason),
    )


def _form_payload(body: bytes) -> Mapping[str, Any] | None:
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=16, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    values = fields.get("payload")
    if not values or len(values) != 1:
        return None
    return load_object(values[0].encode("utf-8"))


def _first_button(actions: Any) -> Mapping[str, Any] | None:
    if not isinstance(actions, list):
        return None
    for action in actions:
        if isinstance(action, Mapping) and action.get("type") == "button" and _str(action.get("value")):
            return action
    return None


def parse_interactivity(body: bytes) -> SlackClick | Ignored:
    """An interactivity request body (``application/x-www-form-urlencoded``, ``payload=<JSON>``)."""
    data = _form_payload(body)
    if data is None:
        return Ignored("invalid_body")
    if data.get("type") != "block_actions":
        return Ignored("unsupported_type")
    container, message = mapping(data.get("container")), mapping(data.get("message"))
    if container.get("type") != "message" or not message:
        return Ignored("not_a_message")
    action = _first_button(data.get("actions"))
    if action is None:
        return Ignored("no_button_value")
    user, team_obj, channel_obj = mapping(data.get("user")), mapping(data.get("team")), mapping(data.get("channel"))
    team = _str(team_obj.get("id")) or _str(user.get("team_id"))
    channel = _str(channel_obj.get("id")) or _str(container.get("channel_id"))
    user_id = _str(user.get("id"))
    message_ts = _str(message.get("ts")) or _str(container.get("message_ts"))
    if not (team and channel and user_id and message_ts):
        return Ignored("incomplete_event")
    label = action.get("text")
    title = _str(label.get("text")) if isinstance(label, Mapping) else None
    blocks = message.get("blocks")
    return SlackClick(
        team=team,
        channel=channel,
        user=user_id,
        value=str(action["value"]),
        message_ts=message_ts,
        dedupe_key=f"slack-click:{team}:{channel}:{message_ts}",
        action_id=_str(action.get("action_id")),
        title=title,
        thread_ts=_str(message.get("thread_ts")),
        message_blocks=tuple(b for b in blocks if isinstance(b, Mapping)) if isinstance(blocks, list) else (),
    )
