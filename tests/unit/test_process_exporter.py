"""The process exporter against real processes: children spawned here, read back through the
collector exactly as a scrape reads them, and the exporter's command line served over HTTP."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tandem.metrics_http import serve_metrics
from tandem.process_exporter import (
    CPU_METRIC,
    MEMORY_METRIC,
    METRIC_NAMES,
    UP_METRIC,
    ProcessSpec,
    ProcReader,
    build_registry,
    parse_stat,
)

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t" * 24
# A child that holds ~64 MiB resident, burns ~0.4 s of CPU, says so, then waits to be killed.
BUSY_CHILD = """
import sys, time
block = bytearray(64 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
end = time.process_time() + 0.4
while time.process_time() < end:
    pass
print("ready", flush=True)
time.sleep(120)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(code: str = "import time; time.sleep(120)", *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)


@pytest.fixture
def busy_child() -> Iterator[subprocess.Popen[str]]:
    child = spawn(BUSY_CHILD)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        yield child
    finally:
        child.kill()
        child.wait()


@pytest.fixture
def sleeping_child() -> Iterator[subprocess.Popen[str]]:
    marker = f"tandem-px-{uuid.uuid4().hex}"
    child = spawn("import time; time.sleep(120)", marker)
    child.marker = marker  # type: ignore[attr-defined]
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def pidfile(tmp_path: Path, pid: int, name: str = "child.pid") -> Path:
    path = tmp_path / name
    path.write_text(f"{pid}\n")
    return path


def sample(registry: CollectorRegistry, metric: str, process: str) -> float | None:
    return registry.get_sample_value(metric, {"process": process})


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_running_child_reports_its_memory_and_cpu(tmp_path: Path, busy_child: subprocess.Popen[str]) -> None:
    registry = build_registry([ProcessSpec.parse(f"child={pidfile(tmp_path, busy_child.pid)}")])
    assert sample(registry, UP_METRIC, "child") == 1.0
    resident = sample(registry, MEMORY_METRIC, "child")
    assert resident is not None and resident >= 60 * 1024 * 1024
    # statm's resident pages are the kernel's VmRSS.
    assert abs(resident - vm_rss_bytes(busy_child.pid)) < 4 * 1024 * 1024
    cpu = sample(registry, CPU_METRIC, "child")
    assert cpu is not None and 0.3 <= cpu < 30
    # Every scrape reads again: the counter never goes back while the child lives.
    assert (sample(registry, CPU_METRIC, "child") or 0) >= cpu


def test_a_command_line_substring_finds_the_child_but_never_the_exporter(
    sleeping_child: subprocess.Popen[str],
) -> None:
    marker = sleeping_child.marker  # type: ignore[attr-defined]
    spec = ProcessSpec.parse(f"sleeper={marker}")
    assert spec.cmdline == marker and spec.pidfile is None
    registry = build_registry([spec])
    assert sample(registry, UP_METRIC, "sleeper") == 1.0
    assert (sample(registry, MEMORY_METRIC, "sleeper") or 0) > 1024 * 1024
    # Seen from the child itself (its cmdline holds the marker: it is the exporter then), no match.
    as_the_child = build_registry([spec], ProcReader(own_pid=sleeping_child.pid))
    assert sample(as_the_child, UP_METRIC, "sleeper") == 0.0


def test_a_pidfile_of_a_dead_pid_is_down_without_an_error(tmp_path: Path) -> None:
    child = spawn()
    path = pidfile(tmp_path, child.pid)
    child.kill()
    child.wait()
    registry = build_registry([ProcessSpec.parse(f"gone={path}")])
    assert sample(registry, UP_METRIC, "gone") == 0.0
    assert sample(registry, CPU_METRIC, "gone") is None
    assert sample(registry, MEMORY_METRIC, "gone") is None


def test_a_process_that_exits_between_scrapes_goes_down(tmp_path: Path) -> None:
    child = spawn()
    registry = build_registry([ProcessSpec.parse(f"child={pidfile(tmp_path, child.pid)}")])
    assert sample(registry, UP_METRIC, "child") == 1.0
    child.kill()
    child.wait()
    assert sample(registry, UP_METRIC, "child") == 0.0


def test_a_zombie_is_down(tmp_path: Path) -> None:
    child = spawn()
    try:
        child.send_signal(signal.SIGKILL)
        stat = Path(f"/proc/{child.pid}/stat")
        deadline = time.monotonic() + 5
        while parse_stat(stat.read_text()).state != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert parse_stat(stat.read_text()).state == "Z"  # not reaped yet: still in /proc
        registry = build_registry([ProcessSpec.parse(f"zombie={pidfile(tmp_path, child.pid)}")])
        assert sample(registry, UP_METRIC, "zombie") == 0.0
    finally:
        child.wait()


def test_a_pidfile_older_than_its_process_means_a_reused_pid(
    tmp_path: Path, sleeping_child: subprocess.Popen[str]
) -> None:
    path = pidfile(tmp_path, sleeping_child.pid)
    registry = build_registry([ProcessSpec.parse(f"child={path}")])
    assert sample(registry, UP_METRIC, "child") == 1.0
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    assert sample(registry, UP_METRIC, "child") == 0.0


@pytest.mark.parametrize("content", ["", "not-a-pid\n", "0\n", "-5\n", "\xff\xfe"])
def test_missing_or_garbled_pidfiles_are_down(tmp_path: Path, content: str) -> None:
    garbled = tmp_path / "garbled.pid"
    garbled.write_text(content, encoding="latin-1")
    registry = build_registry(
        [ProcessSpec.parse(f"garbled={garbled}"), ProcessSpec.parse(f"missing={tmp_path / 'missing.pid'}")]
    )
    assert sample(registry, UP_METRIC, "garbled") == 0.0
    assert sample(registry, UP_METRIC, "missing") == 0.0


def test_unreadable_proc_entries_are_down(tmp_path: Path) -> None:
    """A fake /proc: a process whose statm cannot be read, one whose stat is garbage, one that is fine."""
    proc = tmp_path / "proc"
    (proc / "stat").parent.mkdir()
    (proc / "stat").write_text("cpu  1 2 3 4\nbtime 1000\n")
    good = "10 (rasa (worker)) S 1 10 10 0 -1 0 0 0 0 0 250 150 0 0 20 0 3 0 500 0 0\n"
    for pid, stat, statm in ((10, good, "900 300 10 1 0 50 0\n"), (11, good, None), (12, "garbage", "1 2\n")):
        (proc / str(pid)).mkdir()
        (proc / str(pid) / "stat").write_text(stat.replace("10 (", f"{pid} (", 1))
        if statm is not None:
            (proc / str(pid) / "statm").write_text(statm)
    for pid in (10, 11, 12):
        # Written after the fake boot (btime 1000 + 500 ticks): not a reused pid.
        pidfile(tmp_path, pid, f"{pid}.pid")
    reader = ProcReader(proc)
    registry = build_registry([ProcessSpec.parse(f"p{pid}={tmp_path / f'{pid}.pid'}") for pid in (10, 11, 12)], reader)
    assert sample(registry, UP_METRIC, "p10") == 1.0
    assert sample(registry, CPU_METRIC, "p10") == pytest.approx(400 / os.sysconf("SC_CLK_TCK"))
    assert sample(registry, MEMORY_METRIC, "p10") == 300 * os.sysconf("SC_PAGE_SIZE")
    assert sample(registry, UP_METRIC, "p11") == 0.0
    assert sample(registry, UP_METRIC, "p12") == 0.0
    # No /proc at all: everything is down, nothing raises.
    empty = build_registry([ProcessSpec.parse("x=cmdline:anything")], ProcReader(tmp_path / "nowhere"))
    assert sample(empty, UP_METRIC, "x") == 0.0


def test_parse_stat_survives_parentheses_and_spaces_in_the_command_name() -> None:
    stat = parse_stat("42 (a) b (c)) R 7 42 42 0 -1 0 0 0 0 0 11 22 0 0 20 0 1 0 333 0 0")
    assert (stat.pid, stat.state, stat.ppid, stat.ticks, stat.start_ticks) == (42, "R", 7, 33, 333)


@pytest.mark.parametrize(
    ("text", "pidfile", "cmdline"),
    [
        ("rasa=var/run/rasa-0.pid", "var/run/rasa-0.pid", None),
        ("rasa=pidfile:/run/rasa", "/run/rasa", None),
        ("rasa=rasa run --port 5005", None, "rasa run --port 5005"),
        ("rasa=cmdline:server.pid", None, "server.pid"),
        ("rasa#0=a=b", None, "a=b"),
    ],
)
def test_process_specs(text: str, pidfile: str | None, cmdline: str | None) -> None:
    spec = ProcessSpec.parse(text)
    assert (str(spec.pidfile) if spec.pidfile else None, spec.cmdline) == (pidfile, cmdline)


@pytest.mark.parametrize("text", ["rasa", "=x.pid", "rasa=", "ra sa=x.pid", 'r"a=x.pid', "rasa=cmdline:"])
def test_bad_process_specs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"process|expected|substring"):
        ProcessSpec.parse(text)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        build_registry([ProcessSpec.parse("a=x.pid"), ProcessSpec.parse("a=y.pid")])


