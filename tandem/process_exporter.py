"""CPU and memory of other processes, read from /proc at scrape time, as Prometheus metrics.

Rasa Open Source serves no ``/metrics``, so its CPU time and resident memory are read from the
outside: this exporter names each watched process by a pidfile or by a piece of its command line,

    python -m tandem.process_exporter --process rasa=var/run/rasa-0.pid --process actions="actions.server"

and serves, for bearers of ``PROCESS_METRICS_TOKEN`` on 127.0.0.1:``PROCESS_METRICS_PORT`` (9108):

- ``tandem_process_cpu_seconds_total{process}``: ``utime + stime`` of ``/proc/<pid>/stat`` over
  ``SC_CLK_TCK`` (the threads' time included, the reaped children's not);
- ``tandem_process_resident_memory_bytes{process}``: ``/proc/<pid>/statm``'s resident pages × page size;
- ``tandem_process_up{process}``: 1 while the process runs, 0 when it is gone (no pidfile, a dead or
  reused pid, a zombie, no matching command line, an unreadable ``/proc`` entry).

A value that ends in ``.pid`` (or starts with ``pidfile:``) is a pidfile; anything else (or with a
``cmdline:`` prefix) is a substring of the NUL-separated arguments joined by spaces, and every
matching process counts (summed), except this exporter and its ancestors, whose own command lines
hold the substring. A pidfile older than its process's start means the pid was reused: down.

Everything is read when Prometheus scrapes (a custom collector): no thread, no I/O at import.
In docker-compose each service is alone in its container, so this exporter serves ``make run``
(one machine, several processes); cAdvisor is not part of the stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from tandem.logs import configure_json_logging
from tandem.metrics_http import MIN_TOKEN_CHARS, serve_metrics
from tandem.settings import LogSettings, ProcessExporterSettings

log = logging.getLogger("tandem.process_exporter")

PROC = Path("/proc")
CPU_METRIC = "tandem_process_cpu_seconds_total"
MEMORY_METRIC = "tandem_process_resident_memory_bytes"
UP_METRIC = "tandem_process_up"
# The names a scrape shows (Counter families are named without ``_total``; their sample has it).
METRIC_NAMES = frozenset({CPU_METRIC, MEMORY_METRIC, UP_METRIC})
PIDFILE_PREFIX = "pidfile:"
CMDLINE_PREFIX = "cmdline:"
# /proc/stat's btime has a resolution of one second and a shell writes `$!` just after the fork.
_PIDFILE_SLACK_SECONDS = 2.0
_GONE_STATES = frozenset({"Z", "X", "x"})  # zombie, dead


@dataclass(frozen=True)
class ProcessSpec:
    """One watched process: its metric label and how to find it (a pidfile or a command-line piece)."""

    name: str
    pidfile: Path | None = None
    cmdline: str | None = None

    @classmethod
    def parse(cls, text: str) -> ProcessSpec:
        """``NAME=PIDFILE`` (``*.pid`` or ``pidfile:PATH``) or ``NAME=SUBSTRING`` (or ``cmdline:SUBSTRING``)."""
        name, sep, target = text.partition("=")
        name = name.strip()
        if not sep or not name or not target:
            raise ValueError(f"expected NAME=PIDFILE or NAME=CMDLINE-SUBSTRING, got {text!r}")
        if not all(c.isalnum() or c in "_-.#" for c in name):
            raise ValueError(f"a process name is letters, digits and _-.#, got {name!r}")
        if target.startswith(CMDLINE_PREFIX):
            substring = target.removeprefix(CMDLINE_PREFIX)
            if not substring:
                raise ValueError(f"empty command-line substring in {text!r}")
            return cls(name=name, cmdline=substring)
        if target.startswith(PIDFILE_PREFIX) or target.endswith(".pid"):
            return cls(name=name, pidfile=Path(target.removeprefix(PIDFILE_PREFIX)))
        return cls(name=name, cmdline=target)


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` this exporter needs."""

    pid: int
    state: str
    ppid: int
    ticks: int  # utime + stime
    start_ticks: int  # clock ticks after boot


def parse_stat(line: str) -> ProcStat:
    """A ``/proc/<pid>/stat`` line. ``comm`` (in parentheses) may hold spaces and ')': split after the last one."""
    pid = int(line.split(" ", 1)[0])
    rest = line[line.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state), so field n is rest[n - 3]: ppid 4, utime 14, stime 15, starttime 22.
    return ProcStat(
        pid=pid, state=rest[0], ppid=int(rest[1]), ticks=int(rest[11]) + int(rest[12]), start_ticks=int(rest[19])
    )


@dataclass(frozen=True)
class Usage:
    """What one scrape found for one watched process (all zero when it is down)."""

    up: bool
    cpu_seconds: float = 0.0
    resident_bytes: int = 0


DOWN = Usage(up=False)


