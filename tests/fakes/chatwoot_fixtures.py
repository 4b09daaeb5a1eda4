"""The fake Chatwoot API as pytest fixtures, and Chatwoot's webhook payloads as builders.

Fixtures (import them into a directory's ``conftest.py``): ``chatwoot_api`` (the fake, reset for
each test) and ``chatwoot_base_url``; one server per session.

The payloads follow what Chatwoot sends (``Message#webhook_data`` merged with ``event``; for a
status change, ``Conversation#webhook_data`` (``Conversations::EventDataPresenter#push_data``)
merged with ``event`` and ``changed_attributes``): strings for ``message_type`` in webhooks,
``sender`` as the sender's ``webhook_data`` (a user: ``id, name, email, type: "user"``), the
conversation's ``id`` being its per-account display id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.chatwoot_api import ACCOUNT_ID, INBOX_ID, FakeChatwoot
from tests.gateway.fakes import ServerThread

CREATED_AT = "2025-05-15T19:11:08.856Z"
TIMESTAMP = 1747336268


@pytest.fixture(scope="session")
def _chatwoot_server() -> Iterator[tuple[FakeChatwoot, ServerThread]]:
    fake = FakeChatwoot()
    server = ServerThread(fake.app()).start()
    yield fake, server
    server.stop()


@pytest.fixture
def chatwoot_api(_chatwoot_server: tuple[FakeChatwoot, ServerThread]) -> Iterator[FakeChatwoot]:
    _chatwoot_server[0].reset()
    yield _chatwoot_server[0]
    _chatwoot_server[0].reset()


@pytest.fixture
def chatwoot_base_url(_chatwoot_server: tuple[FakeChatwoot, ServerThread]) -> str:
    return _chatwoot_server[1].url


def _sender(sender_type: str, name: str) -> dict[str, Any]:
    if sender_type == "user":
        return {"id": 7, "name": name, "email": "agent@andaman.example", "type": "user"}
    if sender_type == "agent_bot":
        return {"id": 2, "name": name, "avatar_url": "", "type": "agent_bot"}
    return {"id": 1001, "name": name, "avatar": "", "type": sender_type, "account": {"id": ACCOUNT_ID}}


def conversation_payload(
    *,
    conversation_id: int,
    inbox_id: int = INBOX_ID,
    status: str = "open",
    assignee_name: str | None = "Ploy Chaiyaporn",
) -> dict[str, Any]:
    """``Conversation#webhook_data``: what ``message_created`` carries as ``conversation``."""
    assignee = (
        None
        if assignee_name is None
        else {
            "id": 7,
            "name": assignee_name,
            "available_name": assignee_name.split()[0],
            "avatar_url": "",
            "type": "user",
            "availability_status": "online",
            "thumbnail": "",
        }
    )
    return {
        "additional_attributes": {},
        "can_reply": True,
        "channel": "Channel::Api",
        "contact_inbox": {
            "id": 180,
            "contact_id": 1001,
            "inbox_id": inbox_id,
            "source_id": "239a4135-0f7b-4fd5-b108-17f84e596aef",
            "created_at": CREATED_AT,
            "updated_at": CREATED_AT,
            "hmac_verified": False,
            "pubsub_token": "wfTzyNgmiE8YagFL3m4JU8Fi",
        },
        "id": conversation_id,
        "inbox_id": inbox_id,
        "messages": [],
        "labels": [],
        "meta": {
            "sender": {
                "additional_attributes": {},
                "custom_attributes": {},
                "email": None,
                "id": 1001,
                "identifier": "web-0123456789abcdef",
                "name": "Customer 1a2b3c4d",
                "phone_number": None,
                "thumbnail": "",
                "type": "contact",
            },
            "assignee": assignee,
            "team": None,
            "hmac_verified": False,
        },
        "status": status,
        "custom_attributes": {"tandem_ticket_id": 12, "channel": "website", "reason": "asked_for_human"},
        "snoozed_until": None,
        "unread_count": 0,
        "first_reply_created_at": None,
        "priority": None,
        "waiting_since": 0,
        "agent_last_seen_at": TIMESTAMP,
        "contact_last_seen_at": 0,
        "last_activity_at": TIMESTAMP,
        "timestamp": TIMESTAMP,
        "created_at": TIMESTAMP - 60,
        "updated_at": float(TIMESTAMP),
    }


def message_created_payload(
    *,
    message_id: int,
    conversation_id: int,
    content: str | None = "Hello, this is Ploy. I can move your flight.",
    message_type: str | int = "outgoing",
    private: bool | None = False,
    sender_type: str = "user",
    sender_name: str = "Ploy Chaiyaporn",
    inbox_id: int = INBOX_ID,
    account_id: int = ACCOUNT_ID,
    content_type: str = "text",
    event: str = "message_created",
) -> dict[str, Any]:
    """A ``message_created`` delivery (``private=None`` leaves the field out, as old Chatwoots did)."""
    payload: dict[str, Any] = {
        "event": event,
        "account": {"id": account_id, "name": "Andaman Air"},
        "additional_attributes": {},
        "content_attributes": {},
        "content_type": content_type,
        "content": content,
        "conversation": conversation_payload(conversation_id=conversation_id, inbox_id=inbox_id),
        "created_at": CREATED_AT,
        "id": message_id,
        "inbox": {"id": inbox_id, "name": "Tandem handoff"},
        "message_type": message_type,
        "private": private,
        "sender": _sender(sender_type, sender_name),
        "source_id": None,
    }
    if private is None:
        del payload["private"]
    return payload


def status_changed_payload(
    *,
    conversation_id: int,
    status: str = "resolved",
    previous: str = "open",
    inbox_id: int = INBOX_ID,
    assignee_name: str | None = "Ploy Chaiyaporn",
) -> dict[str, Any]:
    """A ``conversation_status_changed`` delivery."""
    return {
        **conversation_payload(
            conversation_id=conversation_id, inbox_id=inbox_id, status=status, assignee_name=assignee_name
        ),
        "event": "conversation_status_changed",
        "changed_attributes": [{"status": {"previous_value": previous, "current_value": status}}],
    }
