"""Every tool call of an action call lands in the tracker (``tool_calls``) and in the metrics,
through the action server's real executor and the real toolbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.common import ToolFailed, call_tool, caller_of
from actions.context import toolbox, use_toolbox
from actions.server import CorrelatedExecutor
from tandem.analytics import toolcalls
from tandem.analytics.metrics import ToolMetrics, tool_outcome
from tandem.errors import NotFound, Unavailable
from tandem.ratelimit import InMemoryRateLimiter
from tandem.tools import Services, Toolbox
from tests.unit.test_action_logs import action_call


class ActionTwoLookups(Action):
    """A flight status that exists, then one that does not (a business "no", not a failure)."""

    def name(self) -> str:
        return "action_two_lookups"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[Any]:
        caller = caller_of(tracker)
        try:
            await call_tool(dispatcher, toolbox().flight_status(caller, flight_number="AN204", date=date.today()))
            await call_tool(dispatcher, toolbox().flight_status(caller, flight_number="AN999", date=date.today()))
        except (NotFound, ToolFailed):
            pass
        return []


class ActionNoTools(Action):
    def name(self) -> str:
        return "action_no_tools"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[Any]:
        return []


@pytest.fixture
def registry(db: Any) -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    box = Toolbox(
        sessions=db.sessions, settings=db.settings, limiter=InMemoryRateLimiter(), metrics=ToolMetrics(registry)
    )
    use_toolbox(box)
    yield registry
    use_toolbox(None)


def _events(result: Any) -> list[dict[str, Any]]:
    return list(result.events if hasattr(result, "events") else result["events"])


async def test_an_action_calls_tool_calls_are_appended_as_one_slot_event(registry: CollectorRegistry) -> None:
    executor = CorrelatedExecutor()
    executor.register_action(ActionTwoLookups)
    executor.register_action(ActionNoTools)
    events = _events(await executor.run(action_call("action_two_lookups", {"channel": "website"})))
    [record] = [e for e in events if e.get("name") == "tool_calls"]
    assert record["event"] == "slot"
    assert [(c["tool"], c["outcome"]) for c in record["value"]] == [
        ("flight_status", "ok"),
        ("flight_status", "not_found"),
    ]
    assert all(isinstance(c["ms"], int) and c["ms"] >= 0 for c in record["value"])
    # No tools, no event.
    assert _events(await executor.run(action_call("action_no_tools", {}))) == []
    value = registry.get_sample_value
    assert value("tandem_tool_calls_total", {"tool": "flight_status", "outcome": "ok"}) == 1
    assert value("tandem_tool_calls_total", {"tool": "flight_status", "outcome": "not_found"}) == 1
    assert value("tandem_tool_errors_total", {"tool": "flight_status"}) is None  # a "no" is not an error
    assert value("tandem_tool_latency_seconds_count", {"tool": "flight_status"}) == 2


def test_outcome_codes_and_the_collection_scope() -> None:
    assert [tool_outcome(x) for x in ("ok", "NotFound", "Unavailable", "KeyError")] == [
        "ok",
        "not_found",
        "unavailable",
        "error",
    ]
    toolcalls.record("outside", "ok", 1)  # outside a collection: nowhere to go, no error
    with toolcalls.collecting() as calls:
        for _ in range(toolcalls.MAX_CALLS_PER_ACTION + 5):
            toolcalls.record("t", "ok", -3)
    assert len(calls) == toolcalls.MAX_CALLS_PER_ACTION and calls[0] == {"tool": "t", "outcome": "ok", "ms": 0}


async def test_a_failed_tool_is_an_error_in_the_slot_and_the_metrics(db: Any) -> None:
    def down(*_: Any, **__: Any) -> Any:
        raise Unavailable("the flight database is down")

    registry = CollectorRegistry()
    box = Toolbox(
        sessions=db.sessions,
        settings=db.settings,
        limiter=InMemoryRateLimiter(),
        metrics=ToolMetrics(registry),
        services=Services(flight_status=down),
    )
    use_toolbox(box)
    try:
        executor = CorrelatedExecutor()
        executor.register_action(ActionTwoLookups)
        events = _events(await executor.run(action_call("action_two_lookups", {"channel": "website"})))
    finally:
        use_toolbox(None)
    [record] = [e for e in events if e.get("name") == "tool_calls"]
    assert [(c["tool"], c["outcome"]) for c in record["value"]] == [("flight_status", "unavailable")]
    assert registry.get_sample_value("tandem_tool_errors_total", {"tool": "flight_status"}) == 1