class ProcReader:
    """Reads ``/proc`` (or a copy of it, in tests). Every read that fails says "not there" instead of raising."""

    def __init__(self, proc: Path = PROC, *, own_pid: int | None = None) -> None:
        self.proc = proc
        self.own_pid = os.getpid() if own_pid is None else own_pid
        self.clock_ticks = os.sysconf("SC_CLK_TCK")
        self.page_size = os.sysconf("SC_PAGE_SIZE")

    def stat(self, pid: int) -> ProcStat | None:
        try:
            return parse_stat((self.proc / str(pid) / "stat").read_text())
        except (OSError, ValueError, IndexError):
            return None

    def resident_bytes(self, pid: int) -> int | None:
        try:
            return int((self.proc / str(pid) / "statm").read_text().split()[1]) * self.page_size
        except (OSError, ValueError, IndexError):
            return None

    def cmdline(self, pid: int) -> str | None:
        try:
            raw = (self.proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")

    def pids(self) -> Iterator[int]:
        try:
            entries = list(self.proc.iterdir())
        except OSError:
            return
        for entry in entries:
            if entry.name.isdigit():
                yield int(entry.name)

    def boot_time(self) -> float | None:
        try:
            for line in (self.proc / "stat").read_text().splitlines():
                if line.startswith("btime "):
                    return float(line.split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return None

    def own_lineage(self) -> frozenset[int]:
        """This process and its ancestors: their command lines name what they watch."""
        lineage, pid = set(), self.own_pid
        while pid > 0 and pid not in lineage:
            lineage.add(pid)
            stat = self.stat(pid)
            if stat is None:
                break
            pid = stat.ppid
        return frozenset(lineage)


def _pid_from_file(path: Path) -> tuple[int, float] | None:
    """The pid a pidfile holds and the file's modification time; None when missing, unreadable or not a pid."""
    try:
        text = path.read_text().strip()
        mtime = path.stat().st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    first = text.split()[0] if text else ""
    if not first.isdigit() or int(first) <= 0:
        return None
    return int(first), mtime


def find_pids(spec: ProcessSpec, reader: ProcReader) -> list[int]:
    """The live pids ``spec`` names now (none when it names nothing that runs)."""
    if spec.pidfile is not None:
        found = _pid_from_file(spec.pidfile)
        if found is None:
            return []
        pid, written = found
        stat = reader.stat(pid)
        if stat is None or stat.state in _GONE_STATES:
            return []
        boot = reader.boot_time()
        # A process that started after its pidfile was written is another one that got the old pid.
        if boot is not None and boot + stat.start_ticks / reader.clock_ticks > written + _PIDFILE_SLACK_SECONDS:
            return []
        return [pid]
    assert spec.cmdline is not None  # ProcessSpec.parse sets one of the two
    excluded = reader.own_lineage()
    matches = []
    for pid in reader.pids():
        if pid in excluded:
            continue
        cmdline = reader.cmdline(pid)
        if cmdline and spec.cmdline in cmdline:
            stat = reader.stat(pid)
            if stat is not None and stat.state not in _GONE_STATES:
                matches.append(pid)
    return sorted(matches)


def measure(spec: ProcessSpec, reader: ProcReader) -> Usage:
    """CPU seconds and resident bytes of the processes ``spec`` names, summed; :data:`DOWN` when none runs.

    A process that exits between two reads is left out of the sum; when every one of them has, the
    watched process is down.
    """
    cpu_ticks, resident, seen = 0, 0, 0
    for pid in find_pids(spec, reader):
        stat = reader.stat(pid)
        memory = reader.resident_bytes(pid)
        if stat is None or memory is None or stat.state in _GONE_STATES:
            continue
        cpu_ticks += stat.ticks
        resident += memory
        seen += 1
    if not seen:
        return DOWN
    return Usage(up=True, cpu_seconds=cpu_ticks / reader.clock_ticks, resident_bytes=resident)


class ProcessCollector(Collector):
    """Collects :data:`METRIC_NAMES` for each watched process when the registry is scraped."""

    def __init__(self, specs: Iterable[ProcessSpec], reader: ProcReader | None = None) -> None:
        self.specs = tuple(specs)
        names = [spec.name for spec in self.specs]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique, got {names}")
        self.reader = reader or ProcReader()

    def _families(self) -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily(CPU_METRIC, "CPU time (user + system) of the watched process", labels=["process"]),
            GaugeMetricFamily(MEMORY_METRIC, "Resident memory of the watched process", labels=["process"]),
            GaugeMetricFamily(UP_METRIC, "Whether the watched process runs (1) or not (0)", labels=["process"]),
        )

    def describe(self) -> Iterator[Metric]:
        # Registration asks for the names only: no /proc reads before the first scrape.
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        cpu, memory, up = self._families()
        for spec in self.specs:
            usage = measure(spec, self.reader)
            up.add_metric([spec.name], 1.0 if usage.up else 0.0)
            if usage.up:
                cpu.add_metric([spec.name], usage.cpu_seconds)
                memory.add_metric([spec.name], float(usage.resident_bytes))
        yield cpu
        yield memory
        yield up


def build_registry(specs: Iterable[ProcessSpec], reader: ProcReader | None = None) -> CollectorRegistry:
    """A registry holding only the process collector (no client-library defaults)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ProcessCollector(specs, reader))
    return registry


def _spec(text: str) -> ProcessSpec:
    try:
        return ProcessSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tandem.process_exporter", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--process",
        dest="processes",
        action="append",
        type=_spec,
        required=True,
        metavar="NAME=PIDFILE|NAME=CMDLINE-SUBSTRING",
        help="a process to watch (repeatable): rasa=var/run/rasa-0.pid, actions=actions.server",
    )
    args = parser.parse_args(argv)
    configure_json_logging(LogSettings().log_level)
    try:
        settings = ProcessExporterSettings()
        registry = build_registry(args.processes)
    except (ValidationError, ValueError) as error:
        log.error("invalid configuration: %s", error)
        return 2
    token = settings.process_metrics_token.get_secret_value() if settings.process_metrics_token else ""
    if len(token) < MIN_TOKEN_CHARS:
        log.error("PROCESS_METRICS_TOKEN is required (%d+ characters): no metrics without one", MIN_TOKEN_CHARS)
        return 2
    try:
        server = serve_metrics(settings.process_metrics_port, token=token, registry=registry)
    except OSError as error:
        log.error("cannot listen on 127.0.0.1:%s: %s", settings.process_metrics_port, error)
        return 1
    log.info(
        "serving process metrics on 127.0.0.1:%s/metrics for %s",
        settings.process_metrics_port,
        ", ".join(spec.name for spec in args.processes),
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
