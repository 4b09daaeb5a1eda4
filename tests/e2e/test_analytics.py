"""Done when (issue 16): a scripted mix of conversations through the real Rasa and action server,
then ``python -m tandem.cli kpi --json`` gives the numbers the mix implies, the same from the
tracker store and through RabbitMQ (Rasa's Pika broker → ``analytics consume`` → the analytics
tables), and the consumer's metrics carry the dashboards' series.

The stack's Rasa publishes to a queue of this run's own (tests/stack.py); the consumer runs here as
the real command. The mix's sessions are picked out of the shared tracker store by time
(``--since`` / ``--until`` around the mix: tests run one at a time).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.stack import ROOT, Stack, buttons, free_port, new_sender, sample_1_text, stop, texts

pytestmark = pytest.mark.e2e


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def _kpi(stack: Stack, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tandem.cli", "kpi", "--json", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _say(stack: Stack, me: str, message: str, channel: str) -> list[dict[str, Any]]:
    return stack.say(me, message, metadata={"channel": channel, "correlation_id": uuid.uuid4().hex})


def _mix(stack: Stack) -> None:
    """Six sessions: a booking rated 5, a lookup, a FAQ rated 2 (Slack), a refusal (Telegram), a
    handoff, and a greeting alone."""
    me = new_sender()
    _say(stack, me, sample_1_text(), "website")
    options = buttons(_say(stack, me, '/inform{"cabin": "economy"}', "website"))
    assert options
    _say(stack, me, options[0]["payload"], "website")
    _say(stack, me, "Smith", "website")
    _say(stack, me, "jane.smith@example.com", "website")
    assert "booking reference is" in texts(_say(stack, me, "/affirm", "website"))
    assert "rate" in texts(_say(stack, me, "bye", "website"))
    _say(stack, me, '/rate{"rating": 5}', "website")

    me = new_sender()
    _say(stack, me, "What's the status of booking AB12CD?", "website")
    assert "AB12CD" in texts(_say(stack, me, "Smith", "website"))

    me = new_sender()
    assert texts(_say(stack, me, "how much luggage can I bring?", "slack"))
    assert "rate" in texts(_say(stack, me, "bye", "slack"))
    _say(stack, me, '/rate{"rating": 2}', "slack")

    me = new_sender()
    assert texts(_say(stack, me, "Write me a poem about cats", "telegram"))

    me = new_sender()
    _say(stack, me, "hi", "website")
    assert "ticket #" in texts(_say(stack, me, "I want to talk to a human", "website"))

    _say(stack, new_sender(), "hello", "website")


def test_the_kpi_report_of_a_scripted_mix_through_the_tracker_store_and_rabbitmq(stack: Stack) -> None:
    since = time.time()
    _mix(stack)
    until = time.time() + 0.001
    window = ("--since", _iso(since), "--until", _iso(until))
    from_tracker = _kpi(stack, *window)

    metrics_port, metrics_token = free_port(), uuid.uuid4().hex
    env = {**stack.env, "ANALYTICS_METRICS_PORT": str(metrics_port), "ANALYTICS_METRICS_TOKEN": metrics_token}
    consumer = subprocess.Popen(
        [sys.executable, "-m", "tandem.cli", "analytics", "consume"],
        cwd=ROOT,
        env=env,
        stdout=(ROOT / "tests" / "artifacts" / "analytics.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        from_broker: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert consumer.poll() is None, "the consumer exited"
            from_broker = _kpi(stack, *window, "--source", "analytics")
            if from_broker == from_tracker:
                break
            time.sleep(1)
        assert from_broker == from_tracker  # the broker path reports what the tracker store does

        report = from_tracker
        assert report["sessions"] == 6 and report["engaged_sessions"] == 5
        assert report["containment_rate"] == 0.8
        assert report["task_success_rate"] == 0.6  # booking, lookup, FAQ
        assert report["handoff_rate"] == 0.2 and report["handoffs_by_reason"] == {"user_request": 1}
        assert report["abandonment_rate"] == 0.0  # none is over yet: an hour has not passed
        assert (report["csat"], report["csat_mean"], report["csat_response_rate"]) == (0.5, 3.5, 1.0)
        assert report["tool_success_rate"] == 1.0 and report["tool_calls"] >= 4
        assert report["cache_hit_rate"] is None and report["cost_per_conversation"] == 0.0  # no LLM here
        assert report["error_rate"] == 0.0
        outcomes = report["outcomes"]
        assert outcomes["booking_created"] == 1 and outcomes["booking_shown"] == 1 and outcomes["handoff"] == 1
        assert outcomes["refused"] == 1
        assert outcomes.get("faq_answered", 0) + outcomes.get("knowledge_answered", 0) == 1
        assert report["fallback_turns_by_stage"].get("refuse") == 1
        assert report["channels"] == {"slack": 1, "telegram": 1, "website": 4}
        assert report["turn_latency_p95_ms"] > 0 and report["first_response_p50_ms"] > 0

        slack = _kpi(stack, *window, "--channel", "slack")
        assert (slack["sessions"], slack["csat"], slack["task_success_rate"]) == (1, 0.0, 1.0)
        assert slack == _kpi(stack, *window, "--channel", "slack", "--source", "analytics")

        metrics = httpx.get(
            f"http://127.0.0.1:{metrics_port}/metrics", headers={"Authorization": f"Bearer {metrics_token}"}, timeout=10
        ).text
        for series in (
            'tandem_task_outcomes_total{channel="website",outcome="booking_created"}',
            'tandem_handoffs_total{reason="user_request"}',
            'tandem_csat_ratings_total{channel="slack",rating="2"}',
            'tandem_fallback_turns_total{stage="refuse"}',
            "tandem_intent_confidence_bucket",
            "tandem_rasa_turn_seconds_bucket",
            'tandem_kpi_sessions{channel="all"}',
        ):
            assert series in metrics, series
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).status_code == 401
    finally:
        stop(consumer)
