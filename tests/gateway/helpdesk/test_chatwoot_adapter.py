"""The Chatwoot adapter against the fake Chatwoot API over real HTTP: what it creates and posts,
what it sends (the token), and how every failure becomes a HelpDeskError."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from tandem.gateway.helpdesk.chatwoot import (
    MAX_NOTE_CHARS,
    ChatwootDesk,
    MemoryPostedStore,
    RedisPostedStore,
    contact_name,
    handoff_note,
)
from tandem.gateway.helpdesk.port import DeskTicket, HelpDesk, HelpDeskError
from tandem.settings.desk import ChatwootSettings
from tests.fakes.chatwoot_api import ACCOUNT_ID, CHATWOOT_TOKEN, INBOX_ID, FakeChatwoot
from tests.gateway.fakes import free_port

CONVERSATION = "web-" + "3f9a0c" * 6
TRANSCRIPT: list[dict[str, Any]] = [
    {"role": "customer", "text": "I need to change my flight to Phuket", "at": "2025-05-15T10:00:00Z"},
    {"role": "bot", "text": "Which booking is it?", "at": "2025-05-15T10:00:01Z"},
    {"role": "customer", "text": "human please", "at": 1747303202},
]


def ticket(**changes: object) -> DeskTicket:
    base = DeskTicket(
        ticket_id=12,
        conversation_id=CONVERSATION,
        channel="website",
        reason="asked_for_human",
        summary="Wants to move booking AB12CD to a later flight.",
        llm_summary="The customer wants a later flight to Phuket and asked for a person.",
        desk_ref=None,
        transcript=list(TRANSCRIPT),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def desk(http: httpx.AsyncClient, settings: ChatwootSettings, **kwargs: object) -> ChatwootDesk:
    return ChatwootDesk(http, settings, 2.0, **kwargs)  # type: ignore[arg-type]


async def test_it_is_a_help_desk(http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings) -> None:
    adapter: HelpDesk = desk(http, chatwoot_settings)
    assert adapter.name == "chatwoot"
    assert CHATWOOT_TOKEN not in repr(adapter)
    await adapter.aclose()


async def test_open_creates_a_contact_a_conversation_and_one_private_note(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    ref = await desk(http, chatwoot_settings).open(ticket())

    [contact] = chatwoot_api.contacts.values()
    assert contact["name"] == contact_name(CONVERSATION)
    assert contact["name"].startswith("Customer ") and len(contact["name"]) == len("Customer ") + 8
    assert CONVERSATION not in contact["name"]
    assert contact["identifier"] == CONVERSATION

    [conversation] = chatwoot_api.conversations.values()
    assert ref == str(conversation["id"])
    assert conversation["inbox_id"] == INBOX_ID and conversation["status"] == "open"
    assert conversation["contact_id"] == contact["id"]
    assert conversation["custom_attributes"] == {
        "tandem_ticket_id": 12,
        "channel": "website",
        "reason": "asked_for_human",
    }

    [note] = chatwoot_api.messages
    assert note["conversation_id"] == conversation["id"]
    assert note["private"] is True and note["message_type"] == 1  # outgoing
    content = note["content"]
    assert "ticket #12" in content
    assert "Wants to move booking AB12CD to a later flight." in content
    assert "**AI summary**\nThe customer wants a later flight to Phuket" in content
    assert "[2025-05-15T10:00:00Z] Customer: I need to change my flight to Phuket" in content
    assert "Bot: Which booking is it?" in content
    assert "[2025-05-15T10:00:02Z] Customer: human please" in content
    assert content.index("I need to change") < content.index("human please")  # oldest first

    # The token on every call, in Chatwoot's header; nothing in the URL.
    assert [r["path"] for r in chatwoot_api.requests] == [
        f"/api/v1/accounts/{ACCOUNT_ID}/contacts",
        f"/api/v1/accounts/{ACCOUNT_ID}/conversations",
        f"/api/v1/accounts/{ACCOUNT_ID}/conversations/{ref}/messages",
    ]
    assert all(r["headers"].get("api_access_token") == CHATWOOT_TOKEN for r in chatwoot_api.requests)
    assert all(CHATWOOT_TOKEN not in r["path"] + str(r["query"]) for r in chatwoot_api.requests)


async def test_open_without_an_ai_summary_has_no_ai_section(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    await desk(http, chatwoot_settings).open(ticket(llm_summary=None, transcript=[]))
    [note] = chatwoot_api.messages
    assert "AI summary" not in note["content"]
    assert "(no messages before the handoff)" in note["content"]


async def test_a_second_handoff_of_a_conversation_reuses_its_contact(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    adapter = desk(http, chatwoot_settings)
    first = await adapter.open(ticket())
    second = await adapter.open(ticket(ticket_id=13))
    assert first != second
    assert len(chatwoot_api.contacts) == 1  # Chatwoot: "Identifier has already been taken"
    assert {c["contact_id"] for c in chatwoot_api.conversations.values()} == set(chatwoot_api.contacts)
    assert [r["status"] for r in chatwoot_api.requests if r["path"].endswith("/contacts")] == [200, 422]


def test_the_note_keeps_the_newest_lines_within_the_limit() -> None:
    lines = [{"role": "customer", "text": f"message number {n:04d} " + "x" * 80} for n in range(500)]
    note = handoff_note(ticket(transcript=lines, summary="s" * 5000, llm_summary="l" * 5000))
    assert len(note) <= MAX_NOTE_CHARS
    assert "message number 0499" in note
    assert "message number 0000" not in note
    assert "earlier messages not shown" in note
    assert note.index("**Summary**") < note.index("**AI summary**") < note.index("**Transcript**")


async def test_customer_message_is_posted_as_incoming_and_public(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    adapter = desk(http, chatwoot_settings)
    ref = await adapter.open(ticket())
    await adapter.customer_message(ticket(desk_ref=ref), "Is anyone there?")
    message = chatwoot_api.messages[-1]
    assert message["content"] == "Is anyone there?"
    assert message["message_type"] == 0 and message["private"] is False  # incoming, public
    assert message["conversation_id"] == int(str(ref))
    assert await adapter.posted_by_us(message["id"]) is True
    assert await adapter.posted_by_us(message["id"] + 1000) is False


async def test_ended_posts_a_note_and_resolves(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    adapter = desk(http, chatwoot_settings)
    ref = await adapter.open(ticket())
    await adapter.ended(ticket(desk_ref=ref), "cancelled")
    note = chatwoot_api.messages[-1]
    assert note["private"] is True and note["message_type"] == 1
    assert note["content"] == "The customer went back to the bot (cancelled)."
    assert chatwoot_api.conversations[int(str(ref))]["status"] == "resolved"
    assert chatwoot_api.toggles == [{"conversation_id": int(str(ref)), "from": "open", "to": "resolved"}]
    assert await adapter.resolved_by_us(int(str(ref))) is True

    # Already resolved (in Chatwoot, or a second call): still fine, still resolved.
    await adapter.ended(ticket(desk_ref=ref), "expired")
    assert "No agent in time (expired)" in chatwoot_api.messages[-1]["content"]
    assert chatwoot_api.conversations[int(str(ref))]["status"] == "resolved"


async def test_ended_still_resolves_when_the_note_fails(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    adapter = desk(http, chatwoot_settings)
    ref = await adapter.open(ticket())
    chatwoot_api.fail_with, chatwoot_api.fail_path = 500, "/messages"
    with pytest.raises(HelpDeskError) as raised:
        await adapter.ended(ticket(desk_ref=ref), "expired")
    assert raised.value.code == "http_500" and raised.value.operation == "end_note"
    assert chatwoot_api.conversations[int(str(ref))]["status"] == "resolved"


async def test_calls_without_a_desk_ref_raise_and_send_nothing(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    adapter = desk(http, chatwoot_settings)
    for bad in (None, "", "../contacts", "12/messages"):
        with pytest.raises(HelpDeskError) as raised:
            await adapter.customer_message(ticket(desk_ref=bad), "hi")
        assert raised.value.code == "no_desk_ref"
    with pytest.raises(HelpDeskError):
        await adapter.ended(ticket(desk_ref=None), "cancelled")
    assert chatwoot_api.requests == []


async def test_a_wrong_token_is_a_help_desk_error(
    http: httpx.AsyncClient, chatwoot_settings_for: Callable[..., ChatwootSettings], chatwoot_api: FakeChatwoot
) -> None:
    adapter = desk(http, chatwoot_settings_for(CHATWOOT_API_TOKEN="not-the-token"))
    with pytest.raises(HelpDeskError) as raised:
        await adapter.open(ticket())
    assert (raised.value.code, raised.value.status, raised.value.operation) == ("http_401", 401, "create_contact")
    assert chatwoot_api.contacts == {}


async def test_a_foreign_account_is_a_help_desk_error(
    http: httpx.AsyncClient, chatwoot_settings_for: Callable[..., ChatwootSettings], chatwoot_api: FakeChatwoot
) -> None:
    with pytest.raises(HelpDeskError) as raised:
        await desk(http, chatwoot_settings_for(CHATWOOT_ACCOUNT_ID=ACCOUNT_ID + 1)).open(ticket())
    assert raised.value.code == "http_404"


async def test_an_unknown_conversation_is_a_help_desk_error(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    with pytest.raises(HelpDeskError) as raised:
        await desk(http, chatwoot_settings).customer_message(ticket(desk_ref="999"), "hello")
    assert raised.value.code == "http_404"


async def test_a_server_error_is_a_help_desk_error_and_logs_no_token(
    http: httpx.AsyncClient,
    chatwoot_settings: ChatwootSettings,
    chatwoot_api: FakeChatwoot,
    caplog: pytest.LogCaptureFixture,
) -> None:
    chatwoot_api.fail_with = 500
    with caplog.at_level(logging.DEBUG), pytest.raises(HelpDeskError) as raised:
        await desk(http, chatwoot_settings).open(ticket())
    assert raised.value.code == "http_500"
    assert CHATWOOT_TOKEN not in str(raised.value)
    assert any(getattr(r, "code", None) == "http_500" for r in caplog.records)
    for record in caplog.records:
        assert CHATWOOT_TOKEN not in record.getMessage()
        assert CHATWOOT_TOKEN not in str(record.__dict__)


async def test_a_failed_note_still_gives_the_desk_ref(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot
) -> None:
    chatwoot_api.fail_with, chatwoot_api.fail_path = 500, "/messages"
    with pytest.raises(HelpDeskError) as raised:
        await desk(http, chatwoot_settings).open(ticket())
    [conversation] = chatwoot_api.conversations.values()
    assert raised.value.operation == "post_note"
    assert raised.value.desk_ref == str(conversation["id"])


async def test_a_timeout_is_a_help_desk_error(
    chatwoot_settings: ChatwootSettings, chatwoot_api: FakeChatwoot, http: httpx.AsyncClient
) -> None:
    chatwoot_api.delay = 1.0
    adapter = ChatwootDesk(http, chatwoot_settings, 0.2)
    with pytest.raises(HelpDeskError) as raised:
        await adapter.open(ticket())
    assert raised.value.code == "timeout"


async def test_nothing_listening_is_a_help_desk_error(
    http: httpx.AsyncClient, chatwoot_settings_for: Callable[..., ChatwootSettings]
) -> None:
    adapter = desk(http, chatwoot_settings_for(CHATWOOT_BASE_URL=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(HelpDeskError) as raised:
        await adapter.open(ticket())
    assert raised.value.code == "connection_error"


async def test_an_answer_that_is_not_json_is_a_help_desk_error(
    chatwoot_settings_for: Callable[..., ChatwootSettings],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    settings = chatwoot_settings_for(CHATWOOT_BASE_URL="https://chatwoot.example")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(HelpDeskError) as raised:
            await ChatwootDesk(client, settings).open(ticket())
    assert raised.value.code == "bad_response"


def test_it_needs_a_complete_configuration(
    http: httpx.AsyncClient, chatwoot_settings_for: Callable[..., ChatwootSettings]
) -> None:
    with pytest.raises(ValueError, match="not configured"):
        ChatwootDesk(http, chatwoot_settings_for(CHATWOOT_INBOX_ID=None))


async def test_the_memory_store_forgets_after_the_ttl_and_stays_bounded() -> None:
    now = [100.0]
    store = MemoryPostedStore(max_keys=3, clock=lambda: now[0])
    for key in ("a", "b", "c", "d"):
        await store.add(key, 10)
    assert len(store) == 3
    assert await store.contains("a") is False  # the oldest went first
    assert await store.contains("d") is True
    now[0] += 11
    assert await store.contains("d") is False


async def test_posted_ids_are_shared_through_redis(
    http: httpx.AsyncClient,
    chatwoot_settings: ChatwootSettings,
    chatwoot_api: FakeChatwoot,
    aredis: aioredis.Redis,
    redis_prefix: str,
) -> None:
    one = desk(http, chatwoot_settings, posted=RedisPostedStore(aredis, prefix=redis_prefix))
    other = desk(http, chatwoot_settings, posted=RedisPostedStore(aredis, prefix=redis_prefix))
    ref = await one.open(ticket())
    await one.customer_message(ticket(desk_ref=ref), "still there?")
    assert await other.posted_by_us(chatwoot_api.messages[-1]["id"]) is True
    assert await other.resolved_by_us(int(str(ref))) is False
    await one.ended(ticket(desk_ref=ref), "cancelled")
    assert await other.resolved_by_us(int(str(ref))) is True
    assert 0 < await aredis.ttl(f"{redis_prefix}resolved:{ref}") <= 24 * 3600
