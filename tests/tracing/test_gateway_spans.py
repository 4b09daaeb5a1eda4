"""The gateway's turn is a span ``gateway.turn``, and its trace context goes to Rasa in the message
metadata (``traceparent``), where Rasa's channel keeps it for the action server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tandem.conversation.metadata import clean_metadata
from tandem.settings import GatewayAppSettings
from tests.gateway.conftest import say, start_session
from tests.gateway.fakes import FakeRasa

from .conftest import attribute_values, named, traceparent_of

TEXT = "my passport number is X1234567"


async def test_a_turn_is_a_span_whose_context_reaches_rasa(
    spans: InMemorySpanExporter,
    settings_for: Callable[..., GatewayAppSettings],
    client_for: Callable[[GatewayAppSettings], httpx.AsyncClient],
    fake: FakeRasa,
) -> None:
    client = client_for(settings_for())
    await start_session(client)
    response = await say(client, text=TEXT)
    assert response.status_code == 200, response.text
    [turn] = named(spans, "gateway.turn")
    [sent] = [r for r in fake.requests if r["path"].endswith("/webhooks/gateway/webhook")]
    metadata = sent["body"]["metadata"]
    # The turn's span is the parent the action server continues from, sampled.
    assert metadata["traceparent"] == traceparent_of(turn)
    assert turn.context is not None and turn.context.trace_flags.sampled
    assert clean_metadata(metadata)["traceparent"] == metadata["traceparent"]  # what Rasa's channel keeps
    assert turn.parent is None  # the root of the turn's trace
    assert turn.attributes == {
        "tandem.correlation_id": response.headers["X-Correlation-Id"],
        "tandem.channel": "website",
        "tandem.rasa.replica": 0,
        "http.response.status_code": 200,
        "tandem.replies": 1,
        "tandem.outcome": "ok",
    }
    assert turn.status.status_code == StatusCode.UNSET
    # Neither the text nor the conversation id is on a span.
    recorded = attribute_values(spans)
    assert "X1234567" not in recorded
    assert sent["body"]["sender"] not in recorded and sent["headers"]["x-conversation-id"] not in recorded


async def test_a_failed_turn_is_an_error_span_with_the_upstream_outcome(
    spans: InMemorySpanExporter,
    settings_for: Callable[..., GatewayAppSettings],
    client_for: Callable[[GatewayAppSettings], httpx.AsyncClient],
    fake: FakeRasa,
) -> None:
    client = client_for(settings_for())
    await start_session(client)
    fake.mode = "error"
    response = await say(client, text="hello")
    assert response.status_code == 502, response.text
    [turn] = named(spans, "gateway.turn")
    attributes: dict[str, Any] = dict(turn.attributes or {})
    assert attributes["tandem.outcome"] == response.json()["error"]["code"]
    assert attributes["http.response.status_code"] == 500
    assert turn.status.status_code == StatusCode.ERROR
    assert turn.status.description is None  # no error text on the span
    assert not turn.events  # exceptions are not recorded (their text could hold personal data)
