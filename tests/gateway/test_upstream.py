"""Rasa being slow, failing or gone turns into a clear message in the documented shape, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import say, start_session
from .fakes import FakeRasa


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("slow", 504, "upstream_timeout"),
        ("error", 502, "upstream_error"),
        ("garbage", 502, "upstream_error"),
        ("unavailable", 503, "upstream_unavailable"),
        ("turn_failed", 503, "turn_failed"),
    ],
)
async def test_upstream_failures_become_clear_messages(
    client: httpx.AsyncClient, fake: FakeRasa, mode: str, status: int, code: str
) -> None:
    await start_session(client)
    fake.mode = mode
    response = await say(client, text="hello")
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert body["error"]["message"].endswith(".") and "Traceback" not in response.text
    assert "secret internals" not in response.text and "html" not in response.text
    assert response.headers["X-Correlation-Id"] == fake.requests[-1]["headers"]["x-correlation-id"]
    metrics = (await client.get("/metrics")).text
    kinds = {"slow": "timeout", "error": "bad_response", "garbage": "bad_response", "unavailable": "unavailable"}
    kind = {**kinds, "turn_failed": "turn_failed"}[mode]
    assert f'tandem_gateway_upstream_errors_total{{kind="{kind}"}} 1.0' in metrics
    # Once Rasa is back, the same session carries on.
    fake.mode = "ok"
    assert (await say(client, text="hello")).status_code == 200


async def test_a_turn_rasa_failed_unsaved_is_retryable_and_runs_again(
    client: httpx.AsyncClient, fake: FakeRasa
) -> None:
    """Rasa's channel answers 500 turn_failed when a store or the action server failed and nothing
    of the turn was saved: the visitor gets 503 turn_failed with Retry-After, the replica stays up,
    and the same message (same client_message_id) is sent to Rasa again, not replayed as failed."""
    await start_session(client)
    fake.mode = "turn_failed"
    failed = await say(client, text="hello", client_message_id="message-0001")
    assert failed.status_code == 503 and failed.json()["error"]["code"] == "turn_failed"
    assert failed.headers["Retry-After"] == "2" and failed.json()["error"]["retry_after"] == 2
    assert len(fake.requests) == 1  # one replica, not marked down: no second attempt elsewhere
    metrics = (await client.get("/metrics")).text
    assert 'tandem_gateway_rasa_replica_up{replica="0"} 1.0' in metrics
    fake.mode = "ok"
    again = await say(client, text="hello", client_message_id="message-0001")
    assert again.status_code == 200 and again.json()["messages"][0]["text"] == "You said 5 characters."
    assert [r["body"]["message"] for r in fake.requests] == ["hello", "hello"]


async def test_rasa_not_running_is_503(settings_for: Any, client_for: Any, closed_port_url: str) -> None:
    async with client_for(settings_for(RASA_URL=closed_port_url)) as client:
        await start_session(client)
        response = await say(client, text="hello")
        assert response.status_code == 503 and response.json()["error"]["code"] == "upstream_unavailable"
        history = await client.get("/api/v1/history")
        assert history.status_code == 503 and history.json()["error"]["code"] == "upstream_unavailable"


async def test_history_timeout_is_504(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    fake.mode = "slow"
    response = await client.get("/api/v1/history")
    assert response.status_code == 504 and response.json()["error"]["code"] == "upstream_timeout"


async def test_replies_are_passed_on_in_the_documented_shape(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    fake.script = lambda message: [
        {"text": "Here you go", "buttons": [{"title": "Yes", "payload": "/affirm"}, {"payload": "/deny"}]},
        {"image": "https://images.example/plane.png"},
        {"custom": {"handoff": {"state": "pending", "ticket_id": 3}}},
        {"attachment": {"unknown": True}, "elements": ["dropped"]},
    ]
    response = await say(client, text="hello")
    assert response.status_code == 200
    turn = response.json()
    assert turn["turn_id"] and response.headers["X-Correlation-Id"].endswith(turn["turn_id"])
    messages = turn["messages"]
    assert [m["id"] for m in messages] == [f"{turn['turn_id']}-{i}" for i in range(4)]
    assert messages[0]["text"] == "Here you go"
    assert messages[0]["buttons"] == [{"title": "Yes", "payload": "/affirm"}, {"title": "/deny", "payload": "/deny"}]
    assert messages[1]["image"] == "https://images.example/plane.png" and messages[1]["text"] is None
    assert messages[2]["custom"] == {"handoff": {"state": "pending", "ticket_id": 3}}
    assert set(messages[3]) == {"id", "role", "text", "buttons", "image", "custom", "payload", "timestamp"}
    assert all(m["role"] == "bot" and m["timestamp"].endswith("Z") for m in messages)
    sent = fake.requests[-1]["body"]
    assert sent["metadata"]["channel"] == "website"
    assert sent["metadata"]["correlation_id"] == response.headers["X-Correlation-Id"]


async def test_history_shows_button_titles_and_the_latest_offer(client: httpx.AsyncClient, fake: FakeRasa) -> None:
    await start_session(client)
    await say(client, text="book it")
    await say(client, payload='/inform{"cabin": "economy"}')
    await say(client, text="bye")
    messages = (await client.get("/api/v1/history")).json()["messages"]
    users = [(m["text"], m["payload"]) for m in messages if m["role"] == "user"]
    assert users == [("book it", None), ("Economy", '/inform{"cabin": "economy"}'), ("bye", None)]
    assert [len(m["buttons"]) for m in messages if m["role"] == "bot"] == [2, 0, 0, 5]
    # The rating buttons offered last are usable after a reload.
    assert (await say(client, payload='/rate{"rating": 4}')).status_code == 200
