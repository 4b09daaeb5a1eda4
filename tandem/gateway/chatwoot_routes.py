"""Chatwoot's webhook: ``POST /channels/chatwoot/webhook/<CHATWOOT_WEBHOOK_SECRET>``.

Installed only with the Chatwoot adapter (``HELPDESK=chatwoot``, all CHATWOOT_* set). The order of
checks:

1. The path's last segment equals ``CHATWOOT_WEBHOOK_SECRET`` (``hmac.compare_digest``); otherwise
   404 in the gateway's error shape, the same answer as a route that does not exist (any method).
2. The raw body, at most 256 KiB (413), is a JSON object (400 otherwise).
3. :func:`parse_webhook` keeps two kinds of event, everything else is 200 and nothing:
   ``message_created`` that is a human agent's public reply in ``CHATWOOT_INBOX_ID`` (``outgoing``,
   ``private`` false, ``sender.type`` ``user``, text content) and ``conversation_status_changed`` to
   ``resolved`` in that inbox. Private notes, the customer's messages (which the adapter posted as
   ``incoming``), activity and template messages, agent bots, other inboxes and accounts are dropped.
4. What the adapter itself posted (or resolved) is dropped: its own echo.
5. The delivery's key is claimed in the :class:`DedupeStore` (Chatwoot redelivers, and an account
   webhook and the inbox's webhook can both deliver one message): a repeat is 200 and nothing.
6. :class:`~tandem.gateway.helpdesk.port.DeskInbound` is called (``agent_message_from_desk`` /
   ``resolved_by_desk``). A failure there is logged and answered 200: the claim is taken (at most once).

Drops are counted in the rejections metric (``chatwoot_<reason>``); logs carry ids and outcomes,
never a message's content or a name.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response

from tandem.gateway.channels.dedupe import DedupeStore
from tandem.gateway.doors import DEDUPE_TTL_SECONDS, PLATFORM_MAX_BODY_BYTES
from tandem.gateway.errors import GatewayError, store_unavailable
from tandem.gateway.helpdesk.chatwoot import ChatwootDesk, as_mapping, chatwoot_id
from tandem.gateway.helpdesk.port import DeskInbound
from tandem.gateway.requests import read_raw_body
from tandem.gateway.state import GatewayState
from tandem.gateway.validation import decode_json_body
from tandem.settings.desk import ChatwootSettings

__all__ = [
    "MAX_AGENT_NAME_CHARS",
    "WEBHOOK_PATH",
    "AgentReply",
    "DeskResolved",
    "Ignored",
    "install_chatwoot_routes",
    "parse_webhook",
]

WEBHOOK_PATH = "/channels/chatwoot/webhook/{secret}"
MAX_AGENT_NAME_CHARS = 64
DEFAULT_AGENT_NAME = "Support"
# Every method answers on the path, so that a GET cannot tell "405 here" from "404 nowhere".
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@dataclass(frozen=True)
class AgentReply:
    """A human agent's public reply in a conversation of our inbox."""

    message_id: int
    conversation_id: int
    agent_name: str
    text: str

    @property
    def dedupe_key(self) -> str:
        return f"chatwoot:message_created:{self.message_id}:"


@dataclass(frozen=True)
class DeskResolved:
    """A conversation of our inbox was resolved in Chatwoot."""

    conversation_id: int
    agent_name: str | None

    @property
    def dedupe_key(self) -> str:
        return f"chatwoot:conversation_status_changed:{self.conversation_id}:resolved"


@dataclass(frozen=True)
class Ignored:
    reason: str


def _name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    name = " ".join(value.split())[:MAX_AGENT_NAME_CHARS].strip()
    return name or None


def _foreign_account(value: Any, account_id: int) -> bool:
    """An account id that is present and not ours (inbox ids are unique across accounts anyway)."""
    return value is not None and chatwoot_id(value) != account_id


def _message_created(data: Mapping[str, Any], *, account_id: int, inbox_id: int) -> AgentReply | Ignored:
    conversation = as_mapping(data.get("conversation"))
    inbox = chatwoot_id(as_mapping(data.get("inbox")).get("id"))
    if inbox is None:
        inbox = chatwoot_id(conversation.get("inbox_id"))
    if inbox != inbox_id:
        return Ignored("inbox")
    if _foreign_account(as_mapping(data.get("account")).get("id"), account_id):
        return Ignored("account")
    message_type = data.get("message_type")
    if message_type != "outgoing" and not (message_type == 1 and not isinstance(message_type, bool)):
        return Ignored("message_type")  # incoming (the customer's, posted by us), activity, template
    if data.get("private") is not False:
        return Ignored("private")  # a private note (or a payload that does not say: never shown)
    sender = as_mapping(data.get("sender"))
    if sender.get("type") != "user":
        return Ignored("sender")  # agent_bot, contact, automation
    if data.get("content_type") not in (None, "text"):
        return Ignored("content_type")
    content = data.get("content")
    if not isinstance(content, str) or not content.strip():
        return Ignored("empty")  # an attachment alone, or nothing
    message_id = chatwoot_id(data.get("id"))
    conversation_id = chatwoot_id(conversation.get("id"))
    if message_id is None or conversation_id is None:
        return Ignored("no_id")
    return AgentReply(
        message_id=message_id,
        conversation_id=conversation_id,
        agent_name=_name(sender.get("name")) or DEFAULT_AGENT_NAME,
        text=content.strip(),
    )


