"""Chatwoot's webhook route on a bare FastAPI app (the gateway's error handlers, a stub state with the
real metrics) with a recording DeskInbound: the secret, the body, which deliveries reach the desk,
and that a redelivery does not reach it twice."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tandem.gateway.channels.dedupe import MemoryDedupeStore
from tandem.gateway.chatwoot_routes import install_chatwoot_routes
from tandem.gateway.helpdesk.chatwoot import ChatwootDesk
from tandem.gateway.helpdesk.port import DeskInbound, DeskTicket
from tandem.gateway.metrics import GatewayMetrics
from tandem.gateway.middleware import install_error_handlers
from tandem.settings.desk import ChatwootSettings
from tests.fakes.chatwoot_api import ACCOUNT_ID, FakeChatwoot
from tests.fakes.chatwoot_fixtures import message_created_payload, status_changed_payload

from .conftest import WEBHOOK_SECRET

PATH = f"/channels/chatwoot/webhook/{WEBHOOK_SECRET}"


@dataclass
class RecordingDesk:
    """DeskInbound that records its calls and answers ``answer``."""

    answer: bool = True
    fail: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)

    async def agent_message_from_desk(self, *, desk_ref: str, agent_name: str, text: str, external_id: str) -> bool:
        if self.fail:
            raise RuntimeError("the database is down")
        self.messages.append({"desk_ref": desk_ref, "agent_name": agent_name, "text": text, "external_id": external_id})
        return self.answer

    async def resolved_by_desk(self, *, desk_ref: str, agent_name: str | None) -> bool:
        if self.fail:
            raise RuntimeError("the database is down")
        self.resolved.append({"desk_ref": desk_ref, "agent_name": agent_name})
        return self.answer


@dataclass
class Webhook:
    client: httpx.AsyncClient
    desk: RecordingDesk
    chatwoot: ChatwootDesk
    metrics: GatewayMetrics

    async def post(self, payload: Any, *, path: str = PATH) -> httpx.Response:
        return await self.client.post(path, json=payload)

    def rejected(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value("tandem_gateway_rejections_total", {"reason": reason})
        return value or 0.0


@pytest.fixture
async def webhook_for(
    http: httpx.AsyncClient, chatwoot_settings: ChatwootSettings
) -> AsyncIterator[Callable[..., Webhook]]:
    clients: list[httpx.AsyncClient] = []

    def make(settings: ChatwootSettings = chatwoot_settings, *, with_adapter: bool = True) -> Webhook:
        app = FastAPI()
        metrics = GatewayMetrics()
        state: Any = SimpleNamespace(metrics=metrics, log=logging.getLogger("tests.chatwoot_webhook"))
        install_error_handlers(app, state)
        recording = RecordingDesk()
        inbound: DeskInbound = recording
        chatwoot = ChatwootDesk(http, chatwoot_settings, 2.0)
        install_chatwoot_routes(app, state, inbound, chatwoot if with_adapter else None, settings, MemoryDedupeStore())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test")
        clients.append(client)
        return Webhook(client, recording, chatwoot, metrics)

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def webhook(webhook_for: Callable[..., Webhook]) -> Webhook:
    return webhook_for()


# --- the secret and the body ------------------------------------------------------------------


async def test_a_wrong_secret_is_the_same_404_as_no_route(webhook: Webhook) -> None:
    nowhere = await webhook.client.post("/channels/nowhere", json={})
    for path in (
        "/channels/chatwoot/webhook/" + "x" * len(WEBHOOK_SECRET),
        "/channels/chatwoot/webhook/" + WEBHOOK_SECRET[:-1],
        "/channels/chatwoot/webhook/" + WEBHOOK_SECRET + "x",
        "/channels/chatwoot/webhook/%E2%9C%93",
    ):
        response = await webhook.post(message_created_payload(message_id=1, conversation_id=1), path=path)
        assert response.status_code == 404
        assert (
            response.json()
            == nowhere.json()
            == {"error": {"code": "not_found", "message": "Not found.", "retry_after": None}}
        )
    assert webhook.desk.messages == []
    assert webhook.rejected("chatwoot_secret") == 4


async def test_other_methods_are_404_too(webhook: Webhook) -> None:
    for method in ("GET", "PUT", "DELETE"):
        assert (await webhook.client.request(method, PATH)).status_code == 404
        assert (await webhook.client.request(method, PATH[:-1])).status_code == 404


async def test_no_route_without_the_adapter_or_the_configuration(
    webhook_for: Callable[..., Webhook], chatwoot_settings_for: Callable[..., ChatwootSettings]
) -> None:
    payload = message_created_payload(message_id=1, conversation_id=1)
    without_adapter = webhook_for(with_adapter=False)
    assert (await without_adapter.post(payload)).status_code == 404
    unconfigured = webhook_for(chatwoot_settings_for(CHATWOOT_WEBHOOK_SECRET=None))
    assert (await unconfigured.post(payload)).status_code == 404
    assert without_adapter.desk.messages == unconfigured.desk.messages == []


async def test_bad_json_is_400_in_the_gateway_shape(webhook: Webhook) -> None:
    for raw in (b"{not json", b"\xff\xfe", b"[1, 2]", b'"resolved"', b""):
        response = await webhook.client.post(PATH, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == 400, raw
        assert set(response.json()["error"]) == {"code", "message", "retry_after"}
    assert webhook.rejected("chatwoot_bad_json") == 5


async def test_a_body_over_256_kib_is_413(webhook: Webhook) -> None:
    payload = message_created_payload(message_id=1, conversation_id=1, content="x" * (256 * 1024))
    response = await webhook.post(payload)
    assert response.status_code == 413
    assert webhook.desk.messages == []


async def test_uninteresting_events_are_200_and_nothing(webhook: Webhook) -> None:
    for event in ("conversation_created", "conversation_updated", "message_updated", "webwidget_triggered"):
        payload = message_created_payload(message_id=5, conversation_id=1, event=event)
        assert (await webhook.post(payload)).status_code == 200
    assert (await webhook.post({"no": "event"})).status_code == 200
    assert webhook.desk.messages == webhook.desk.resolved == []
    assert webhook.rejected("chatwoot_ignored_event") == 5


# --- an agent's reply --------------------------------------------------------------------------


async def test_an_agents_reply_reaches_the_desk_once(webhook: Webhook) -> None:
    payload = message_created_payload(message_id=901, conversation_id=4, content="  Hello, I'm Ploy.  ")
    assert (await webhook.post(payload)).status_code == 200
    assert webhook.desk.messages == [
        {"desk_ref": "4", "agent_name": "Ploy Chaiyaporn", "text": "Hello, I'm Ploy.", "external_id": "chatwoot:901"}
    ]
    # Chatwoot redelivers (and the account and the inbox webhook can both deliver it).
    assert (await webhook.post(payload)).status_code == 200
    assert (await webhook.post(json.loads(json.dumps(payload)))).status_code == 200
    assert len(webhook.desk.messages) == 1
    assert webhook.rejected("chatwoot_duplicate") == 2


async def test_the_agent_name_is_clipped_or_defaulted(webhook: Webhook) -> None:
    await webhook.post(message_created_payload(message_id=1, conversation_id=4, sender_name="A" * 200))
    await webhook.post(message_created_payload(message_id=2, conversation_id=4, sender_name="   "))
    assert [m["agent_name"] for m in webhook.desk.messages] == ["A" * 64, "Support"]


async def test_string_ids_and_integer_message_types_are_read(webhook: Webhook) -> None:
    payload = message_created_payload(message_id=77, conversation_id=4, message_type=1)
    payload["id"], payload["conversation"]["id"] = "77", "4"
    assert (await webhook.post(payload)).status_code == 200
    assert webhook.desk.messages[0]["desk_ref"] == "4"
    assert webhook.desk.messages[0]["external_id"] == "chatwoot:77"


async def test_our_own_echo_is_dropped(
    webhook: Webhook, chatwoot_api: FakeChatwoot, chatwoot_settings: ChatwootSettings
) -> None:
    ticket = DeskTicket(12, "web-" + "a" * 32, "website", "asked_for_human", "Summary.", None, None, [])
    ref = await webhook.chatwoot.open(ticket)
    assert ref is not None
    [note] = chatwoot_api.messages
    # Even if Chatwoot presented it as a public agent reply, an id we posted is never relayed.
    echo = message_created_payload(message_id=note["id"], conversation_id=int(ref))
    assert (await webhook.post(echo)).status_code == 200
    assert webhook.desk.messages == []
    assert webhook.rejected("chatwoot_own_echo") == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"private": True}, "private"),
        ({"private": None}, "private"),
        ({"message_type": "incoming", "sender_type": "contact"}, "message_type"),
        ({"message_type": 0}, "message_type"),
        ({"message_type": "activity", "content": "Conversation was resolved by Ploy"}, "message_type"),
        ({"message_type": "template"}, "message_type"),
        ({"sender_type": "agent_bot"}, "sender"),
        ({"sender_type": "contact"}, "sender"),
        ({"inbox_id": 43}, "inbox"),
        ({"account_id": ACCOUNT_ID + 1}, "account"),
        ({"content": ""}, "empty"),
        ({"content": None}, "empty"),
        ({"content": "   \n"}, "empty"),
        ({"content_type": "input_select"}, "content_type"),
    ],
)
async def test_what_is_not_an_agents_public_reply_is_dropped(
    webhook: Webhook, changes: dict[str, Any], reason: str
) -> None:
    payload = message_created_payload(message_id=300, conversation_id=4, **changes)
    assert (await webhook.post(payload)).status_code == 200
    assert webhook.desk.messages == []
    assert webhook.rejected(f"chatwoot_ignored_{reason}") == 1


async def test_a_reply_the_desk_does_not_take_is_200(webhook: Webhook) -> None:
    webhook.desk.answer = False
    assert (await webhook.post(message_created_payload(message_id=5, conversation_id=99))).status_code == 200
    assert len(webhook.desk.messages) == 1
    assert webhook.rejected("chatwoot_not_taken") == 1


async def test_a_failing_desk_is_logged_and_answered(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    webhook.desk.fail = True
    secret_text = "my booking is AB12CD and my card ends 4242"
    with caplog.at_level(logging.INFO, logger="tests.chatwoot_webhook"):
        response = await webhook.post(message_created_payload(message_id=6, conversation_id=4, content=secret_text))
    assert response.status_code == 200
    assert webhook.rejected("chatwoot_desk_failed") == 1
    assert any(getattr(r, "event", None) == "chatwoot_desk_failed" for r in caplog.records)
    assert all(secret_text not in str(r.__dict__) for r in caplog.records)


async def test_logs_never_carry_the_content(webhook: Webhook, caplog: pytest.LogCaptureFixture) -> None:
    text = "Please confirm your passport number"
    with caplog.at_level(logging.DEBUG):
        await webhook.post(message_created_payload(message_id=8, conversation_id=4, content=text))
    assert any(getattr(r, "kind", None) == "agent_message" for r in caplog.records)
    assert all(text not in str(r.__dict__) for r in caplog.records)


# --- resolved in Chatwoot ----------------------------------------------------------------------


async def test_resolved_reaches_the_desk_once(webhook: Webhook) -> None:
    payload = status_changed_payload(conversation_id=4)
    assert (await webhook.post(payload)).status_code == 200
    assert (await webhook.post(payload)).status_code == 200
    assert webhook.desk.resolved == [{"desk_ref": "4", "agent_name": "Ploy Chaiyaporn"}]


async def test_resolved_without_an_assignee_has_no_name(webhook: Webhook) -> None:
    await webhook.post(status_changed_payload(conversation_id=5, assignee_name=None))
    assert webhook.desk.resolved == [{"desk_ref": "5", "agent_name": None}]


@pytest.mark.parametrize("status", ["open", "pending", "snoozed"])
async def test_other_statuses_do_nothing(webhook: Webhook, status: str) -> None:
    assert (await webhook.post(status_changed_payload(conversation_id=4, status=status))).status_code == 200
    assert webhook.desk.resolved == []
    assert webhook.rejected("chatwoot_ignored_status") == 1


async def test_resolved_in_another_inbox_does_nothing(webhook: Webhook) -> None:
    assert (await webhook.post(status_changed_payload(conversation_id=4, inbox_id=43))).status_code == 200
    assert webhook.desk.resolved == []


async def test_a_resolve_we_made_ourselves_is_dropped(webhook: Webhook, chatwoot_api: FakeChatwoot) -> None:
    ticket = DeskTicket(12, "web-" + "b" * 32, "website", "asked_for_human", "Summary.", None, None, [])
    ref = await webhook.chatwoot.open(ticket)
    await webhook.chatwoot.ended(DeskTicket(**{**ticket.__dict__, "desk_ref": ref}), "cancelled")
    assert (await webhook.post(status_changed_payload(conversation_id=int(str(ref))))).status_code == 200
    assert webhook.desk.resolved == []
    assert webhook.rejected("chatwoot_own_resolve") == 1
