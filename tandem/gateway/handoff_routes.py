"""The visitor's side of a handoff: ``GET /api/v1/handoff`` (polled by the widget) and ``POST /api/v1/handoff/cancel``.

The poll is cheap on purpose (two indexed queries, no tracker read): the widget calls it every two
seconds while an agent is expected or talking, and gets the handoff's state and the agents'
messages after its cursor. The conversation comes from the signed session, as for every chat route.
"""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from tandem.gateway import schemas
from tandem.gateway.desk import Desk
from tandem.gateway.errors import GatewayError
from tandem.gateway.messages import bot_message, handoff_message, offered_payloads
from tandem.gateway.requests import check_origin, client_address, require_session
from tandem.gateway.schemas import API


class HandoffStateOut(BaseModel):
    state: str = Field(description="none | pending (waiting for an agent) | agent_joined | ended")
    ticket_id: int | None
    agent_name: str | None = Field(description="The agent's display name once one has joined.")


class HandoffPollOut(BaseModel):
    handoff: HandoffStateOut
    messages: list[schemas.Message] = Field(
        description="Agents' messages after the cursor (custom.agent_name names them)."
    )
    cursor: int = Field(description="Pass it as ?after= on the next poll.")


def install_handoff_routes(app: FastAPI, desk: Desk) -> None:
    state = desk.state

    @app.get(
        f"{API}/handoff",
        tags=["chat"],
        summary="The conversation's handoff: its state and the agents' messages after a cursor (cheap to poll).",
        response_model=HandoffPollOut,
        responses={k: v for k, v in schemas.ERRORS.items() if k in (401, 429, 503)},
    )
    async def poll(request: Request, after: int = Query(default=0, ge=0, le=2**62)) -> JSONResponse:
        await state.limits.check("address", client_address(request))
        session = await require_session(request, state)
        view = await desk.customer_view(session.conversation_id, after=after)
        return JSONResponse(
            {
                "handoff": {"state": view.state, "ticket_id": view.ticket_id, "agent_name": view.agent_name},
                "messages": [handoff_message(m) for m in view.messages],
                "cursor": view.cursor,
            }
        )

    @app.post(
        f"{API}/handoff/cancel",
        tags=["chat"],
        summary="Stop waiting for an agent: the bot has the conversation again (its replies).",
        response_model=schemas.TurnOut,
        responses={k: v for k, v in schemas.ERRORS.items() if k in (401, 403, 429, 503)},
    )
    async def cancel(request: Request) -> JSONResponse:
        check_origin(request, state)
        await state.limits.check("address", client_address(request))
        session = await require_session(request, state)
        replies = await desk.cancel_by_customer(session.conversation_id)
        if replies is None:
            raise GatewayError(409, "not_waiting", "You're not waiting for an agent.")
        turn_id = uuid.uuid4().hex
        messages = [bot_message(r, message_id=f"{turn_id}-{i}") for i, r in enumerate(replies)]
        await state.remember(session.conversation_id, offered_payloads(messages))
        return JSONResponse({"turn_id": turn_id, "messages": messages})
