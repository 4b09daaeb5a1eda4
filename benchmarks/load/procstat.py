"""Process metrics from /proc: RSS and CPU time of each bot's processes, sampled every 0.5 s.

A role (``rasa``, ``actions``, ``gateway``, ``loadgen``) is one or more root pids and their
descendants, summed: the servers run as single processes, so a role is one pid, or one per Rasa
replica (``rasa`` with two replicas is both together; ``rasa#0`` and ``rasa#1`` are each alone,
details that :func:`main_roles` leaves out of the totals). RSS comes from
``/proc/<pid>/status`` (``VmRSS``); CPU time from ``/proc/<pid>/stat`` (``utime`` + ``stime``, in
clock ticks). CPU % over a window = Δ(utime + stime) / clock ticks per second / wall seconds × 100,
so 100 % is one core busy (the machine has ``nproc`` × 100 %).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tandem.process_exporter import parse_stat as parse_proc_stat

# A role's root pids: one, or several (the Rasa replicas).
Roots = int | tuple[int, ...]


def root_pids(roots: Roots) -> tuple[int, ...]:
    return (roots,) if isinstance(roots, int) else tuple(roots)


def main_roles(roles: Mapping[str, Roots]) -> dict[str, Roots]:
    """The roles without the per-replica details (``rasa#0``): each process counted once."""
    return {role: roots for role, roots in roles.items() if "#" not in role}


def all_roots(roles: Mapping[str, Roots]) -> frozenset[int]:
    return frozenset(pid for roots in roles.values() for pid in root_pids(roots))


PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
INTERVAL = 0.5


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    ticks: int  # utime + stime


def parse_stat(line: str) -> Stat:
    """The pid, parent and CPU ticks of a ``/proc/<pid>/stat`` line (the process exporter's parser)."""
    stat = parse_proc_stat(line)
    return Stat(pid=stat.pid, ppid=stat.ppid, ticks=stat.ticks)


def parse_status_rss_kib(text: str) -> int:
    """``VmRSS`` of a ``/proc/<pid>/status`` text, in KiB (0 for a zombie or kernel thread)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def parse_machine_busy_ticks(text: str) -> int:
    """Busy clock ticks of all CPUs from ``/proc/stat``'s ``cpu`` line (everything but idle and iowait)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            fields = [int(v) for v in line.split()[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
            return sum(fields[:8]) - fields[3] - fields[4]
    raise ValueError("no cpu line in /proc/stat")


def machine_busy_ticks(proc: Path = PROC) -> int:
    return parse_machine_busy_ticks((proc / "stat").read_text())


def read_stat(pid: int, proc: Path = PROC) -> Stat | None:
    try:
        return parse_stat((proc / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def read_rss_kib(pid: int, proc: Path = PROC) -> int:
    try:
        return parse_status_rss_kib((proc / str(pid) / "status").read_text())
    except OSError:
        return 0


def read_all_stats(proc: Path = PROC) -> dict[int, Stat]:
    stats = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = read_stat(int(entry.name), proc)
            if stat is not None:
                stats[stat.pid] = stat
    return stats


def process_tree(root: Roots, stats: dict[int, Stat], exclude: frozenset[int] = frozenset()) -> list[int]:
    """``root`` (one pid or several) and its descendants among ``stats`` (one scan of /proc),
    without the subtrees of ``exclude`` (the other roles: the servers are children of the load
    generator)."""
    roots = set(root_pids(root))
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    tree, todo, seen = [], list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        if pid in stats and (pid in roots or pid not in exclude):
            tree.append(pid)
            todo.extend(children.get(pid, []))
    return tree


@dataclass(frozen=True)
class Sample:
    time: float  # time.monotonic()
    role: str
    pids: tuple[int, ...]
    rss_kib: int
    ticks: int


def sample_role(
    role: str, root: Roots, stats: dict[int, Stat], exclude: frozenset[int] = frozenset(), proc: Path = PROC
) -> Sample:
    pids = tuple(process_tree(root, stats, exclude))
    ticks = sum(stats[p].ticks for p in pids)
    return Sample(time.monotonic(), role, pids, sum(read_rss_kib(p, proc) for p in pids), ticks)


def summarize(samples: list[Sample], clock_ticks: int = CLOCK_TICKS) -> dict[str, Any]:
    """RSS max / mean (MiB) and CPU % (mean over the window, and the busiest sampling interval)."""
    if not samples:
        return {}
    samples = sorted(samples, key=lambda s: s.time)
    rss = [s.rss_kib / 1024 for s in samples]
    wall = samples[-1].time - samples[0].time
    cpu = (samples[-1].ticks - samples[0].ticks) / clock_ticks / wall * 100 if wall > 0 else None
    intervals = [
        (b.ticks - a.ticks) / clock_ticks / (b.time - a.time) * 100
        for a, b in itertools.pairwise(samples)
        if b.time > a.time and b.ticks >= a.ticks
    ]
    return {
        "pids": sorted({p for s in samples for p in s.pids}),
        "rss_max_mib": round(max(rss), 1),
        "rss_mean_mib": round(sum(rss) / len(rss), 1),
        "cpu_percent": None if cpu is None else round(cpu, 1),
        "cpu_max_percent": round(max(intervals), 1) if intervals else None,
        "samples": len(samples),
    }


def cpu_now(roles: Mapping[str, Roots], seconds: float = 1.0) -> tuple[dict[str, float], float]:
    """CPU % of each role and of the machine's other processes over the next ``seconds``."""
    roles = main_roles(roles)

    def snapshot() -> tuple[float, int, dict[str, int]]:
        stats = read_all_stats()
        roots = all_roots(roles)
        ticks = {role: sum(stats[p].ticks for p in process_tree(pid, stats, roots)) for role, pid in roles.items()}
        return time.monotonic(), machine_busy_ticks(), ticks

    t0, busy0, ticks0 = snapshot()
    time.sleep(seconds)
    t1, busy1, ticks1 = snapshot()
    wall = max(t1 - t0, 1e-6)
    per_role = {role: max(0, ticks1[role] - ticks0.get(role, 0)) / CLOCK_TICKS / wall * 100 for role in roles}
    machine = (busy1 - busy0) / CLOCK_TICKS / wall * 100
    return per_role, max(0.0, machine - sum(per_role.values()))


class Sampler:
    """A thread sampling each role every :data:`INTERVAL` s while a bot runs (not on the event loop,
    so a busy load generator does not delay it). :meth:`window` summarizes one level."""

    def __init__(self, roles: Mapping[str, Roots], interval: float = INTERVAL) -> None:
        self.roles = dict(roles)
        self.interval = interval
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)

    def sample_now(self) -> float:
        stats = read_all_stats()
        roots = all_roots(self.roles)
        batch = [sample_role(role, pid, stats, roots) for role, pid in self.roles.items()]
        with self._lock:
            self.samples.extend(batch)
        return batch[0].time if batch else time.monotonic()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def window(self, start: float, end: float) -> dict[str, dict[str, Any]]:
        with self._lock:
            chosen = [s for s in self.samples if start <= s.time <= end]
        return {role: summarize([s for s in chosen if s.role == role]) for role in self.roles}
