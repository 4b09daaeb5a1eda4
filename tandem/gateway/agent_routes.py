"""The agent console's API, ``/agent/api/...`` (docs/handoff.md): login, the queue, claim, reply, resolve, approvals.

Authentication is separate from the visitors' in every way: its own cookie (``tandem_agent``,
HttpOnly, ``SameSite=Strict``, path ``/agent/``), a random token of which the database keeps only
the SHA-256 (:mod:`tandem.services.agents`), so a visitor's signed session token is never an agent
session. State-changing calls need ``X-CSRF-Token``: an HMAC of the session token under a key
derived from ``GATEWAY_SECRET``, compared in constant time (403 ``csrf_failed``). Logins are
limited per client address and per e-mail (429 with ``Retry-After``); a wrong password and an
unknown e-mail get the same answer.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from tandem.gateway import agent_schemas as schemas
from tandem.gateway.agent_schemas import AGENT_API, AGENT_ERRORS
from tandem.gateway.desk import Desk
from tandem.gateway.errors import GatewayError
from tandem.gateway.requests import client_address, read_body
from tandem.gateway.validation import decode_json_body
from tandem.services import agents, approvals, handoff_views
from tandem.services.agents import AgentView
from tandem.services.handoff import Actor
from tandem.settings import HandoffSettings

AGENT_COOKIE = "tandem_agent"
CSRF_HEADER = "X-CSRF-Token"
MAX_BODY_BYTES = 16 * 1024


def _not_authenticated() -> GatewayError:
    return GatewayError(401, "not_authenticated", "Please log in to the agent console.")


class ConsoleAuth:
    """Sessions and CSRF tokens of the console (see the module docstring)."""

    def __init__(self, desk: Desk, csrf_key: bytes, settings: HandoffSettings) -> None:
        self.desk = desk
        self._csrf_key = csrf_key
        self.settings = settings

    def csrf_token(self, session_token: str) -> str:
        return hmac.new(self._csrf_key, b"agent-csrf:" + session_token.encode("utf-8"), hashlib.sha256).hexdigest()

    async def agent(self, request: Request, *, csrf: bool) -> tuple[AgentView, str]:
        """The request's agent and session token; 401 without a valid session, 403 without the CSRF token."""
        token = request.cookies.get(AGENT_COOKIE, "")
        if not token or len(token) > 200 or not token.isascii():
            raise _not_authenticated()
        now = self.desk.clock()
        agent = await self.desk.tx(lambda s: agents.session_agent(s, token=token, now=now))
        if agent is None:
            raise _not_authenticated()
        if csrf:
            presented = request.headers.get(CSRF_HEADER, "")
            if not presented or not hmac.compare_digest(presented.encode("utf-8"), self.csrf_token(token).encode()):
                raise GatewayError(
                    403, "csrf_failed", "The console's security token is missing or wrong; reload the page."
                )
        return agent, token


def _actor(agent: AgentView) -> Actor:
    return Actor("agent", agent_id=agent.id, name=agent.display_name, role=agent.role)


async def _body(request: Request, model: type[BaseModel], *, optional: bool = False) -> Any:
    if optional and not request.headers.get("content-type") and request.headers.get("content-length", "0") == "0":
        return model()  # no body at all: the defaults
    raw = await read_body(request, MAX_BODY_BYTES)
    if optional and not raw.strip():
        return model()
    try:
        return model.model_validate(decode_json_body(raw))
    except ValidationError:
        raise GatewayError(400, "invalid_shape", "The request body does not have the documented shape.") from None


