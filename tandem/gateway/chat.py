"""The visitor's routes: get or end a session, send a message (one turn through Rasa), read the history.

The conversation id is derived from the signed session on the server and never leaves it; the turn id
is random and is the correlation id (header, Rasa's metadata, logs).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from tandem.gateway import schemas
from tandem.gateway.errors import GatewayError, UpstreamError
from tandem.gateway.messages import bot_message, history_from_tracker, merge_by_time, offered_payloads
from tandem.gateway.replay import claim_or_replay, forget_turn, fp, record_turn
from tandem.gateway.requests import check_origin, client_address, iso, presented_session, read_body, require_session
from tandem.gateway.schemas import API
from tandem.gateway.sessions import COOKIE_NAME
from tandem.gateway.state import GatewayState
from tandem.gateway.turns import TurnRecord
from tandem.gateway.validation import decode_json_body, parse_message


def install_chat_routes(app: FastAPI, state: GatewayState) -> None:
    """``POST``/``DELETE /api/v1/session``, ``POST /api/v1/messages`` and ``GET /api/v1/history``."""
    settings = state.settings
    # The session cookie's attributes, the same when it is set and when it is deleted (a browser
    # deletes only a cookie whose path and attributes match).
    cookie: dict[str, Any] = {
        "path": API,
        "httponly": True,
        "secure": settings.gateway_cookie_secure,
        "samesite": settings.gateway_cookie_samesite,
    }

    @app.post(
        f"{API}/session",
        tags=["chat"],
        summary="Get a visitor session (kept if valid, unless new=true).",
        response_model=schemas.SessionOut,
        responses=schemas.ERRORS,
        openapi_extra=schemas.request_body(schemas.SessionIn, required=False),
    )
    async def create_session(request: Request) -> JSONResponse:
        raw = await read_body(request, settings.gateway_max_body_bytes)
        # Outside the try: a body that is not JSON is invalid_json, like on every endpoint.
        decoded = decode_json_body(raw) if raw.strip() else {}
        try:
            options = schemas.SessionIn.model_validate(decoded)
        except ValueError:
            raise GatewayError(400, "invalid_shape", 'Send {"new": true|false, "mode": "cookie"|"bearer"}.') from None
        # An expired, revoked or foreign session simply gets replaced: that is what this call is for.
        existing = await presented_session(request, state)
        if existing is not None and not options.new:
            return JSONResponse({"created": False, "expires_at": iso(existing.expires_at), "token": None})
        if options.mode == "cookie":
            check_origin(request, state)
        await state.limits.check("new_session", client_address(request))
        if existing is not None:
            # "New conversation": the old token must not keep working for the rest of its 7 days.
            await state.revoke(existing)
        token, session = state.codec.issue()
        state.metrics.sessions.inc()
        body = {
            "created": True,
            "expires_at": iso(session.expires_at),
            "token": token if options.mode == "bearer" else None,
        }
        response = JSONResponse(body)
        if options.mode == "cookie":
            response.set_cookie(COOKIE_NAME, token, max_age=settings.gateway_session_ttl_seconds, **cookie)
        return response

    @app.delete(
        f"{API}/session",
        tags=["chat"],
        summary="End the session: its token (cookie or bearer) is revoked and the cookie forgotten.",
        status_code=204,
        responses={k: v for k, v in schemas.ERRORS.items() if k in (403, 429, 503)},
    )
    async def delete_session(request: Request) -> Response:
        check_origin(request, state)
        await state.limits.check("address", client_address(request))
        session = await presented_session(request, state)  # forged, expired or revoked: still 204
        if session is not None:
            await state.revoke(session)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE_NAME, **cookie)
        return response

    @app.post(
        f"{API}/messages",
        tags=["chat"],
        summary="Send one message (typed text or an offered button's payload); the bot's replies.",
        response_model=schemas.TurnOut,
        responses=schemas.ERRORS,
        openapi_extra=schemas.request_body(schemas.TextIn, schemas.PayloadIn),
    )
    async def send_message(request: Request) -> JSONResponse:
        address = client_address(request)
        await state.limits.check("address", address)
        session = await require_session(request, state)
        await state.limits.check("session", session.session_id)
        raw = await read_body(request, settings.gateway_max_body_bytes)
        incoming = parse_message(decode_json_body(raw), max_chars=state.input.max_message_chars)
        conversation = session.conversation_id
        # The turn id is random and is the correlation id (header, Rasa's metadata, logs): the
        # conversation id never leaves the server.
        turn_id = uuid.uuid4().hex
        correlation_id = turn_id
        if incoming.client_message_id is not None:
            replayed = await claim_or_replay(state, conversation, incoming.client_message_id, incoming, turn_id)
            if replayed is not None:
                return replayed
        try:
            if incoming.kind == "payload":
                offered = await state.offered(conversation)
                if incoming.value not in offered:
                    raise GatewayError(
                        400,
                        "payload_not_offered",
                        "That option is no longer available. "
                        "Please pick one of the latest options or type your answer.",
                    )
        except GatewayError:
            await forget_turn(state, conversation, incoming)
            raise
        if state.desk is not None:
            # A person has the conversation: the message is theirs, Rasa never sees it.
            try:
                intercepted = await state.desk.intercept(conversation, text=incoming.value)
            except GatewayError:
                await forget_turn(state, conversation, incoming)
                raise
            if intercepted is not None:
                held = [bot_message(r, message_id=f"{turn_id}-{i}") for i, r in enumerate(intercepted)]
                body = {"turn_id": turn_id, "messages": held}
                await record_turn(
                    state, conversation, incoming, TurnRecord(fp(incoming), turn_id, "done", status=200, body=body)
                )
                await state.remember(conversation, offered_payloads(held))
                return JSONResponse(body, headers={"X-Correlation-Id": correlation_id})
        started = time.perf_counter()
        outcome = "ok"
        error: UpstreamError | None = None
        replies: list[dict[str, Any]] = []
        try:
            replies = await state.rasa.send(
                conversation,
                incoming.value,
                correlation_id=correlation_id,
                client_key=state.codec.client_key(address),
            )
        except UpstreamError as exc:
            outcome = exc.code
            error = exc
        finally:
            state.observe_turn(
                time.perf_counter() - started,
                conversation_id=conversation,
                turn_id=turn_id,
                correlation_id=correlation_id,
                kind=incoming.kind,
                chars=len(incoming.value),
                replies=len(replies),
                outcome=outcome,
                client_message_id=incoming.client_message_id is not None,
            )
        headers = {"X-Correlation-Id": correlation_id}
        if error is not None:
            state.metrics.rejections.labels(error.reason).inc()
            state.metrics.upstream_errors.labels(error.kind).inc()
            if error.delivered:
                # Rasa may still finish this turn: a retry looks for it instead of sending it again.
                await record_turn(state, conversation, incoming, TurnRecord(fp(incoming), turn_id, "unknown"))
            else:
                await forget_turn(state, conversation, incoming)
            return error.response(headers)
        if state.desk is not None:
            await state.desk.after_turn(conversation, channel="website", address=None, replies=replies)
        messages = [bot_message(r, message_id=f"{turn_id}-{i}") for i, r in enumerate(replies)]
        body = {"turn_id": turn_id, "messages": messages}
        done = TurnRecord(fp(incoming), turn_id, "done", status=200, body=body)
        await record_turn(state, conversation, incoming, done)
        await state.remember(conversation, offered_payloads(messages))
        return JSONResponse(body, headers=headers)

    @app.get(
        f"{API}/history",
        tags=["chat"],
        summary="The conversation so far (after a reload or in another tab).",
        response_model=schemas.HistoryOut,
        responses=schemas.ERRORS,
    )
    async def history(request: Request) -> JSONResponse:
        await state.limits.check("address", client_address(request))
        session = await require_session(request, state)
        tracker = await state.rasa.tracker(session.conversation_id)
        messages, offered = history_from_tracker(tracker)
        if state.desk is not None:
            # What the customer and the agents wrote during handoffs is not in Rasa's tracker.
            messages = merge_by_time(messages, await state.desk.history_messages(session.conversation_id))
        await state.remember(session.conversation_id, offered)
        return JSONResponse({"messages": messages})
