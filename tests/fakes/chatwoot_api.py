"""A fake Chatwoot application API (the calls the adapter makes), over real HTTP.

Like Chatwoot it wants the header ``api_access_token`` (missing: 401 ``{"errors": ["You need to sign
in or sign up before continuing."]}``; wrong: 401 ``{"error": "Invalid Access Token"}``); an
account other than ``account_id`` and an unknown inbox, contact or conversation are 404; bodies are
checked like Chatwoot's models check them: a contact's ``identifier`` is unique in the account (422
``Identifier has already been taken``), a conversation needs the ``source_id`` of a contact inbox of
its inbox (and of its ``contact_id``), ``status`` is open | pending | resolved | snoozed, a message's
``message_type`` on create is incoming | outgoing, ``private`` a boolean, ``content`` a string of at
most 150,000 characters, ``content_type`` one of Chatwoot's. An ``incoming`` public message
reopens a resolved conversation, as in Chatwoot. Conversation ids are per-account display ids;
message ids are global. Message responses carry ``message_type`` as an integer (0 incoming,
1 outgoing), as the REST API does.

Tests can make requests answer a given status (``fail_with``, optionally only for paths ending in
``fail_path``), or slowly (``delay``). Every request is recorded (``requests``), the accepted
objects too (``contacts``, ``conversations``, ``messages``, ``toggles``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CHATWOOT_TOKEN = "cw-fake-access-token-0001"
ACCOUNT_ID = 3
INBOX_ID = 42
MESSAGE_TYPES = {"incoming": 0, "outgoing": 1, "activity": 2, "template": 3}
CREATE_MESSAGE_TYPES = ("incoming", "outgoing")
STATUSES = ("open", "resolved", "pending", "snoozed")
CONTENT_TYPES = ("text", "input_text", "input_textarea", "input_email", "input_select", "cards", "form", "article")
MAX_CONTENT_CHARS = 150_000


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class FakeChatwoot:
    token: str = CHATWOOT_TOKEN
    account_id: int = ACCOUNT_ID
    inbox_ids: tuple[int, ...] = (INBOX_ID, 43)
    delay: float = 0.0
    fail_with: int | None = None
    fail_path: str | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    contacts: dict[int, dict[str, Any]] = field(default_factory=dict)
    contact_inboxes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by source_id
    conversations: dict[int, dict[str, Any]] = field(default_factory=dict)  # by display id
    messages: list[dict[str, Any]] = field(default_factory=list)
    toggles: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def reset(self) -> None:
        self.token, self.delay, self.fail_with, self.fail_path = CHATWOOT_TOKEN, 0.0, None, None
        for log in (self.requests, self.messages, self.toggles):
            log.clear()
        self.contacts.clear()
        self.contact_inboxes.clear()
        self.conversations.clear()

    def messages_in(self, conversation_id: int | str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["conversation_id"] == int(conversation_id)]

    # --- checks --------------------------------------------------------------------------------

    @staticmethod
    def _unprocessable(message: str, *attributes: str) -> JSONResponse:
        return JSONResponse({"message": message, "attributes": list(attributes)}, 422)

    @staticmethod
    def _not_found() -> JSONResponse:
        return JSONResponse({"error": "Resource could not be found"}, 404)

    def _auth(self, request: Request) -> JSONResponse | None:
        token = request.headers.get("api_access_token")
        if not token:
            return JSONResponse({"errors": ["You need to sign in or sign up before continuing."]}, 401)
        if token != self.token:
            return JSONResponse({"error": "Invalid Access Token"}, 401)
        return None

    def _inbox(self, inbox_id: int) -> dict[str, Any]:
        return {"id": inbox_id, "name": f"Inbox {inbox_id}", "channel_type": "Channel::Api"}

    def _contact_inbox(self, contact_id: int, inbox_id: int, source_id: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "source_id": source_id or str(uuid.uuid4()),
            "contact_id": contact_id,
            "inbox_id": inbox_id,
            "inbox": self._inbox(inbox_id),
        }
        self.contact_inboxes[entry["source_id"]] = entry
        return entry

    def _contact_view(self, contact: dict[str, Any]) -> dict[str, Any]:
        inboxes = [
            {"source_id": e["source_id"], "inbox": e["inbox"]}
            for e in self.contact_inboxes.values()
            if e["contact_id"] == contact["id"]
        ]
        return {**contact, "contact_inboxes": inboxes}

    # --- endpoints -----------------------------------------------------------------------------

    def _create_contact(self, body: dict[str, Any]) -> Response:
        inbox_id = body.get("inbox_id")
        if inbox_id is not None and (not _is_int(inbox_id) or inbox_id not in self.inbox_ids):
            return self._not_found()
        name, identifier = body.get("name"), body.get("identifier")
        if name is not None and not isinstance(name, str):
            return self._unprocessable("Name is invalid", "name")
        if identifier is not None:
            if not isinstance(identifier, str):
                return self._unprocessable("Identifier is invalid", "identifier")
            if any(c.get("identifier") == identifier for c in self.contacts.values()):
                return self._unprocessable("Identifier has already been taken", "identifier")
        contact: dict[str, Any] = {"id": next(self._ids), "name": name or "", "identifier": identifier, "email": None}
        self.contacts[contact["id"]] = contact
        contact_inbox = self._contact_inbox(contact["id"], inbox_id) if inbox_id is not None else None
        payload: dict[str, Any] = {"contact": self._contact_view(contact)}
        if contact_inbox is not None:
            payload["contact_inbox"] = {"source_id": contact_inbox["source_id"], "inbox": contact_inbox["inbox"]}
        return JSONResponse({"payload": payload})

    def _search_contacts(self, q: str | None) -> Response:
        if not q:
            return self._unprocessable("Specify search string with parameter q", "q")
        needle = q.lower()
        found = [
            self._contact_view(c)
            for c in self.contacts.values()
            if needle in (c.get("name") or "").lower() or needle in (c.get("identifier") or "").lower()
        ]
        return JSONResponse({"meta": {"count": len(found), "current_page": 1}, "payload": found[:15]})

    def _create_contact_inbox(self, contact_id: int, body: dict[str, Any]) -> Response:
        if contact_id not in self.contacts:
            return self._not_found()
        inbox_id = body.get("inbox_id")
        if not _is_int(inbox_id) or inbox_id not in self.inbox_ids:
            return self._not_found()
        source_id = body.get("source_id")
        if source_id is not None and (not isinstance(source_id, str) or source_id in self.contact_inboxes):
            return self._unprocessable("Source has already been taken", "source_id")
        entry = self._contact_inbox(contact_id, inbox_id, source_id)
        return JSONResponse({"source_id": entry["source_id"], "inbox": entry["inbox"]})

    def _create_conversation(self, body: dict[str, Any]) -> Response:
        source_id, inbox_id, contact_id = body.get("source_id"), body.get("inbox_id"), body.get("contact_id")
        if not isinstance(source_id, str) or not source_id:
            return self._unprocessable("Source can't be blank", "source_id")
        if not _is_int(inbox_id) or inbox_id not in self.inbox_ids:
            return self._not_found()
        entry = self.contact_inboxes.get(source_id)
        if entry is None or entry["inbox_id"] != inbox_id:
            return self._unprocessable("Contact inbox can't be blank", "contact_inbox")
        if contact_id is not None and contact_id != entry["contact_id"]:
            return self._unprocessable("Contact is invalid", "contact_id")
        status = body.get("status", "open")
        if status not in STATUSES:
            return self._unprocessable(f"'{status}' is not a valid status", "status")
        for name in ("custom_attributes", "additional_attributes"):
            if name in body and not isinstance(body[name], dict):
                return self._unprocessable(f"{name} must be an object", name)
        display_id = len(self.conversations) + 1
        conversation = {
            "id": display_id,
            "account_id": self.account_id,
            "inbox_id": inbox_id,
            "status": status,
            "contact_id": entry["contact_id"],
            "contact_inbox": {"source_id": source_id},
            "custom_attributes": body.get("custom_attributes", {}),
            "additional_attributes": body.get("additional_attributes", {}),
            "meta": {"sender": self._contact_view(self.contacts[entry["contact_id"]]), "assignee": None},
            "messages": [],
        }
        self.conversations[display_id] = conversation
        return JSONResponse(conversation)

    def _create_message(self, conversation_id: int, body: dict[str, Any]) -> Response:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return self._not_found()
        content, message_type = body.get("content"), body.get("message_type", "outgoing")
        private, content_type = body.get("private", False), body.get("content_type", "text")
        if not isinstance(content, str) or not content:
            return self._unprocessable("Content can't be blank", "content")
        if len(content) > MAX_CONTENT_CHARS:
            return self._unprocessable("Content is too long (maximum is 150000 characters)", "content")
        if message_type not in CREATE_MESSAGE_TYPES:
            return self._unprocessable(f"'{message_type}' is not a valid message_type", "message_type")
        if not isinstance(private, bool):
            return self._unprocessable("Private is invalid", "private")
        if content_type not in CONTENT_TYPES:
            return self._unprocessable(f"'{content_type}' is not a valid content_type", "content_type")
        message = {
            "id": next(self._ids),
            "content": content,
            "account_id": self.account_id,
            "inbox_id": conversation["inbox_id"],
            "conversation_id": conversation_id,
            "message_type": MESSAGE_TYPES[message_type],
            "content_type": content_type,
            "private": private,
            "status": "sent",
            "sender_type": "Contact" if message_type == "incoming" else "User",
        }
        self.messages.append(message)
        if message_type == "incoming" and not private and conversation["status"] == "resolved":
            conversation["status"] = "open"  # Chatwoot reopens a resolved conversation on a new incoming message
        return JSONResponse(message)

    def _toggle_status(self, conversation_id: int, body: dict[str, Any]) -> Response:
        conversation = self.conversations.get(conversation_id)
        if conversation is None:
            return self._not_found()
        status = body.get("status")
        if status is None:  # Chatwoot toggles open <-> resolved without a status
            status = "resolved" if conversation["status"] == "open" else "open"
        if status not in STATUSES:
            return self._unprocessable(f"'{status}' is not a valid status", "status")
        self.toggles.append({"conversation_id": conversation_id, "from": conversation["status"], "to": status})
        conversation["status"] = status
        return JSONResponse(
            {"meta": {}, "payload": {"success": True, "current_status": status, "conversation_id": conversation_id}}
        )

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            raw = await request.body()
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = "<not json>"
            record: dict[str, Any] = {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
            self.requests.append(record)
            if self.delay:
                await asyncio.sleep(self.delay)
            response = self._handle(request, body)
            record["status"] = response.status_code
            return response

        return Starlette(
            routes=[
                Route("/api/v1/accounts/{account_id}/{rest:path}", endpoint, methods=["GET", "POST"]),
            ]
        )

    def _handle(self, request: Request, body: Any) -> Response:
        problem = self._auth(request)
        if problem is not None:
            return problem
        if self.fail_with is not None and (self.fail_path is None or request.url.path.endswith(self.fail_path)):
            return JSONResponse({"error": "Internal Server Error"}, self.fail_with)
        account = request.path_params["account_id"]
        if not account.isdigit() or int(account) != self.account_id:
            return self._not_found()
        parts = request.path_params["rest"].strip("/").split("/")
        if request.method == "GET":
            if parts == ["contacts", "search"]:
                return self._search_contacts(request.query_params.get("q"))
            return self._not_found()
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json" or not isinstance(
            body, dict
        ):
            return JSONResponse({"error": "Send a JSON object"}, 400)
        match parts:
            case ["contacts"]:
                return self._create_contact(body)
            case ["contacts", contact_id, "contact_inboxes"] if contact_id.isdigit():
                return self._create_contact_inbox(int(contact_id), body)
            case ["conversations"]:
                return self._create_conversation(body)
            case ["conversations", conversation_id, "messages"] if conversation_id.isdigit():
                return self._create_message(int(conversation_id), body)
            case ["conversations", conversation_id, "toggle_status"] if conversation_id.isdigit():
                return self._toggle_status(int(conversation_id), body)
        return self._not_found()
