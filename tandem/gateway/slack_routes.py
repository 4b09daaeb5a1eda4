"""The Slack door: ``POST /channels/slack/events`` and ``POST /channels/slack/interactivity``.

Verify first, on the raw bytes (v0 HMAC signature, 5-minute window, constant time: 401 and nothing
else otherwise), parse second, then claim the event's key (a retry of any reason, or an
@-mention's ``message`` twin, is acknowledged and not run again), answer 200 at once (Slack wants
an answer within 3 s) and run the turn in the conversation's lane. A click is accepted only when
its message's first click and a payload the bot offered in that conversation; its buttons are then
replaced by the choice. Conversation ids are keyed hashes of team, channel and user.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tandem.gateway.channels import slack
from tandem.gateway.channels.conversation_ids import slack_conversation_id
from tandem.gateway.channels.outbound import PlatformError
from tandem.gateway.doors import (
    DEDUPE_TTL_SECONDS,
    PLATFORM_MAX_BODY_BYTES,
    Doors,
    SlackDoor,
    platform_turn,
    slack_post,
)
from tandem.gateway.errors import GatewayError
from tandem.gateway.requests import read_raw_body
from tandem.gateway.state import GatewayState


def _ok() -> Response:
    return Response(status_code=200)


async def _verified(request: Request, door: SlackDoor, state: GatewayState) -> bytes:
    raw = await read_raw_body(request, PLATFORM_MAX_BODY_BYTES)
    secret = door.settings.slack_signing_secret.get_secret_value() if door.settings.slack_signing_secret else ""
    if not slack.verify_signature(
        signing_secret=secret,
        timestamp=request.headers.get("x-slack-request-timestamp"),
        signature=request.headers.get("x-slack-signature"),
        body=raw,
        now=time.time(),
    ):
        state.metrics.rejections.labels("slack_signature").inc()
        raise GatewayError(401, "invalid_signature", "The request is not signed by Slack.")
    return raw


def install_slack_routes(app: FastAPI, state: GatewayState, doors: Doors) -> None:
    """The Slack routes (only when Slack is configured)."""
    door = doors.slack
    if door is None:
        return

    def conversation_of(team: str, channel: str, user: str) -> str:
        return slack_conversation_id(doors.id_secret, team=team, channel=channel, user=user)

    async def run_turn(*, team: str, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """One customer turn, in the conversation's lane; the replies go where the message was."""

        async def send(messages: list[dict[str, Any]]) -> set[str]:
            return await slack_post(door, messages, channel=channel, thread_ts=thread_ts)

        await platform_turn(
            state,
            doors,
            channel="slack",
            conversation_id=conversation_of(team, channel, user),
            client=f"slack:{team}:{user}",
            text=text,
            send=send,
            address={"channel": channel, "thread_ts": thread_ts},
        )

    def submit(conversation: str, job: Callable[[], Awaitable[None]]) -> None:
        if not doors.lanes.submit(conversation, job):
            state.metrics.rejections.labels("slack_lane_full").inc()

    @app.post("/channels/slack/events", tags=["channels"], summary="Slack Events API (signed).")
    async def slack_events(request: Request) -> Response:
        raw = await _verified(request, door, state)
        event = slack.parse_event(
            raw,
            bot_user_id=door.settings.slack_bot_user_id,
            retry_num=request.headers.get("x-slack-retry-num"),
            retry_reason=request.headers.get("x-slack-retry-reason"),
        )
        if isinstance(event, slack.Challenge):
            return JSONResponse({"challenge": event.value})
        if isinstance(event, slack.Ignored):
            state.metrics.rejections.labels(f"slack_ignored_{event.reason}"[:60]).inc()
            return _ok()
        if not await doors.dedupe.claim(event.dedupe_key, DEDUPE_TTL_SECONDS):
            state.metrics.rejections.labels("slack_duplicate").inc()
            return _ok()
        inbound = event
        submit(
            conversation_of(inbound.team, inbound.channel, inbound.user),
            lambda: run_turn(
                team=inbound.team,
                channel=inbound.channel,
                user=inbound.user,
                thread_ts=inbound.reply_thread_ts,
                text=inbound.text,
            ),
        )
        return _ok()

    @app.post("/channels/slack/interactivity", tags=["channels"], summary="Slack button clicks (signed).")
    async def slack_interactivity(request: Request) -> Response:
        raw = await _verified(request, door, state)
        click = slack.parse_interactivity(raw)
        if isinstance(click, slack.Ignored):
            return _ok()
        conversation = conversation_of(click.team, click.channel, click.user)
        chosen = click

        async def turn() -> None:
            # In the lane: the turn that offered these buttons has stored its offers by now.
            if chosen.value not in await state.offered(conversation):
                state.metrics.rejections.labels("payload_not_offered").inc()
                return
            if not await doors.dedupe.claim(chosen.dedupe_key, DEDUPE_TTL_SECONDS):
                return  # a second click on the same message, or a retry
            try:
                await door.api.update(
                    slack.chosen_update(
                        channel=chosen.channel,
                        ts=chosen.message_ts,
                        title=chosen.title or chosen.value,
                        blocks=chosen.message_blocks,
                    )
                )
            except PlatformError:
                doors.log.warning("slack: the clicked message could not be updated", extra={"event": "slack_update"})
            await run_turn(
                team=chosen.team,
                channel=chosen.channel,
                user=chosen.user,
                thread_ts=chosen.thread_ts,
                text=chosen.value,
            )

        submit(conversation, turn)
        return _ok()