def install_agent_routes(app: FastAPI, desk: Desk, *, csrf_key: bytes, settings: HandoffSettings) -> None:
    """The console's JSON API under ``/agent/api``."""
    state = desk.state
    auth = ConsoleAuth(desk, csrf_key, settings)
    cookie: dict[str, Any] = {
        "path": "/agent/",
        "httponly": True,
        "secure": state.settings.gateway_cookie_secure,
        "samesite": "strict",
    }
    tags: list[str | Enum] = ["agent console"]

    def login_body(agent: AgentView, token: str) -> dict[str, Any]:
        return {"csrf_token": auth.csrf_token(token), "agent": agent.as_json()}

    @app.post(
        f"{AGENT_API}/login",
        tags=tags,
        summary="Log in: sets the tandem_agent cookie, returns the CSRF token.",
        response_model=schemas.LoginOut,
        responses=AGENT_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": schemas.LoginIn.model_json_schema()}},
            }
        },
    )
    async def login(request: Request) -> JSONResponse:
        body: schemas.LoginIn = await _body(request, schemas.LoginIn)
        email = body.email.strip().lower()
        try:
            await state.limits.check("agent_login", client_address(request))
            await state.limits.check("agent_login", "email:" + hashlib.sha256(email.encode()).hexdigest()[:32])
        except GatewayError as refused:
            if refused.status != 429:
                raise
            raise GatewayError(
                429,
                "rate_limited",
                f"Too many login attempts. Please wait {refused.retry_after} seconds and try again.",
                retry_after=refused.retry_after,
                reason="rate_limited_agent_login",
            ) from None
        agent = await desk.tx(lambda s: agents.authenticate(s, email=email, password=body.password))
        if agent is None:
            state.log.info("agent login refused", extra={"event": "agent_login_refused"})
            raise GatewayError(401, "invalid_credentials", "Wrong e-mail or password.")
        now = desk.clock()
        token = await desk.tx(
            lambda s: agents.start_session(
                s, agent_id=agent.id, now=now, ttl_seconds=settings.agent_session_ttl_seconds
            )
        )
        state.log.info("agent logged in", extra={"event": "agent_login", "agent_id": agent.id})
        response = JSONResponse(login_body(agent, token))
        response.set_cookie(AGENT_COOKIE, token, max_age=settings.agent_session_ttl_seconds, **cookie)
        return response

    @app.get(
        f"{AGENT_API}/me",
        tags=tags,
        summary="The logged-in agent and the CSRF token.",
        response_model=schemas.LoginOut,
        responses=AGENT_ERRORS,
    )
    async def me(request: Request) -> JSONResponse:
        agent, token = await auth.agent(request, csrf=False)
        return JSONResponse(login_body(agent, token))

    @app.post(
        f"{AGENT_API}/logout",
        tags=tags,
        summary="Log out: the session is revoked.",
        status_code=204,
        responses=AGENT_ERRORS,
    )
    async def logout(request: Request) -> Response:
        _, token = await auth.agent(request, csrf=True)
        now = desk.clock()
        await desk.tx(lambda s: agents.end_session(s, token=token, now=now))
        response = Response(status_code=204)
        response.delete_cookie(AGENT_COOKIE, **cookie)
        return response

    @app.get(
        f"{AGENT_API}/handoffs",
        tags=tags,
        summary="Handoffs by status (open = queued + assigned).",
        response_model=schemas.HandoffListOut,
        responses=AGENT_ERRORS,
    )
    async def list_handoffs(request: Request, status: str = "queued", limit: int = 50) -> JSONResponse:
        await auth.agent(request, csrf=False)
        rows = await desk.tx(lambda s: handoff_views.list_handoffs(s, status=status, limit=limit))
        return JSONResponse({"handoffs": [row.as_json() for row in rows]})

    @app.get(
        f"{AGENT_API}/handoffs/{{ticket_id}}",
        tags=tags,
        summary="One handoff: transcript before and since, slots, transitions.",
        response_model=schemas.HandoffBody,
        responses=AGENT_ERRORS,
    )
    async def get_handoff(request: Request, ticket_id: int) -> JSONResponse:
        await auth.agent(request, csrf=False)
        return JSONResponse({"handoff": (await desk.detail(ticket_id)).as_json()})

    def action(path: str, summary: str, model: type[BaseModel], status_code: int = 200) -> Callable[..., Any]:
        return app.post(
            f"{AGENT_API}/{path}",
            tags=tags,
            summary=summary,
            response_model=model,
            responses=AGENT_ERRORS,
            status_code=status_code,
        )

    @action("handoffs/{ticket_id}/claim", "Take a queued handoff.", schemas.HandoffBody)
    async def claim(request: Request, ticket_id: int) -> JSONResponse:
        agent, _ = await auth.agent(request, csrf=True)
        return JSONResponse({"handoff": (await desk.claim(_actor(agent), ticket_id)).as_json()})

    @action("handoffs/{ticket_id}/messages", "Reply to the customer, on their channel.", schemas.MessageOut, 201)
    async def reply(request: Request, ticket_id: int) -> JSONResponse:
        agent, _ = await auth.agent(request, csrf=True)
        body: schemas.TextIn = await _body(request, schemas.TextIn)
        message, delivered = await desk.reply(_actor(agent), ticket_id, body.text)
        return JSONResponse({"message": message, "delivered": delivered}, status_code=201)

    @action("handoffs/{ticket_id}/resolve", "Hand the conversation back to the bot.", schemas.ResolvedOut)
    async def resolve(request: Request, ticket_id: int) -> JSONResponse:
        agent, _ = await auth.agent(request, csrf=True)
        body: schemas.ResolveIn = await _body(request, schemas.ResolveIn, optional=True)
        detail, sent = await desk.resolve(_actor(agent), ticket_id, note=body.note, outcome=body.outcome)
        return JSONResponse({"handoff": detail.as_json(), "bot_messages": sent})

    @action("handoffs/{ticket_id}/close", "End the handoff without the hand-back message.", schemas.HandoffBody)
    async def close(request: Request, ticket_id: int) -> JSONResponse:
        agent, _ = await auth.agent(request, csrf=True)
        body: schemas.CloseIn = await _body(request, schemas.CloseIn, optional=True)
        return JSONResponse({"handoff": (await desk.close(_actor(agent), ticket_id, note=body.note)).as_json()})

    @app.get(
        f"{AGENT_API}/approvals",
        tags=tags,
        summary="Refund approvals by status.",
        response_model=schemas.ApprovalListOut,
        responses=AGENT_ERRORS,
    )
    async def list_approvals(request: Request, status: str = "queued", limit: int = 50) -> JSONResponse:
        await auth.agent(request, csrf=False)
        rows = await desk.tx(lambda s: approvals.list_approvals(s, status=status, limit=limit))
        return JSONResponse({"approvals": [row.as_json() for row in rows]})

    def decision(approve: bool) -> Callable[[Request, int], Awaitable[JSONResponse]]:
        async def decide(request: Request, approval_id: int) -> JSONResponse:
            agent, _ = await auth.agent(request, csrf=True)
            row, notified = await desk.decide(_actor(agent), approval_id, approve=approve)
            return JSONResponse({"approval": row.as_json(), "notified": notified})

        return decide

    action(
        "approvals/{approval_id}/approve",
        "Approve: cancel with the quoted refund; the customer is told.",
        schemas.DecisionOut,
    )(decision(True))
    action(
        "approvals/{approval_id}/deny", "Deny: the booking stays confirmed; the customer is told.", schemas.DecisionOut
    )(decision(False))
