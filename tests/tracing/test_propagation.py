"""The trace context in the message metadata: only a well-formed W3C ``traceparent`` (and its
``tracestate``) is kept by :func:`clean_metadata` (Rasa's gateway channel, the actions) and
continued by :func:`tandem.tracing.extract`; anything else is dropped and the next span starts a
new trace."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tandem import tracing
from tandem.conversation.metadata import clean_metadata
from tests.stack import ROOT

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{SPAN}-01"

MALFORMED: list[Any] = [
    f"00-{'0' * 32}-{SPAN}-01",  # an all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # an all-zero span id
    f"01-{TRACE}-{SPAN}-01",  # another version
    f"ff-{TRACE}-{SPAN}-01",  # the forbidden version
    f"00-{TRACE.upper()}-{SPAN}-01",  # upper-case hex
    f"00-{TRACE}-{SPAN}-1",  # a short flags field
    f"00-{TRACE[:-1]}-{SPAN}-01",  # a short trace id
    f"00-{TRACE}-{SPAN}-01-extra",
    f" {VALID}",
    f"{VALID}\n",
    f"00-{TRACE}-{SPAN[:-1]}g-01",  # not hex
    "",
    "x" * 55,
    55,
    None,
    [VALID],
    {"traceparent": VALID},
]


def test_a_valid_trace_context_is_kept() -> None:
    metadata = {"channel": "website", "traceparent": VALID, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}
    assert clean_metadata(metadata) == metadata
    context = trace.get_current_span(tracing.extract(metadata)).get_span_context()
    assert (context.trace_id, context.span_id, context.is_remote) == (int(TRACE, 16), int(SPAN, 16), True)
    assert context.trace_state.get("congo") == "t61rcWkgMzE"


@pytest.mark.parametrize("value", MALFORMED)
def test_a_malformed_traceparent_is_dropped(value: Any) -> None:
    metadata = {"channel": "website", "correlation_id": "turn-1", "traceparent": value, "tracestate": "a=b"}
    # Neither the traceparent nor a tracestate without one survives; the rest does.
    assert clean_metadata(metadata) == {"channel": "website", "correlation_id": "turn-1"}
    assert not trace.get_current_span(tracing.extract(metadata)).get_span_context().is_valid


@pytest.mark.parametrize(
    "state",
    ["a=b\nc=d", "=b", "A=b", "a=", "a=b=c", "a=b,", ",".join(f"k{i}=v" for i in range(33)), "k=" + "v" * 600, 7],
)
def test_a_malformed_tracestate_is_dropped_and_the_traceparent_kept(state: Any) -> None:
    assert clean_metadata({"traceparent": VALID, "tracestate": state}) == {"traceparent": VALID}


@pytest.mark.parametrize("metadata", [None, "traceparent", [], {}, {"traceparent": None}])
def test_extract_is_none_safe(metadata: Any) -> None:
    assert not trace.get_current_span(tracing.extract(metadata)).get_span_context().is_valid


def test_inject_writes_the_current_span_and_nothing_outside_one(spans: InMemorySpanExporter) -> None:
    outside: dict[str, Any] = {}
    tracing.inject(outside)
    assert outside == {}
    with tracing.start_span("gateway.turn") as span:
        inside: dict[str, Any] = {"channel": "website"}
        tracing.inject(inside)
    context = span.get_span_context()
    flags = f"{int(context.trace_flags):02x}"
    assert inside == {"channel": "website", "traceparent": f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags}"}


def test_the_rasa_channel_drops_a_malformed_traceparent() -> None:
    """tandem_rasa/channel.py's parse, in the Rasa environment (Python 3.10), on the raw body."""
    bodies = [
        {"sender": "s", "message": "hi", "metadata": {"channel": "website", "traceparent": VALID, "tracestate": "a=b"}},
        *({"sender": "s", "message": "hi", "metadata": {"channel": "website", "traceparent": v}} for v in MALFORMED),
    ]
    script = (
        "import json, sys\n"
        "from tandem_rasa.channel import GatewayInput\n"
        "class Request:\n"
        "    def __init__(self, body): self.body = body\n"
        "channel = GatewayInput('t' * 16)\n"
        "out = [channel.parse(Request(json.dumps(b).encode()))['metadata'] for b in json.load(sys.stdin)]\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(ROOT / ".venv-rasa" / "bin" / "python"), "-c", script],
        input=json.dumps(bodies),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, *rest = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == {"channel": "website", "traceparent": VALID, "tracestate": "a=b"}
    assert rest == [{"channel": "website"}] * len(MALFORMED)