def test_nothing_is_read_before_a_scrape(tmp_path: Path) -> None:
    class CountingReader(ProcReader):
        reads = 0

        def stat(self, pid: int):  # type: ignore[no-untyped-def]
            CountingReader.reads += 1
            return super().stat(pid)

    registry = build_registry([ProcessSpec.parse(f"self={pidfile(tmp_path, os.getpid())}")], CountingReader())
    assert CountingReader.reads == 0
    text = generate_latest(registry).decode()
    assert CountingReader.reads > 0
    # Exactly the documented families, and nothing of the client library's defaults.
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert families == set(METRIC_NAMES)


def test_served_only_to_bearers_of_the_token(tmp_path: Path, sleeping_child: subprocess.Popen[str]) -> None:
    registry = build_registry([ProcessSpec.parse(f"child={pidfile(tmp_path, sleeping_child.pid)}")])
    port = free_port()
    server = serve_metrics(port, token=TOKEN, registry=registry)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=5)
        assert refused.value.code == 401
        assert b"tandem_process" not in refused.value.read()
        wrong = urllib.request.Request(url, headers={"Authorization": "Bearer " + "x" * 24})
        with pytest.raises(urllib.error.HTTPError) as refused_again:
            urllib.request.urlopen(wrong, timeout=5)
        assert refused_again.value.code == 401
        good = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(good, timeout=5) as answer:
            body = answer.read().decode()
        assert 'tandem_process_up{process="child"} 1.0' in body
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("token", [None, "", "too-short"])
def test_main_exits_2_without_a_usable_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, restore_root_logger: None, token: str | None
) -> None:
    from tandem.process_exporter import main

    monkeypatch.chdir(tmp_path)  # no .env
    if token is None:
        monkeypatch.delenv("PROCESS_METRICS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("PROCESS_METRICS_TOKEN", token)
    monkeypatch.setenv("PROCESS_METRICS_PORT", str(free_port()))
    assert main(["--process", "x=cmdline:anything"]) == 2


def test_the_command_serves_until_sigterm(tmp_path: Path, sleeping_child: subprocess.Popen[str]) -> None:
    port = free_port()
    env = {**os.environ, "PROCESS_METRICS_TOKEN": TOKEN, "PROCESS_METRICS_PORT": str(port), "PYTHONPATH": str(ROOT)}
    path = pidfile(tmp_path, sleeping_child.pid, "rasa-0.pid")
    exporter = subprocess.Popen(
        [sys.executable, "-m", "tandem.process_exporter", "--process", f"rasa={path}", "--process", "none=no-such.pid"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        deadline, body = time.monotonic() + 30, ""
        while time.monotonic() < deadline and not body:
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    body = answer.read().decode()
            except OSError:
                assert exporter.poll() is None, exporter.stderr.read() if exporter.stderr else ""
                time.sleep(0.1)
        assert 'tandem_process_up{process="rasa"} 1.0' in body
        assert 'tandem_process_up{process="none"} 0.0' in body
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=10) == 0
    finally:
        if exporter.poll() is None:
            exporter.kill()
            exporter.wait()
