"""The model call is a span ``llm.chat`` (model, tokens, attempts, outcome; never the prompt), from
the real openai SDK against the local OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tandem import tracing
from tandem.llm import LlmClient, LlmUnavailable
from tests.fallback.conftest import fallback_settings
from tests.fallback.fake_llm import FakeLlmServer, Step, reply

from .conftest import attribute_values, named

PROMPT = [{"role": "user", "content": "my passport number is X1234567"}]


@pytest.fixture
async def llm(llm_server: FakeLlmServer) -> AsyncIterator[LlmClient]:
    settings = fallback_settings(
        LLM_BASE_URL=llm_server.base_url,
        LLM_MODEL="test-model",
        LLM_API_KEY="sk-test",
        LLM_TIMEOUT_SECONDS=2,
        LLM_MAX_RETRIES=1,
        LLM_BACKOFF_BASE_SECONDS=0.01,
        LLM_BACKOFF_MAX_SECONDS=0.05,
    )
    client = LlmClient.from_settings(settings.llm)
    assert client is not None
    yield client
    await client.aclose()


async def test_a_completion_is_an_llm_chat_span_in_the_current_trace(
    spans: InMemorySpanExporter, llm: LlmClient, llm_server: FakeLlmServer
) -> None:
    llm_server.reset(Step(status=500), Step(content=reply(answer="Fine."), prompt_tokens=123, completion_tokens=7))
    with tracing.start_span("action action_fallback") as parent:
        completion = await llm.complete(PROMPT)
    assert completion.prompt_tokens == 123 and len(llm_server.requests) == 2
    [chat] = named(spans, "llm.chat")
    assert chat.parent is not None and chat.parent.span_id == parent.get_span_context().span_id
    assert chat.attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "test-model",
        "gen_ai.usage.input_tokens": 123,
        "gen_ai.usage.output_tokens": 7,
        "tandem.llm.attempts": 2,
        "tandem.outcome": "ok",
    }
    recorded = attribute_values(spans)
    assert "X1234567" not in recorded and "Fine." not in recorded


async def test_a_refused_call_is_an_error_span_with_the_reason(
    spans: InMemorySpanExporter, llm: LlmClient, llm_server: FakeLlmServer
) -> None:
    llm_server.reset(Step(status=400))
    with pytest.raises(LlmUnavailable):
        await llm.complete(PROMPT)
    [chat] = named(spans, "llm.chat")
    assert (chat.attributes or {})["tandem.outcome"] == "http_400"
    assert "gen_ai.usage.input_tokens" not in (chat.attributes or {})
    assert chat.status.status_code == StatusCode.ERROR and not chat.events
