"""OpenTelemetry traces of a turn: gateway → (Rasa) → action server → tool → LLM.

One trace per turn. The gateway's span ``gateway.turn`` is the root; its W3C trace context
(``traceparent``, ``tracestate``) travels in the message metadata (:func:`inject`), which Rasa's
gateway channel keeps when well formed (:func:`tandem.conversation.metadata.clean_metadata`) and
hands, unchanged, to the action server in ``tracker.latest_message.metadata``. Rasa OSS 3.6 has no
tracing: no Rasa span sits in between, the action's span is a child of the gateway's. The action
server continues the trace (:func:`extract`) with ``action <name>``; inside it come ``tool <name>``
(tandem/tools.py) and ``llm.chat`` (tandem/llm/client.py).

Spans never carry message text, prompts, sender or conversation ids: only names, the correlation
id (the random turn id of the logs), outcomes, counts and durations. Exceptions are not recorded
on spans (their text can hold personal data); the outcome attribute says what happened.

Each process calls :func:`configure_tracing` once at start (``python -m tandem.gateway``,
``python -m actions.server``). With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set it installs an SDK
:class:`~opentelemetry.sdk.trace.TracerProvider` exporting by OTLP/HTTP in batches (a bounded
queue, a timeout on every export); unset, nothing is installed and every span is OpenTelemetry's
no-op. The one piece of process state is OpenTelemetry's own global tracer provider (it can be set
once per process); this module keeps none. Tests install an in-memory provider with
:func:`collect_in_memory`. Nothing happens at import time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from tandem.conversation.metadata import TRACEPARENT, TRACESTATE, valid_traceparent, valid_tracestate
from tandem.settings.tracing import TracingSettings

log = logging.getLogger(__name__)

# The instrumentation scope of every span of the application.
TRACER_NAME = "tandem"
# One export request (OTLP/HTTP) and one flush of the batch: a collector that hangs costs this.
EXPORT_TIMEOUT_SECONDS = 5.0

GATEWAY_SERVICE = "tandem-gateway"
ACTION_SERVICE = "tandem-actions"

# Attribute names shared by the spans (OpenTelemetry's own where one exists).
CORRELATION_ID = "tandem.correlation_id"
OUTCOME = "tandem.outcome"


def configure_tracing(service_name: str, settings: TracingSettings) -> TracerProvider | None:
    """Install the process's tracer provider when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; else None.

    Call once, at process start. The provider exports by OTLP/HTTP in batches from a background
    thread (a bounded queue: spans are dropped, never waited for, when the collector is slow);
    its :meth:`~TracerProvider.shutdown` (also run at exit) flushes what is left. Without an
    endpoint nothing is installed, spans are no-ops and the code runs unchanged.
    """
    url = settings.traces_url
    if url is None:
        return None
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.otel_service_name or service_name}),
        # The gateway decides for the whole trace; the action server follows its sampled flag.
        sampler=ParentBased(TraceIdRatioBased(settings.otel_traces_sampler_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=url, headers=settings.headers(), timeout=EXPORT_TIMEOUT_SECONDS)
    provider.add_span_processor(BatchSpanProcessor(exporter, export_timeout_millis=EXPORT_TIMEOUT_SECONDS * 1000))
    if not install(provider):
        provider.shutdown()
        raise RuntimeError("a tracer provider is already installed in this process: configure tracing once")
    log.info(
        "tracing on: spans exported by OTLP/HTTP",
        extra={"event": "tracing", "service": settings.otel_service_name or service_name},
    )
    return provider


def install(provider: TracerProvider) -> bool:
    """Make ``provider`` OpenTelemetry's global one; False when another was installed before
    (OpenTelemetry allows one per process and keeps the first)."""
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider() is provider


class MemoryTracerProvider(TracerProvider):
    """An SDK tracer provider that keeps every finished span in memory (tests)."""

    def __init__(self) -> None:
        super().__init__(resource=Resource.create({SERVICE_NAME: "tandem-tests"}), shutdown_on_exit=False)
        self.exporter = InMemorySpanExporter()
        self.add_span_processor(SimpleSpanProcessor(self.exporter))


def collect_in_memory() -> InMemorySpanExporter:
    """For tests: install a :class:`MemoryTracerProvider` (once per process, it stays) and return
    its exporter, emptied. Raises when another provider is installed."""
    current = trace.get_tracer_provider()
    if not isinstance(current, MemoryTracerProvider):
        install(MemoryTracerProvider())
        current = trace.get_tracer_provider()
        if not isinstance(current, MemoryTracerProvider):
            raise RuntimeError("another tracer provider is installed in this process")
    current.exporter.clear()
    return current.exporter


def tracer() -> trace.Tracer:
    """The application's tracer (from the global provider: a no-op one when tracing is off)."""
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def start_span(
    name: str,
    *,
    context: Context | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
) -> Iterator[Span]:
    """A span made current for the block. Exceptions are not recorded on it (their text can hold
    personal data): the caller sets the outcome (:func:`set_outcome`)."""
    with tracer().start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def set_outcome(span: Span, outcome: str, *, failed: bool) -> None:
    """The span's ``tandem.outcome`` and, when it ``failed``, an error status (no description)."""
    span.set_attribute(OUTCOME, outcome)
    if failed:
        span.set_status(Status(StatusCode.ERROR))


def inject(metadata: MutableMapping[str, Any]) -> None:
    """Write the current span's W3C trace context (``traceparent``, ``tracestate``) into ``metadata``.

    Writes nothing when there is no valid current span (tracing off).
    """
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    if valid_traceparent(carrier.get(TRACEPARENT)):
        metadata[TRACEPARENT] = carrier[TRACEPARENT]
        if valid_tracestate(carrier.get(TRACESTATE)):
            metadata[TRACESTATE] = carrier[TRACESTATE]


def extract(metadata: Mapping[str, Any] | None) -> Context:
    """The trace context of a message's ``metadata`` (a parent for the next span), or an empty
    context (the next span starts a new trace) when it has none or a malformed one."""
    carrier: dict[str, str] = {}
    if isinstance(metadata, Mapping) and valid_traceparent(metadata.get(TRACEPARENT)):
        carrier[TRACEPARENT] = metadata[TRACEPARENT]
        if valid_tracestate(metadata.get(TRACESTATE)):
            carrier[TRACESTATE] = metadata[TRACESTATE]
    return TraceContextTextMapPropagator().extract(carrier, context=Context())
