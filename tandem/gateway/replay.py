"""Idempotent sends: a retry with the same ``client_message_id`` never reaches the bot twice.

The records and their states live in :mod:`tandem.gateway.turns`; this module is what a send does
with them: claim the id, or replay the first send's answer, wait for it while it is in flight, or
recover the answer Rasa finished after the gateway had given up (from Rasa's tracker).
"""

from __future__ import annotations

import asyncio
import time

from fastapi.responses import JSONResponse

from tandem.gateway.errors import GatewayError, store_unavailable
from tandem.gateway.messages import bot_message, history_from_tracker, turn_from_tracker
from tandem.gateway.state import GatewayState
from tandem.gateway.turns import RASA_LOCK_SECONDS, TurnRecord, fingerprint
from tandem.gateway.validation import Incoming


def fp(incoming: Incoming) -> str:
    """The fingerprint a retry must match: the same kind and value as the first send."""
    return fingerprint(incoming.kind, incoming.value)


async def record_turn(state: GatewayState, conversation: str, incoming: Incoming, record: TurnRecord) -> None:
    """Store the outcome of a send that has a ``client_message_id`` (best effort)."""
    if incoming.client_message_id is None:
        return
    try:
        await state.turns.put(conversation, incoming.client_message_id, record)
    except Exception:  # Redis errors: the visitor still gets this answer; a retry may be sent again
        state.log.warning("turn store unavailable", extra={"event": "turn_store_unavailable"})


async def forget_turn(state: GatewayState, conversation: str, incoming: Incoming) -> None:
    """Give the id up: the turn never reached Rasa, so a retry must send it (best effort)."""
    if incoming.client_message_id is None:
        return
    try:
        await state.turns.release(conversation, incoming.client_message_id)
    except Exception:  # Redis errors: the claim expires with its TTL
        state.log.warning("turn store unavailable", extra={"event": "turn_store_unavailable"})


def in_flight() -> GatewayError:
    """409: the first send of this id is still being answered."""
    return GatewayError(
        409,
        "duplicate_in_flight",
        "Your message is still being answered. Please wait a moment before sending it again.",
        retry_after=5,
    )


async def claim_or_replay(
    state: GatewayState, conversation: str, cmid: str, incoming: Incoming, turn_id: str
) -> JSONResponse | None:
    """None when this request owns the turn; else the answer to replay (or a 409)."""
    mine = TurnRecord(fp(incoming), turn_id, "pending")
    deadline = time.monotonic() + state.settings.rasa_timeout_seconds + 1.0
    while True:
        try:
            record = await state.turns.claim(conversation, cmid, mine)
            if record is None:
                return None  # a new id: this request sends the turn
            # In flight: wait (bounded by the turn timeout) for the first attempt's outcome.
            while (
                record is not None
                and record.state == "pending"
                and record.fingerprint == mine.fingerprint
                and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.05)
                record = await state.turns.get(conversation, cmid)
        except Exception as exc:  # Redis errors of any kind: fail closed before reaching Rasa
            raise store_unavailable("turn_store") from exc
        if record is None:
            continue  # the first attempt gave the id up (Rasa unreachable): claim it again
        if record.fingerprint != mine.fingerprint:
            raise GatewayError(
                409,
                "client_message_id_reused",
                "This message id was already used for another message. Send a new id with each message.",
            )
        state.log.info(
            "turn replayed",
            extra={"event": "turn_replayed", "correlation_id": record.turn_id, "state": record.state},
        )
        if record.state == "done" and record.body is not None:
            headers = {"X-Correlation-Id": record.turn_id}
            return JSONResponse(record.body, status_code=record.status or 200, headers=headers)
        if record.state == "unknown":
            return await _recover(state, conversation, cmid, record, mine)
        raise in_flight()  # still pending after the wait


async def _recover(
    state: GatewayState, conversation: str, cmid: str, record: TurnRecord, mine: TurnRecord
) -> JSONResponse | None:
    """The gateway gave up on this turn: Rasa's tracker says whether (and how) Rasa answered it."""
    tracker = await state.rasa.tracker(conversation)
    replies = turn_from_tracker(tracker, record.turn_id)
    if replies is None:
        if time.time() - record.created_at < RASA_LOCK_SECONDS + state.settings.rasa_timeout_seconds:
            raise in_flight()  # Rasa may still be working on it (or waiting for its lock)
        try:
            await state.turns.put(conversation, cmid, mine)  # Rasa never got it: this send goes through
        except Exception as exc:
            raise store_unavailable("turn_store") from exc
        return None
    messages = [bot_message(r, message_id=f"{record.turn_id}-{i}") for i, r in enumerate(replies)]
    body = {"turn_id": record.turn_id, "messages": messages}
    done = TurnRecord(record.fingerprint, record.turn_id, "done", record.created_at, status=200, body=body)
    try:
        await state.turns.put(conversation, cmid, done)
    except Exception:
        state.log.warning("turn store unavailable", extra={"event": "turn_store_unavailable"})
    _, offered = history_from_tracker(tracker)
    await state.remember(conversation, offered)
    return JSONResponse(body, headers={"X-Correlation-Id": record.turn_id})
