"""The Telegram door: ``POST /channels/telegram/webhook``.

The ``X-Telegram-Bot-Api-Secret-Token`` header must equal ``TELEGRAM_WEBHOOK_SECRET`` (constant
time; 401 and nothing else otherwise). From there every update is answered 200 (Telegram
redelivers anything else, the ``my_chat_member`` of a user blocking the bot included); an
``update_id`` already seen is not run again. A message runs a turn in the conversation's lane; a
button click is always answered (``answerCallbackQuery``, so the client stops spinning), counts
only as the first click on its keyboard and only for a button the bot offered in that same
conversation (buttons carry short opaque ids mapped on the server to the bot's payload); other
updates from a person get "please send text". Conversation ids are keyed hashes of chat and sender.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response

from tandem.gateway.channels import telegram
from tandem.gateway.channels.conversation_ids import telegram_conversation_id
from tandem.gateway.channels.outbound import PlatformError
from tandem.gateway.doors import (
    DEDUPE_TTL_SECONDS,
    NOTICE_TTL_SECONDS,
    PLATFORM_MAX_BODY_BYTES,
    Doors,
    platform_turn,
    telegram_post,
)
from tandem.gateway.errors import GatewayError
from tandem.gateway.requests import read_raw_body
from tandem.gateway.state import GatewayState

ONLY_TEXT = "I can only read text messages. Please type your question."


def install_telegram_routes(app: FastAPI, state: GatewayState, doors: Doors) -> None:
    """The Telegram route (only when Telegram is configured)."""
    door = doors.telegram
    if door is None:
        return
    secret = door.settings.telegram_webhook_secret.get_secret_value() if door.settings.telegram_webhook_secret else ""

    def conversation_of(chat_id: int, from_id: int) -> str:
        return telegram_conversation_id(doors.id_secret, chat_id=chat_id, from_id=from_id)

    async def run_turn(chat_id: int, from_id: int, text: str) -> None:
        conversation = conversation_of(chat_id, from_id)

        async def send(messages: list[dict[str, Any]]) -> set[str]:
            return await telegram_post(door, doors, messages, chat_id=chat_id, conversation=conversation)

        await platform_turn(
            state,
            doors,
            channel="telegram",
            conversation_id=conversation,
            client=f"telegram:{from_id}",
            text=text,
            send=send,
            address={"chat_id": chat_id},
        )

    async def clicked(click: telegram.TelegramClick) -> None:
        conversation = conversation_of(click.chat_id, click.from_id)
        entry = await doors.callbacks.get(click.data)
        if entry is None or entry.conversation_id != conversation:
            state.metrics.rejections.labels("telegram_unknown_callback").inc()
            return
        if entry.payload not in await state.offered(conversation):
            state.metrics.rejections.labels("payload_not_offered").inc()
            return
        if not await doors.dedupe.claim(click.message_key, DEDUPE_TTL_SECONDS):
            return  # only the first valid click on a keyboard counts
        try:
            await door.api.edit_reply_markup(telegram.remove_keyboard(click.chat_id, click.message_id))
            await door.api.send_message(telegram.chosen_message(click.chat_id, entry.title))
        except PlatformError:
            doors.log.warning("telegram: the choice could not be shown", extra={"event": "telegram_choice"})
        await run_turn(click.chat_id, click.from_id, entry.payload)

    async def answer(callback_query_id: str) -> None:
        try:
            await door.api.answer_callback_query(telegram.answer_callback(callback_query_id))
        except PlatformError:
            doors.log.info("telegram: a callback query could not be answered", extra={"event": "telegram_answer"})

    @app.post("/channels/telegram/webhook", tags=["channels"], summary="Telegram Bot API webhook (secret token).")
    async def telegram_webhook(request: Request) -> Response:
        if not telegram.verify_secret(secret, request.headers.get(telegram.SECRET_HEADER)):
            state.metrics.rejections.labels("telegram_secret").inc()
            raise GatewayError(401, "invalid_secret", "The request does not carry the webhook's secret token.")
        raw = await read_raw_body(request, PLATFORM_MAX_BODY_BYTES)
        update = telegram.parse_update(raw, bot_username=door.settings.telegram_bot_username)
        if isinstance(update, telegram.Ignored):
            state.metrics.rejections.labels(f"telegram_ignored_{update.reason}"[:60]).inc()
            await _ignored(update)
            return Response(status_code=200)
        if not await doors.dedupe.claim(update.dedupe_key, DEDUPE_TTL_SECONDS):
            state.metrics.rejections.labels("telegram_duplicate").inc()
            return Response(status_code=200)
        if isinstance(update, telegram.TelegramClick):
            click = update
            # Always answered (the client spins otherwise), off the request path.
            doors.lanes.submit(f"telegram-answer:{click.callback_query_id}", lambda: answer(click.callback_query_id))
            doors.lanes.submit(conversation_of(click.chat_id, click.from_id), lambda: clicked(click))
            return Response(status_code=200)
        inbound = update
        conversation = conversation_of(inbound.chat_id, inbound.from_id)
        if not doors.lanes.submit(conversation, lambda: run_turn(inbound.chat_id, inbound.from_id, inbound.text)):
            state.metrics.rejections.labels("telegram_lane_full").inc()
        return Response(status_code=200)

    async def _ignored(update: telegram.Ignored) -> None:
        if update.callback_query_id:
            query_id = update.callback_query_id
            doors.lanes.submit(f"telegram-answer:{query_id}", lambda: answer(query_id))
        if update.reply_chat_id is None:
            return
        chat_id = update.reply_chat_id
        if await doors.dedupe.claim(f"telegram-notice:{chat_id}", NOTICE_TTL_SECONDS):

            async def notice() -> None:
                try:
                    await door.api.send_message(telegram.text_message(chat_id, ONLY_TEXT))
                except PlatformError:
                    doors.log.info("telegram: notice not sent", extra={"event": "telegram_notice"})

            doors.lanes.submit(f"telegram-notice:{chat_id}", notice)