def _status_changed(data: Mapping[str, Any], *, account_id: int, inbox_id: int) -> DeskResolved | Ignored:
    if chatwoot_id(data.get("inbox_id")) != inbox_id:
        return Ignored("inbox")
    if _foreign_account(data.get("account_id"), account_id):
        return Ignored("account")
    if data.get("status") != "resolved":
        return Ignored("status")
    conversation_id = chatwoot_id(data.get("id"))
    if conversation_id is None:
        return Ignored("no_id")
    assignee = as_mapping(as_mapping(data.get("meta")).get("assignee"))
    return DeskResolved(conversation_id=conversation_id, agent_name=_name(assignee.get("name")))


def parse_webhook(data: Mapping[str, Any], *, account_id: int, inbox_id: int) -> AgentReply | DeskResolved | Ignored:
    """What a delivery asks of the desk, or why it asks nothing."""
    event = data.get("event")
    if event == "message_created":
        return _message_created(data, account_id=account_id, inbox_id=inbox_id)
    if event == "conversation_status_changed":
        return _status_changed(data, account_id=account_id, inbox_id=inbox_id)
    return Ignored("event")


def _not_found(reason: str) -> GatewayError:
    # The body of Starlette's 404 in the gateway's shape: nothing says the route exists.
    return GatewayError(404, "not_found", "Not found.", reason=reason)


async def _json_object(request: Request) -> Mapping[str, Any]:
    raw = await read_raw_body(request, PLATFORM_MAX_BODY_BYTES)
    try:
        data = decode_json_body(raw)
    except GatewayError as error:
        raise GatewayError(400, error.code, error.message, reason="chatwoot_bad_json") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "invalid_shape", "Send a JSON object.", reason="chatwoot_bad_json")
    return data


def install_chatwoot_routes(
    app: FastAPI,
    state: GatewayState,
    desk: DeskInbound,
    chatwoot: ChatwootDesk | None,
    settings: ChatwootSettings,
    dedupe: DedupeStore,
) -> None:
    """The webhook route (only with the Chatwoot adapter and a complete configuration)."""
    if chatwoot is None or not settings.configured or settings.chatwoot_webhook_secret is None:
        return
    expected = settings.chatwoot_webhook_secret.get_secret_value().encode("ascii")
    account_id, inbox_id = chatwoot.account_id, chatwoot.inbox_id

    def drop(reason: str) -> Response:
        state.metrics.rejections.labels(f"chatwoot_{reason}"[:60]).inc()
        return Response(status_code=200)

    async def agent_reply(reply: AgentReply) -> Response:
        if await chatwoot.posted_by_us(reply.message_id):
            return drop("own_echo")
        if not await claim(reply.dedupe_key):
            return drop("duplicate")
        try:
            taken = await desk.agent_message_from_desk(
                desk_ref=str(reply.conversation_id),
                agent_name=reply.agent_name,
                text=reply.text,
                external_id=f"chatwoot:{reply.message_id}",
            )
        except Exception as exc:  # logged and answered: a redelivery would be a duplicate now
            return failed("agent_message", reply.conversation_id, exc)
        state.log.info(
            "chatwoot: an agent's reply",
            extra={
                "event": "chatwoot_webhook",
                "kind": "agent_message",
                "desk_ref": str(reply.conversation_id),
                "message_id": reply.message_id,
                "taken": taken,
                "chars": len(reply.text),
            },
        )
        return Response(status_code=200) if taken else drop("not_taken")

    async def resolved(event: DeskResolved) -> Response:
        if await chatwoot.resolved_by_us(event.conversation_id):
            return drop("own_resolve")
        if not await claim(event.dedupe_key):
            return drop("duplicate")
        try:
            taken = await desk.resolved_by_desk(desk_ref=str(event.conversation_id), agent_name=event.agent_name)
        except Exception as exc:
            return failed("resolved", event.conversation_id, exc)
        state.log.info(
            "chatwoot: a conversation resolved",
            extra={
                "event": "chatwoot_webhook",
                "kind": "resolved",
                "desk_ref": str(event.conversation_id),
                "taken": taken,
            },
        )
        return Response(status_code=200) if taken else drop("not_taken")

    async def claim(key: str) -> bool:
        try:
            return await dedupe.claim(key, DEDUPE_TTL_SECONDS)
        except Exception as exc:  # Redis errors of any kind: 503, and Chatwoot delivers again later
            raise store_unavailable("chatwoot_dedupe") from exc

    def failed(kind: str, conversation_id: int, exc: Exception) -> Response:
        state.log.warning(
            "chatwoot: the desk failed on a webhook",
            extra={
                "event": "chatwoot_desk_failed",
                "kind": kind,
                "desk_ref": str(conversation_id),
                "error": type(exc).__name__,
            },
        )
        return drop("desk_failed")

    @app.api_route(WEBHOOK_PATH, methods=_METHODS, include_in_schema=False)
    async def chatwoot_webhook(request: Request, secret: str) -> Response:
        given = secret.encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            raise _not_found("chatwoot_secret")
        if request.method != "POST":
            raise _not_found("not_found")
        data = await _json_object(request)
        event = parse_webhook(data, account_id=account_id, inbox_id=inbox_id)
        if isinstance(event, Ignored):
            return drop(f"ignored_{event.reason}")
        if isinstance(event, AgentReply):
            return await agent_reply(event)
        return await resolved(event)
