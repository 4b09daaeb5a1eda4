"""The action server continues the gateway's trace: an action call is a span ``action <name>``
whose parent is the message metadata's ``traceparent``, and each tool call a child ``tool <name>``
(the real executor and the real toolbox)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.context import use_toolbox
from actions.server import CorrelatedExecutor
from tandem.ratelimit import InMemoryRateLimiter
from tandem.tools import Toolbox
from tests.analytics.test_tool_calls import ActionTwoLookups
from tests.unit.test_action_logs import SECRET_TEXT, action_call

from .conftest import attribute_values, named

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_ID = 0x00F067AA0BA902B7
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"


class ActionBroken(Action):
    def name(self) -> str:
        return "action_broken"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[Any]:
        raise KeyError(SECRET_TEXT)


@pytest.fixture
def executor(db: Any) -> Iterator[CorrelatedExecutor]:
    use_toolbox(Toolbox(sessions=db.sessions, settings=db.settings, limiter=InMemoryRateLimiter()))
    executor = CorrelatedExecutor()
    executor.register_action(ActionTwoLookups)
    executor.register_action(ActionBroken)
    yield executor
    use_toolbox(None)


async def test_an_action_call_continues_the_gateways_trace(
    spans: InMemorySpanExporter, executor: CorrelatedExecutor
) -> None:
    metadata = {"channel": "website", "correlation_id": "turn-7", "traceparent": TRACEPARENT}
    await executor.run(action_call("action_two_lookups", metadata))
    [action] = named(spans, "action action_two_lookups")
    assert action.context is not None and action.parent is not None
    assert action.context.trace_id == TRACE_ID
    assert action.parent.span_id == PARENT_ID and action.parent.is_remote
    assert action.attributes == {
        "tandem.action": "action_two_lookups",
        "tandem.correlation_id": "turn-7",
        "tandem.outcome": "ok",
    }
    tools = named(spans, "tool flight_status")
    assert len(tools) == 2
    for tool in tools:
        assert tool.parent is not None and tool.parent.span_id == action.context.span_id
        assert tool.context is not None and tool.context.trace_id == TRACE_ID
        assert isinstance((tool.attributes or {})["tandem.tool.duration_ms"], int)
    assert [(t.attributes or {})["tandem.outcome"] for t in tools] == ["ok", "not_found"]
    # A business "no" is not an error of the call.
    assert [t.status.status_code for t in tools] == [StatusCode.UNSET, StatusCode.UNSET]
    assert {(t.attributes or {})["tandem.caller.role"] for t in tools} == {"customer"}
    recorded = attribute_values(spans)
    assert "conv-logs" not in recorded and "X1234567" not in recorded  # the sender id, the text


async def test_without_a_valid_traceparent_an_action_starts_its_own_trace(
    spans: InMemorySpanExporter, executor: CorrelatedExecutor
) -> None:
    bad = f"00-{TRACE_ID:032x}-{0:016x}-01"  # an all-zero span id
    await executor.run(action_call("action_two_lookups", {"traceparent": bad}))
    await executor.run(action_call("action_two_lookups", None))
    actions = named(spans, "action action_two_lookups")
    assert len(actions) == 2
    assert [a.parent for a in actions] == [None, None]
    assert all(a.context is not None and a.context.trace_id != TRACE_ID for a in actions)
    assert all("tandem.correlation_id" not in (a.attributes or {}) for a in actions)


async def test_the_gateways_sampling_decision_is_followed(
    spans: InMemorySpanExporter, executor: CorrelatedExecutor
) -> None:
    unsampled = TRACEPARENT[:-2] + "00"
    await executor.run(action_call("action_two_lookups", {"traceparent": unsampled}))
    assert spans.get_finished_spans() == ()  # neither the action nor its tools are recorded


async def test_a_failing_action_is_an_error_span_without_the_error_text(
    spans: InMemorySpanExporter, executor: CorrelatedExecutor
) -> None:
    with pytest.raises(KeyError):
        await executor.run(action_call("action_broken", {"traceparent": TRACEPARENT}))
    [action] = named(spans, "action action_broken")
    assert (action.attributes or {})["tandem.outcome"] == "KeyError"
    assert action.status.status_code == StatusCode.ERROR and action.status.description is None
    assert not action.events
