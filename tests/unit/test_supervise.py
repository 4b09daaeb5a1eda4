"""scripts/supervise.sh (the supervisor of `make run`) with stand-in servers: every server that
exits is started again, also two that die at once (the second ends while the supervisor sleeps
its back-off for the first: bash has reaped it by then, and a plain ``wait -n`` never saw it)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import ROOT

SCRIPT = """
set -euo pipefail
pids=()
. scripts/supervise.sh
restart() { start "$1" /dev/null bash -c 'echo "$0 $$" >> "$STARTS"; exec sleep 600' "$1"; }
restart a
restart b
restart c
supervise
"""


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    starts = tmp_path / "starts"
    starts.touch()
    process = subprocess.Popen(
        ["bash", "-c", SCRIPT],
        cwd=ROOT,
        env={**os.environ, "STARTS": str(starts)},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process, starts
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def started(starts: Path) -> list[tuple[str, int]]:
    return [(role, int(pid)) for role, pid in (line.split() for line in starts.read_text().splitlines())]


def wait_until(condition: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_servers_that_die_together_are_all_started_again(supervisor: tuple[subprocess.Popen[str], Path]) -> None:
    process, starts = supervisor
    wait_until(lambda: len(started(starts)) == 3)
    first = dict(started(starts))
    # a and b die at once (c keeps running); both come back, each once, c is left alone.
    os.kill(first["a"], signal.SIGKILL)
    os.kill(first["b"], signal.SIGKILL)
    wait_until(lambda: len(started(starts)) == 5)
    again = started(starts)[3:]
    assert sorted(role for role, _ in again) == ["a", "b"]
    assert all(alive(pid) for _, pid in again) and alive(first["c"])
    # Later deaths of a restarted server are seen too (its back-off grows: 2 s the second time).
    os.kill(dict(again)["a"], signal.SIGKILL)
    wait_until(lambda: len(started(starts)) == 6)
    assert started(starts)[5][0] == "a"
    time.sleep(0.5)
    assert len(started(starts)) == 6  # nothing else was restarted
    assert process.poll() is None
    os.killpg(process.pid, signal.SIGTERM)
    _, errors = process.communicate(timeout=10)
    lines = [line for line in errors.splitlines() if "starting it again" in line]
    assert [line.split()[1] for line in lines] == ["a", "b", "a"] or [line.split()[1] for line in lines] == [
        "b",
        "a",
        "a",
    ], errors
    assert "restart 2" in lines[-1] and "in 2 s" in lines[-1]
    assert "no such job" not in errors
