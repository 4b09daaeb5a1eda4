"""The faults-mid-load benchmark's pure parts (benchmarks/load/faults.py, issue 15): how a turn's
answer is classified, the recovery window, the error window, a phase's numbers, the history rule
under faults, Redis's command line, and a Service started again as it was. No servers."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.load import launcher
from benchmarks.load.faults import (
    CI_REDIS_ARGV,
    NEVER,
    Clock,
    HangingLlm,
    Load,
    Request,
    check_histories,
    check_history,
    classify,
    classify_session,
    error_shape,
    error_window,
    fault_numbers,
    postgres_version,
    recovery_seconds,
    redis_argv,
    render,
    segment,
    status_code_key,
    timeline,
)
from benchmarks.load.loadgen import gateway_conversation_id
from benchmarks.load.ordering import StoredEvent


def _error(code: str = "upstream_unavailable", message: str = "Please try again in a moment.") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "retry_after": None}}


# --- classification ---------------------------------------------------------------------------------


def test_error_shape_is_the_documented_one() -> None:
    assert error_shape(_error())
    assert not error_shape({"error": {"code": "x"}})  # no message
    assert not error_shape({"error": {"code": "", "message": "m"}})
    assert not error_shape({"detail": "Internal Server Error"})
    assert not error_shape(None)  # not JSON
    assert not error_shape(["error"])


@pytest.mark.parametrize(
    ("status", "body", "transport", "expected"),
    [
        (200, {"turn_id": "t", "messages": [{"text": "hi"}]}, None, ("ok", None)),
        (200, {"turn_id": "t", "messages": []}, None, ("silent", "empty_reply")),
        (200, None, None, ("silent", "bad_body")),
        (503, _error(), None, ("retryable", "upstream_unavailable")),
        (504, _error("upstream_timeout"), None, ("retryable", "upstream_timeout")),
        (502, _error("upstream_error"), None, ("retryable", "upstream_error")),
        (429, _error("rate_limited"), None, ("retryable", "rate_limited")),
        (400, _error("payload_not_offered"), None, ("refused", "payload_not_offered")),
        (500, _error("internal"), None, ("server_error", "internal")),
        (500, None, None, ("server_error", None)),  # an HTML 500 page
        (502, None, None, ("bad_error", None)),  # a proxy's page, not the gateway's JSON
        (503, {"detail": "busy"}, None, ("bad_error", None)),
        (501, _error("not_implemented"), None, ("bad_error", "not_implemented")),
        (None, None, "timeout", ("no_answer", "timeout")),
        (None, None, None, ("no_answer", "connection")),
    ],
)
def test_classify(status: int | None, body: Any, transport: str | None, expected: tuple[str, str | None]) -> None:
    assert classify(status, body, transport) == expected


def test_classify_session_wants_a_token() -> None:
    assert classify_session(201, {"token": "v1.a.b.c"}) == ("ok", None)
    assert classify_session(200, {"mode": "bearer"}) == ("silent", "bad_body")
    assert classify_session(503, _error("temporarily_unavailable")) == ("retryable", "temporarily_unavailable")
    assert classify_session(500, None) == ("server_error", None)


def test_status_code_key() -> None:
    assert status_code_key(_request(0, sent=0, outcome="retryable", status=503, code="x")) == "503 x"
    assert status_code_key(_request(0, sent=0, outcome="server_error", status=500, code=None)) == "500 -"
    assert status_code_key(_request(0, sent=0, outcome="no_answer", status=None, code="timeout")) == "no answer timeout"


# --- recovery and error windows ---------------------------------------------------------------------


def _steady(
    start: float, end: float, *, every: float = 0.1, failing: tuple[float, float] | None = None
) -> list[tuple[float, bool]]:
    """A turn every ``every`` s in [start, end), failed while inside ``failing``."""
    turns = []
    t = start
    while t < end - 1e-9:
        ok = failing is None or not failing[0] <= t < failing[1]
        turns.append((round(t, 3), ok))
        t += every
    return turns


def test_no_failure_recovers_at_once() -> None:
    assert recovery_seconds(_steady(10, 60), 10, 60) == 0.0


def test_recovery_is_the_start_of_the_first_good_window() -> None:
    # Failures from the fault (10 s) to 13.5 s: the first window starting on a whole second after
    # the fault with no failure starts at 14 s (4 s after the fault).
    turns = _steady(10, 60, failing=(10, 13.5))
    assert recovery_seconds(turns, 10, 60) == 4.0


def test_one_failure_in_a_busy_window_is_within_the_share() -> None:
    # 10 turns/s: a window holds 100 turns; one failure leaves 99 % OK.
    turns = _steady(10, 60, failing=(10.0, 10.05))
    assert sum(1 for _, ok in turns if not ok) == 1
    assert recovery_seconds(turns, 10, 60) == 0.0
    # Two failures in the first window: it is not good; the window after the second one is.
    turns = _steady(10, 60, failing=(10.0, 10.15))
    assert recovery_seconds(turns, 10, 60) == 1.0


def test_never_recovered_within_the_phase() -> None:
    assert recovery_seconds(_steady(10, 60, failing=(10, 55)), 10, 60) is None


def test_a_window_must_fit_and_hold_enough_turns() -> None:
    assert recovery_seconds(_steady(10, 15), 10, 15) is None  # no 10 s window before the end
    sparse = [(12.0, True), (14.0, True)]  # two turns: says nothing
    assert recovery_seconds(sparse, 10, 60) is None
    assert recovery_seconds(sparse, 10, 60, min_turns=2) == 0.0


def test_turns_before_the_fault_do_not_count() -> None:
    turns = _steady(0, 60, failing=(0, 10))
    assert recovery_seconds(turns, 10, 60) == 0.0


def _request(
    index: int,
    *,
    sent: float,
    answered: float | None = None,
    outcome: str = "ok",
    status: int | None = 200,
    code: str | None = None,
    conversation: int = 0,
    correlation_id: str | None = None,
    text: str | None = None,
    replies: tuple[str, ...] = (),
) -> Request:
    return Request(
        conversation=conversation,
        index=index,
        text=text if text is not None else f"turn {index}",
        sent=sent,
        answered=sent + 0.2 if answered is None else answered,
        status=status,
        outcome=outcome,
        code=code,
        error_shape=outcome in ("retryable", "refused"),
        correlation_id=correlation_id,
        reply_texts=replies,
    )


def test_error_window_is_by_answer_time_after_the_fault() -> None:
    requests = [
        _request(0, sent=5, outcome="retryable", status=503),  # before the fault: not in the window
        _request(1, sent=9.5, answered=10.5, outcome="no_answer", status=None),  # in flight at the fault
        _request(2, sent=12, answered=12.1, outcome="retryable", status=503),
        _request(3, sent=14, answered=14.2),
        _request(-1, sent=15, answered=15.1, outcome="retryable", status=503),  # a session opening: not a turn
    ]
    assert error_window(requests, 10, 60) == {"failed": 2, "first_s": 0.5, "last_s": 2.1, "seconds": 1.6}
    assert error_window(requests[3:], 10, 60) == {"failed": 0, "first_s": None, "last_s": None, "seconds": 0.0}


def test_segment_counts_errors_by_status_and_code() -> None:
    requests = [
        _request(0, sent=1),
        _request(1, sent=2, outcome="retryable", status=503, code="upstream_unavailable"),
        _request(2, sent=3, outcome="retryable", status=503, code="upstream_unavailable"),
        _request(3, sent=4, outcome="server_error", status=500),
        _request(4, sent=9),  # outside
    ]
    found = segment(requests, 0, 5)
    assert (found["turns"], found["ok"], found["failed"]) == (4, 1, 3)
    assert found["errors_by_status_code"] == {"500 -": 1, "503 upstream_unavailable": 2}
    assert found["by_outcome"] == {"ok": 1, "retryable": 2, "server_error": 1}
    assert found["ok_share"] == 0.25


def test_fault_numbers_split_before_during_after() -> None:
    requests = [_request(i, sent=0.5 * i, conversation=i) for i in range(120)]  # 0 .. 59.5 s
    # Turns sent from 10 to 12 s fail (5 of them), one with a 500.
    requests = [
        _request(r.index, sent=r.sent, outcome="retryable", status=503, code="upstream_unavailable")
        if 10 <= r.sent < 12
        else r
        for r in requests
    ]
    requests[22] = _request(22, sent=11.0, outcome="server_error", status=500)
    requests.append(_request(-1, sent=11.2, outcome="bad_error", status=502, conversation=999))
    numbers = fault_numbers(requests, phase_start=0, fault_at=10, phase_end=60)
    assert numbers["recovery_s"] == 2.0
    assert numbers["recovered"]
    assert numbers["before"]["turns"] == 20
    assert numbers["during"]["turns"] == 4 and numbers["during"]["failed"] == 4
    assert numbers["after"]["turns"] == 96 and numbers["after"]["failed"] == 0
    assert numbers["must_be_zero"] == {"server_error": 1, "bad_error": 1, "silent": 0, "no_answer": 0}
    assert set(numbers["must_be_zero"]) == set(NEVER)
    assert numbers["session_opens"]["attempted"] == 1
    assert numbers["error_window"]["failed"] == 4


def test_timeline_per_second_of_sending() -> None:
    requests = [_request(0, sent=0.2), _request(1, sent=0.9, outcome="retryable"), _request(2, sent=2.5)]
    requests.append(_request(-1, sent=1.0, outcome="retryable"))  # a session opening: left out
    assert timeline(requests, 3.0) == {"ok": [1, 0, 1, 0], "failed": [1, 0, 0, 0]}


# --- the history rule under faults ------------------------------------------------------------------


def _user(event_id: int, cid: str, text: str, at: float) -> StoredEvent:
    return StoredEvent(event_id, "user", {"text": text, "timestamp": at, "metadata": {"correlation_id": cid}})


def _bot(event_id: int, text: str, at: float) -> StoredEvent:
    return StoredEvent(event_id, "bot", {"text": text, "timestamp": at})


def _history(*turns: tuple[str, str, str]) -> list[StoredEvent]:
    """(correlation id, user text, bot text) per stored turn, one after the other."""
    events = [StoredEvent(0, "session_started", {"timestamp": 0.0})]
    for n, (cid, text, reply) in enumerate(turns):
        events.append(_user(2 * n + 1, cid, text, 10.0 * n + 1))
        events.append(_bot(2 * n + 2, reply, 10.0 * n + 2))
    return events


def _ok(index: int, cid: str) -> Request:
    return _request(index, sent=float(index), correlation_id=cid, replies=(f"reply {index}",))


def _failed(index: int, cid: str | None) -> Request:
    return _request(index, sent=float(index), outcome="retryable", status=503, correlation_id=cid)


def test_ok_turns_stored_once_in_order_hold() -> None:
    sent = [_ok(0, "a"), _ok(1, "b")]
    assert check_history(sent, _history(("a", "turn 0", "reply 0"), ("b", "turn 1", "reply 1"))) == {}


def test_a_lost_ok_turn_is_missing() -> None:
    sent = [_ok(0, "a"), _ok(1, "b")]
    assert check_history(sent, _history(("a", "turn 0", "reply 0"))) == {"missing": 1}


def test_a_failed_turn_may_be_stored_once_or_not_at_all() -> None:
    sent = [_ok(0, "a"), _failed(1, "b"), _failed(2, "c"), _ok(3, "d")]
    stored = _history(("a", "turn 0", "reply 0"), ("b", "turn 1", "half a turn"), ("d", "turn 3", "reply 3"))
    assert check_history(sent, stored) == {"failed_stored": 1, "failed_not_stored": 1}


def test_a_failed_turn_stored_twice_breaks_the_rule() -> None:
    sent = [_failed(0, "a"), _ok(1, "b")]
    stored = _history(("a", "turn 0", "x"), ("a", "turn 0", "x"), ("b", "turn 1", "reply 1"))
    assert check_history(sent, stored) == {"failed_stored": 1, "failed_duplicated": 1}


def test_an_ok_turn_stored_twice_or_reordered_breaks_the_rule() -> None:
    sent = [_ok(0, "a"), _ok(1, "b")]
    twice = _history(("a", "turn 0", "reply 0"), ("b", "turn 1", "reply 1"), ("b", "turn 1", "reply 1"))
    assert check_history(sent, twice) == {"duplicated": 1}
    reordered = _history(("b", "turn 1", "reply 1"), ("a", "turn 0", "reply 0"))
    assert check_history(sent, reordered) == {"out_of_order": 1}


def test_an_ok_turn_with_other_replies_is_interleaved() -> None:
    sent = [_ok(0, "a")]
    assert check_history(sent, _history(("a", "turn 0", "someone else's reply"))) == {"interleaved": 1}


def test_turns_without_a_known_id_allow_as_many_unmatched_events() -> None:
    sent = [_ok(0, "a"), _failed(1, None)]  # a timeout: the client never learnt its id
    stored = _history(("a", "turn 0", "reply 0"), ("zz", "turn 1", "late"))
    assert check_history(sent, stored) == {}
    stored.append(_user(99, "yy", "nobody sent this", 99.0))
    assert check_history(sent, stored) == {"unexpected": 1}


def test_check_histories_totals_violations_and_noted_kinds() -> None:
    requests = [
        _ok(0, "a"),
        _failed(1, "b"),
        _request(0, sent=0, conversation=1, correlation_id="c", replies=("reply 0",)),
        _request(-1, sent=0, conversation=2),  # a session opening: not a turn
    ]
    events = {"s0": _history(("a", "turn 0", "reply 0")), "s1": []}
    found = check_histories(requests, {0: "s0", 1: "s1"}, events)
    assert found["by_kind"]["missing"] == 1
    assert found["noted"]["failed_not_stored"] == 1
    assert (found["violations"], found["conversations_with_violations"], found["holds"]) == (1, 1, False)
    assert found["turns"] == 3 and found["ok_turns"] == 2
    assert found["examples"][0]["sender"] == "s1"


# --- command lines and restarts ---------------------------------------------------------------------


def test_redis_argv_restates_the_running_servers_settings() -> None:
    config = {
        "bind": "127.0.0.1 -::1",
        "port": "6379",
        "save": "",
        "appendonly": "no",
        "dir": "/var/lib/redis",
        "logfile": "/var/log/redis/ci.log",
    }
    assert redis_argv(config) == CI_REDIS_ARGV


def test_postgres_version_is_the_newest_main_cluster(tmp_path: Path) -> None:
    for version in ("9.6", "13", "15"):
        (tmp_path / version / "main").mkdir(parents=True)
    (tmp_path / "16").mkdir()  # no main cluster
    assert postgres_version(tmp_path) == "15"
    with pytest.raises(RuntimeError):
        postgres_version(tmp_path / "nothing")


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_a_service_starts_again_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launcher, "LOGS", tmp_path)
    argv = [sys.executable, "-c", "import os, time; print(os.environ['MARK'], flush=True); time.sleep(30)"]
    with launcher.Services() as services:
        first = services.start("sleeper", argv, env={"MARK": "hello", "PATH": "/usr/bin"}, cwd=tmp_path)
        other = services.start("other", [sys.executable, "-c", "import time; time.sleep(30)"], env={}, cwd=tmp_path)
        _wait_for(lambda: first.log.read_text().count("hello") == 1)
        again = services.restart(first)
        assert not first.alive() and again.alive() and again.pid != first.pid
        assert (again.argv, again.env, again.cwd, again.log) == (first.argv, first.env, first.cwd, first.log)
        assert services.started == [again, other]  # its place, so close() keeps the order
        _wait_for(lambda: first.log.read_text().count("hello") == 2)  # the log was appended to
    assert not again.alive() and not other.alive()


def test_render_has_a_row_per_fault() -> None:
    requests = [_request(i, sent=0.5 * i, conversation=i) for i in range(120)]
    phase = {
        "fault": "rasa-kill",
        "fault_at_s": 10.0,
        "injection_error": None,
        "healthy_after_s": 42.0,
        **fault_numbers(requests, phase_start=0, fault_at=10, phase_end=60),
    }
    results = {
        "command": "python -m benchmarks.load.faults",
        "date": "2026-12-02T19:10:00+00:00",
        "git_commit": "0123456789abcdef",
        "git_changes": [],
        "config": {"sessions": 40, "think_s": 2.0, "phase_seconds": 45.0},
        "faults": [phase],
        "history": check_histories(requests, {}, {}),
    }
    table = render(results)
    assert "| rasa-kill | 20 / 0 / 100 |" in table
    assert "**0 violations** (holds)" in table


def test_the_load_records_every_request_and_starts_new_conversations() -> None:
    """A mock gateway that fails every third turn with a 503 and one turn with an HTML 500."""
    calls = {"n": 0}

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/session":
            calls["n"] += 1
            return httpx.Response(201, json={"token": f"v1.session{calls['n']}.0.sig"})
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            return httpx.Response(503, json=_error(), headers={"X-Correlation-Id": f"c{calls['n']}"})
        if calls["n"] == 7:
            return httpx.Response(500, text="<html>Internal Server Error</html>")
        text = json.loads(request.content).get("text") or "button"
        return httpx.Response(
            200,
            json={"turn_id": "t", "messages": [{"text": f"re: {text}"}]},
            headers={"X-Correlation-Id": f"c{calls['n']}"},
        )

    async def run() -> Load:
        load = Load("http://gw", "secret", Clock(), sessions=2, think=0.0, transport=httpx.MockTransport(gateway))
        task = asyncio.create_task(load.run())
        while sum(1 for r in load.requests if r.is_turn) < 25:
            await asyncio.sleep(0.01)
        load.stop.set()
        await task
        return load

    load = asyncio.run(run())
    turns = [r for r in load.requests if r.is_turn]
    assert len(load.senders) >= 3  # a conversation of 10 turns ended and another began
    assert load.senders[0] == gateway_conversation_id("secret", "session1")
    outcomes = {r.outcome for r in turns}
    assert {"ok", "retryable", "server_error"} <= outcomes
    server_error = next(r for r in turns if r.outcome == "server_error")
    assert (server_error.status, server_error.code, server_error.error_shape) == (500, None, False)
    ok = next(r for r in turns if r.ok)
    assert ok.reply_texts == (f"re: {ok.text}",) and ok.correlation_id is not None
    assert all(r.answered >= r.sent for r in load.requests)


def test_the_hanging_llm_answers_then_accepts_and_never_answers() -> None:
    llm = HangingLlm()
    llm.start()
    try:
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        answered = httpx.post(f"{llm.server.base_url}/chat/completions", json=body, timeout=5)
        assert answered.status_code == 200
        assert json.loads(answered.json()["choices"][0]["message"]["content"])["answer"] is None
        llm.hanging = True
        with pytest.raises(httpx.ReadTimeout):  # connected, never answered
            httpx.post(f"{llm.server.base_url}/chat/completions", json=body, timeout=1)
        assert (llm.calls, llm.hung_calls) == (2, 1)
        assert llm.env()["LLM_BASE_URL"] == llm.server.base_url
    finally:
        llm.stop()
