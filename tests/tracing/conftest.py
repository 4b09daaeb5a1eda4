"""Fixtures of the tracing tests: spans collected in memory, and the gateway's and the fallback
tests' fakes (a fake Rasa over real HTTP, the local OpenAI-compatible server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tandem import tracing
from tests.fallback.conftest import _llm_server, llm_server
from tests.gateway.conftest import client_for, fake, fake_server, fake_url, settings_for

__all__ = ["_llm_server", "client_for", "fake", "fake_server", "fake_url", "llm_server", "settings_for"]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans finished during the test (an in-memory provider, installed once per process)."""
    exporter = tracing.collect_in_memory()
    yield exporter
    exporter.clear()


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def traceparent_of(span: ReadableSpan) -> str:
    """The W3C traceparent naming ``span`` as the parent (its flags: sampled, and maybe random)."""
    assert span.context is not None
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def attribute_values(exporter: InMemorySpanExporter) -> str:
    """Every attribute value of every finished span, as one string (to look for what must not be there)."""
    return "\n".join(str(v) for span in exporter.get_finished_spans() for v in (span.attributes or {}).values())
