"""The load benchmark's pure parts (benchmarks/load): percentiles, turns/s, /proc parsing, the stage
breakdown, a turn's error classes and the table. No servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.load import report
from benchmarks.load.loadgen import RestTarget, timed_turn
from benchmarks.load.procstat import (
    Sample,
    Stat,
    parse_machine_busy_ticks,
    parse_stat,
    parse_status_rss_kib,
    process_tree,
    summarize,
)
from benchmarks.load.stages import action_ms, breakdown, gateway_upstream_ms
from benchmarks.load.stats import Turn, percentile, summarize_level, turns_per_second

# A /proc/<pid>/stat line whose comm holds a space and parentheses; utime 1500, stime 250.
STAT = (
    "4242 (rasa (worker) 1) S 4100 4242 4100 0 -1 4194560 91234 0 12 0 1500 250 0 0 20 0 37 0 "
    "441153 5368709120 290000 18446744073709551615 1 1 0 0 0 0 0 16781312 17058 0 0 0 17 1 0 0 0 0 0"
)
STATUS = "Name:\trasa\nState:\tS (sleeping)\nVmPeak:\t 5242880 kB\nVmRSS:\t 1160000 kB\nThreads:\t37\n"


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile(values, 99) == pytest.approx(4.96)
    assert percentile(values, 0) == 1.0 and percentile(values, 100) == 5.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_turns_per_second_counts_completed_turns_over_the_wall_time() -> None:
    assert turns_per_second(500, 20.0) == 25.0
    assert turns_per_second(3, 0.0) == 0.0


def _turn(latency: float, error: str | None = None, status: int | None = 200) -> Turn:
    return Turn(
        session=0, index=0, text="hi", latency_ms=latency, status=status, replies=0 if error else 1, error=error
    )


def test_a_level_counts_errors_and_keeps_failed_turns_in_the_percentiles() -> None:
    turns = [_turn(100.0), _turn(200.0), _turn(300.0), _turn(60000.0, "timeout", None), _turn(5.0, "status_500", 500)]
    level = summarize_level(turns, sessions=5, wall_seconds=60.0)
    assert level["attempted"] == 5 and level["completed"] == 3
    assert level["turns_per_s"] == 0.05
    assert level["errors"] == 2 and level["error_rate"] == 0.4
    assert level["errors_by_kind"] == {"status_500": 1, "timeout": 1}
    assert level["p50_ms"] == 200.0
    assert level["max_ms"] == 60000.0


def test_proc_stat_line_with_spaces_and_parentheses_in_comm() -> None:
    stat = parse_stat(STAT)
    assert (stat.pid, stat.ppid, stat.ticks) == (4242, 4100, 1750)
    assert parse_status_rss_kib(STATUS) == 1160000
    assert parse_status_rss_kib("Name:\tkthreadd\nState:\tS\n") == 0


def test_machine_busy_ticks_leave_out_idle_and_iowait() -> None:
    text = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\nintr 1 2 3\n"
    assert parse_machine_busy_ticks(text) == 100 + 5 + 50 + 3 + 2 + 1
    with pytest.raises(ValueError):
        parse_machine_busy_ticks("intr 1\n")


def test_a_role_is_its_process_tree_without_the_other_roles() -> None:
    # 10 is the load generator, parent of the servers 20 (with a worker 21) and 30.
    stats = {pid: Stat(pid, ppid, 0) for pid, ppid in [(10, 1), (20, 10), (21, 20), (30, 10), (99, 1)]}
    roots = frozenset({10, 20, 30})
    assert sorted(process_tree(20, stats, roots)) == [20, 21]
    assert process_tree(10, stats, roots) == [10]
    assert process_tree(77, stats, roots) == []


def test_cpu_percent_is_tick_delta_over_wall_time() -> None:
    samples = [
        Sample(time=0.0, role="rasa", pids=(1,), rss_kib=1024 * 100, ticks=0),
        Sample(time=0.5, role="rasa", pids=(1,), rss_kib=1024 * 300, ticks=50),  # 100 % in this interval
        Sample(time=1.0, role="rasa", pids=(1,), rss_kib=1024 * 200, ticks=50),  # idle
    ]
    summary = summarize(samples, clock_ticks=100)
    assert summary["cpu_percent"] == 50.0
    assert summary["cpu_max_percent"] == 100.0
    assert summary["rss_max_mib"] == 300.0 and summary["rss_mean_mib"] == 200.0
    assert summarize([]) == {}


async def test_a_turn_without_a_reply_or_with_an_error_status_is_an_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        message = json.loads(request.content)["message"]
        if message == "hi":
            return httpx.Response(200, json=[{"text": "Hey!"}])
        if message == "silence":
            return httpx.Response(200, json=[])
        return httpx.Response(503, json={"error": "busy"})

    target = RestTarget("http://bot.test", script=["hi", "silence", "boom"])
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        turns = [await timed_turn(target, client, "s1", 0, index) for index in range(3)]
    assert [(t.status, t.replies, t.error) for t in turns] == [
        (200, 1, None),
        (200, 0, "empty_reply"),
        (503, 0, "status_503"),
    ]


def test_stage_breakdown_joins_the_logs_on_the_turn_id(tmp_path: Path) -> None:
    gateway_log = tmp_path / "gateway.log"
    gateway_log.write_text(
        "\n".join(
            [
                json.dumps({"event": "turn", "turn_id": "a", "upstream_ms": 90.0}),
                "not json",
                json.dumps({"event": "turn", "turn_id": "b", "upstream_ms": 50.0}),
            ]
        )
    )
    action_log = tmp_path / "actions.log"
    action_log.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"event": "action", "action": "validate_flight_status_form", "duration_ms": 2, "correlation_id": "a"},
                {"event": "action", "action": "action_flight_status", "duration_ms": 8, "correlation_id": "a"},
                {"event": "action", "action": "action_handoff_returned", "duration_ms": 0},
            ]
        )
    )
    turns: list[dict[str, Any]] = [
        {"text": "Is AN204 on time today?", "client_ms": 100.0, "turn_id": "a", "error": None},
        {"text": "hi", "client_ms": 60.0, "turn_id": "b", "error": None},
        {"text": "hi", "client_ms": 30000.0, "turn_id": None, "error": "status_504"},
    ]
    parse = {"Is AN204 on time today?": [20.0, 30.0, 25.0], "hi": [15.0]}
    result = breakdown(turns, gateway_upstream_ms(gateway_log), action_ms(action_log), parse)
    assert result["turns_joined"] == 2
    assert result["measured"]["action_calls_per_turn"] == 1.0
    assert result["derived"]["gateway_overhead"]["mean_ms"] == 10.0  # (10 + 10) / 2
    # rest = Rasa turn − median parse − actions: 90 − 25 − 10 = 55 and 50 − 15 − 0 = 35
    assert result["derived"]["rasa_rest"]["mean_ms"] == 45.0
    shares = result["share_of_mean_turn"]  # of the mean whole turn, 80 ms
    assert shares == {"gateway": 0.125, "parse": 0.25, "actions": 0.062, "rest": 0.562}
    assert result["by_text"]["Is AN204 on time today?"]["action_calls"] == 2.0


def _level(sessions: int, turns_per_s: float, p95: float, errors: int = 0) -> dict[str, Any]:
    return {
        "sessions": sessions,
        "attempted": sessions * 5,
        "completed": sessions * 5 - errors,
        "turns_per_s": turns_per_s,
        "p50_ms": p95 / 2,
        "p95_ms": p95,
        "p99_ms": p95 * 1.2,
        "errors": errors,
        "error_rate": errors / (sessions * 5),
        "errors_by_kind": {"timeout": errors} if errors else {},
        "processes": {"rasa": {"rss_max_mib": 1119.4, "cpu_percent": 97.2}, "loadgen": {"rss_max_mib": 80.0}},
    }


def test_the_table_has_a_row_per_bot_and_level() -> None:
    results = {
        "command": "python -m benchmarks.load.run",
        "date": "2026-12-02T07:00:00+00:00",
        "git_commit": "3de8348a2893abcdef",
        "git_changes": [],
        "machine": {"nproc": 2, "cpu_model": "AMD EPYC", "memory_gib": 23.5, "rasa": "3.6.21"},
        "config": {"turns": 5},
        "bots": {
            "stock": {"script": ["hi", "bye"], "git_commit": "x", "levels": [_level(1, 25.8, 44.0)]},
            "tandem": {"script": ["hi"], "git_commit": "x", "levels": [_level(100, 15.9, 22000.0, errors=3)]},
        },
    }
    table = report.render(results)
    assert "| stock `rasa init` bot (REST channel) | 1 | 5 | 25.8 | 22 ms | 44 ms | 53 ms | 0 (0.0 %) |" in table
    assert "| 100 | 500 | 15.9 | 11.00 s | 22.00 s | 26.40 s | 3 (0.6 %) timeout 3 |" in table
    assert "1119 MiB · 97 %" in table and "80 MiB · — %" in table
    assert "action server" not in table  # no bot had one in this run
    assert "different runs" not in table and "working tree changed" not in table
    results["bots"]["stock"]["run"] = "2026-11-30T10:00:00+00:00"  # kept from an earlier `--only tandem`
    results["bots"]["stock"]["git_commit"] = "f906996"
    table = report.render(results)
    assert "different runs" in table and "working tree changed" in table
    assert report.fmt_ms(None) == "—" and report.fmt_ms(999.4) == "999 ms" and report.fmt_ms(1500.0) == "1.50 s"
