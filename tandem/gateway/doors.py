"""What the Slack and Telegram doors share: their stores, their lanes, and one turn through Rasa.

Both platforms are acknowledged at once and their turns run in the background, one conversation's
turns one at a time in arrival order (:class:`~tandem.gateway.channels.lanes.ConversationLanes`).
A turn validates the text as the website does (the one message cap, no control characters),
counts it against the conversation's rate limit, posts it to Rasa's gateway channel with the real
channel in the metadata (so the tracker's input channel is ``slack`` or ``telegram``), and stores
the payloads the bot offered (a click is accepted only for those, as on the web). What a customer
did wrong (too long, too fast) gets a short reply on their platform; what went wrong on our side
gets an apology; nothing of either reaches the logs but lengths and reasons.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tandem.gateway.channels import slack as slack_platform
from tandem.gateway.channels import telegram as telegram_platform
from tandem.gateway.channels.dedupe import (
    CallbackEntry,
    CallbackStore,
    DedupeStore,
    MemoryCallbackStore,
    MemoryDedupeStore,
    RedisCallbackStore,
    RedisDedupeStore,
)
from tandem.gateway.channels.lanes import ConversationLanes
from tandem.gateway.channels.outbound import SlackWebApi, TelegramBotApi, redact_httpx_urls
from tandem.gateway.errors import GatewayError, UpstreamError
from tandem.gateway.state import GatewayState
from tandem.gateway.validation import check_text
from tandem.runtime import Infrastructure
from tandem.settings import GatewayAppSettings, SlackSettings, TelegramSettings

# How long an event id, update id or click is remembered: longer than any platform's redelivery.
DEDUPE_TTL_SECONDS = 24 * 3600
# How long a Telegram button's opaque id maps to its payload.
CALLBACK_TTL_SECONDS = 7 * 24 * 3600
# At most one "slow down" reply per conversation in this many seconds.
NOTICE_TTL_SECONDS = 60
PLATFORM_TIMEOUT_SECONDS = 10.0
# What a platform may post to a door (Slack's and Telegram's bodies are a few kilobytes).
PLATFORM_MAX_BODY_BYTES = 256 * 1024

SORRY = "Sorry, I can't answer right now. Please try again in a moment."

# Renders and posts the bot's messages on the platform; answers the payloads its buttons carry.
Send = Callable[[list[dict[str, Any]]], Awaitable[set[str]]]


@dataclass(frozen=True)
class SlackDoor:
    settings: SlackSettings
    api: SlackWebApi


@dataclass(frozen=True)
class TelegramDoor:
    settings: TelegramSettings
    api: TelegramBotApi


@dataclass
class Doors:
    """The platform doors of one gateway app (None: that door is off)."""

    slack: SlackDoor | None
    telegram: TelegramDoor | None
    dedupe: DedupeStore
    callbacks: CallbackStore
    lanes: ConversationLanes
    id_secret: bytes
    log: logging.Logger

    @property
    def any(self) -> bool:
        return self.slack is not None or self.telegram is not None

    async def aclose(self) -> None:
        await self.lanes.aclose()

    def sender(self, channel: str | None, address: dict[str, Any] | None, conversation_id: str) -> Send | None:
        """How to post to a platform customer outside a turn (an agent's reply, the hand-back):
        from the address recorded when the handoff opened. None: not a platform conversation (the
        website reads its messages from the gateway) or that door is off."""
        address = address or {}
        if channel == "slack" and self.slack is not None and isinstance(address.get("channel"), str):
            door, room = self.slack, address["channel"]
            thread = address.get("thread_ts") if isinstance(address.get("thread_ts"), str) else None

            async def to_slack(messages: list[dict[str, Any]]) -> set[str]:
                return await slack_post(door, messages, channel=room, thread_ts=thread)

            return to_slack
        chat = address.get("chat_id")
        if channel == "telegram" and self.telegram is not None and isinstance(chat, int) and not isinstance(chat, bool):
            tg = self.telegram

            async def to_telegram(messages: list[dict[str, Any]]) -> set[str]:
                return await telegram_post(tg, self, messages, chat_id=chat, conversation=conversation_id)

            return to_telegram
        return None


async def slack_post(
    door: SlackDoor, messages: list[dict[str, Any]], *, channel: str, thread_ts: str | None
) -> set[str]:
    """Post the bot's messages in a Slack channel (or thread); the payloads its buttons carry."""
    offered: set[str] = set()
    for post in slack_platform.render_messages(messages, channel=channel, thread_ts=thread_ts):
        await door.api.post_message(post.body)
        offered.update(button.payload for button in post.buttons)
    return offered


async def telegram_post(
    door: TelegramDoor, doors: Doors, messages: list[dict[str, Any]], *, chat_id: int, conversation: str
) -> set[str]:
    """Send the bot's messages to a Telegram chat; the buttons' opaque ids are stored first."""
    rendered = telegram_platform.render_messages(messages, chat_id=chat_id)
    entries = {
        callback_id: CallbackEntry(option.payload, option.title, conversation)
        for callback_id, option in rendered.callbacks.items()
    }
    if entries:  # stored before the buttons exist on the customer's screen
        await doors.callbacks.put(entries, CALLBACK_TTL_SECONDS)
    for call in rendered.calls:
        await door.api.call(call.method, call.body)
    return {option.payload for option in rendered.callbacks.values()}


def build_doors(
    settings: GatewayAppSettings, infra: Infrastructure, http: httpx.AsyncClient, *, id_secret: bytes
) -> Doors:
    """The doors ``settings`` turn on, over the app's Redis (or process memory) and HTTP client."""
    log = logging.getLogger("tandem.gateway.channels")
    redis_client = infra.async_client()
    dedupe: DedupeStore
    callbacks: CallbackStore
    if redis_client is not None:
        dedupe = RedisDedupeStore(redis_client, prefix=infra.prefix("gw:dedupe"))
        callbacks = RedisCallbackStore(redis_client, prefix=infra.prefix("gw:callbacks"))
    else:
        dedupe, callbacks = MemoryDedupeStore(), MemoryCallbackStore()
    slack = telegram = None
    if settings.slack.enabled:
        token = settings.slack.slack_bot_token.get_secret_value() if settings.slack.slack_bot_token else ""
        slack = SlackDoor(
            settings.slack, SlackWebApi(http, settings.slack.slack_api_base_url, token, PLATFORM_TIMEOUT_SECONDS)
        )
    if settings.telegram.enabled:
        token = settings.telegram.telegram_bot_token.get_secret_value() if settings.telegram.telegram_bot_token else ""
        telegram = TelegramDoor(
            settings.telegram,
            TelegramBotApi(http, settings.telegram.telegram_api_base_url, token, PLATFORM_TIMEOUT_SECONDS),
        )
        # httpx logs every request URL at INFO, and the Bot API's URLs hold the token.
        redact_httpx_urls()
    return Doors(slack, telegram, dedupe, callbacks, ConversationLanes(), id_secret, log)


async def platform_turn(
    state: GatewayState,
    doors: Doors,
    *,
    channel: str,
    conversation_id: str,
    client: str,
    text: str,
    send: Send,
    address: dict[str, Any] | None = None,
) -> None:
    """One customer turn from a platform: validate, limit, Rasa, remember the offers, send the replies.

    Runs in the conversation's lane, after the platform was answered; never raises (a failure is
    logged and the customer gets a short message through ``send``). ``address`` is where the
    customer is answered outside a turn (Slack channel and thread, Telegram chat): recorded on a
    handoff the bot opens, so that an agent's replies reach them. While a person has the
    conversation the message goes to the handoff, not to Rasa.
    """
    started = time.perf_counter()
    outcome, replies = "ok", 0
    try:
        try:
            check_text(text, max_chars=state.input.max_message_chars, what="message")
            await state.limits.check("session", conversation_id)
        except GatewayError as refused:
            outcome = refused.reason or refused.code
            if refused.status != 429 or await doors.dedupe.claim(f"notice:{conversation_id}", NOTICE_TTL_SECONDS):
                await send([{"text": refused.message}])
            return
        if state.desk is not None:
            try:
                held = await state.desk.intercept(conversation_id, text=text)
            except GatewayError as unavailable:
                outcome = unavailable.reason
                await send([{"text": SORRY}])
                return
            if held is not None:
                outcome = "handoff"
                offered = await send(held)
                if offered:  # the bot's replies after a cancel carry buttons
                    await state.offers.set(conversation_id, offered)
                return
        try:
            messages = await state.rasa.send(
                conversation_id,
                text,
                correlation_id=uuid.uuid4().hex,
                client_key=state.codec.client_key(client),
                channel=channel,
            )
        except UpstreamError as error:
            outcome = error.code
            state.metrics.upstream_errors.labels(error.kind).inc()
            await send([{"text": SORRY}])
            return
        replies = len(messages)
        if state.desk is not None:
            await state.desk.after_turn(conversation_id, channel=channel, address=address, replies=messages)
        # Before a click can come back: only what was offered is accepted, as on the web.
        offered = await send(messages)
        await state.offers.set(conversation_id, offered)
    except Exception as exc:  # the platform or a store failed: logged, the lane goes on
        outcome = type(exc).__name__
        doors.log.warning("channel turn failed", extra={"event": "channel_turn_failed", "channel": channel})
    finally:
        state.observe_turn(
            time.perf_counter() - started,
            channel=channel,
            conversation_id=conversation_id,
            chars=len(text),
            replies=replies,
            outcome=outcome,
        )
