"""``python -m benchmarks.load.run`` (``make bench-load``): the stock bot and tandem under load, one
after the other in one run; results in benchmarks/load/results/ (results.json, table.md, load.png).

    .venv/bin/python -m benchmarks.load.run                       # SESSIONS="1 10 100" TURNS=5
    .venv/bin/python -m benchmarks.load.run --sessions "1 10" --turns 3 --only tandem

Options default to the environment: SESSIONS, TURNS, DURATION (cap in seconds per level; 0 = none),
SINGLE_TURNS (sequential turns through the gateway). ``--only`` replaces that bot's entries in an
existing results.json and keeps the other bot's (the table then says the bots come from
different runs).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.load import launcher, report
from benchmarks.load.loadgen import (
    TIMEOUT_SECONDS,
    GatewayChannelTarget,
    RestTarget,
    Target,
    WebsiteGatewayTarget,
    make_client,
    run_level,
)
from benchmarks.load.procstat import CLOCK_TICKS, Sampler, cpu_now, machine_busy_ticks
from benchmarks.load.stages import rasa_alone, single_turn
from benchmarks.load.stats import summarize_level

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    rasa = subprocess.run(
        [str(launcher.RASA.parent / "python"), "-c", "from importlib.metadata import version; print(version('rasa'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "platform": platform.platform(),
        "python_loadgen": platform.python_version(),
        "rasa": rasa or "?",
    }


def git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=launcher.ROOT, capture_output=True, text=True, check=False)
    return done.stdout  # not stripped: porcelain lines start with a space


def model_info(model: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with model.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    stat = model.stat()
    return {
        "path": str(model.relative_to(launcher.ROOT)),
        "sha256": digest.hexdigest()[:16],
        "mib": round(stat.st_size / 1024 / 1024, 1),
        "modified": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds"),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def settle(roles: dict[str, int], args: argparse.Namespace) -> dict[str, float]:
    """Wait until the bot is idle (turns the clients gave up on may still run) and, up to
    ``--quiet-wait`` seconds, until the rest of the machine uses under ``--quiet-cpu`` % CPU (it is
    shared): a level then starts on a quiet machine, or says how busy the machine was."""
    started = time.monotonic()
    other = 0.0
    while True:
        per_role, other = cpu_now(roles)
        waited = time.monotonic() - started
        if per_role.get("rasa", 0.0) < 10 and other < args.quiet_cpu:
            break
        if waited >= args.quiet_wait:
            print(f"  (the machine stayed busy: other processes {other:.0f} % CPU after {waited:.0f} s)", flush=True)
            break
    return {"waited_s": round(time.monotonic() - started, 1), "other_cpu_percent": round(other, 1)}


async def warm_up(target: Target, turns: int) -> dict[str, str]:
    """One conversation, sequential, not measured: the first reply text of each utterance."""
    seen: dict[str, str] = {}
    async with make_client(1) as client:
        session = await target.open_session(client, 0)
        for index in range(max(turns, len(target.script))):
            text = target.script[index % len(target.script)]
            status, messages = await target.send(client, session, text)
            if status != 200 or not isinstance(messages, list):
                raise RuntimeError(f"{target.name}: warm-up turn {text!r} answered {status}")
            first = next((str(m.get("text", "")) for m in messages if m.get("text")), "")
            seen.setdefault(text, first[:100] or f"({len(messages)} messages without text)")
    return seen


def measure_level(
    target: Target, sampler: Sampler, roles: list[str], sessions: int, args: argparse.Namespace
) -> dict[str, Any]:
    before = settle(sampler.roles, args)
    start = sampler.sample_now()
    busy_before = machine_busy_ticks()
    turns, wall = asyncio.run(
        run_level(target, sessions=sessions, turns=args.turns, duration=args.duration, timeout=args.timeout)
    )
    busy_after = machine_busy_ticks()
    sampler.sample_now()
    end = time.monotonic()
    level = summarize_level(turns, sessions=sessions, wall_seconds=wall)
    level["turns_per_session"] = args.turns
    window = sampler.window(start, end)
    level["processes"] = {role: window[role] for role in roles}
    # The whole machine's CPU during the level, and what other processes (not this run's) used.
    machine_cpu = (busy_after - busy_before) / CLOCK_TICKS / (end - start) * 100 if end > start else 0.0
    ours = sum(s.get("cpu_percent") or 0.0 for s in window.values())
    level["machine_cpu_percent"] = round(machine_cpu, 1)
    level["other_cpu_percent"] = round(max(0.0, machine_cpu - ours), 1)
    level["before_level"] = before
    # CPU time of the Rasa process per completed turn: steadier than wall times on a shared machine.
    rasa = level["processes"].get("rasa") or {}
    if rasa.get("cpu_percent") is not None and level["completed"]:
        level["rasa_cpu_ms_per_turn"] = round(rasa["cpu_percent"] / 100 * (end - start) / level["completed"] * 1000, 1)
    cpu = ", ".join(
        f"{role} {s['cpu_percent']:.0f} % CPU {s['rss_max_mib']:.0f} MiB"
        for role, s in level["processes"].items()
        if s and s.get("cpu_percent") is not None
    )
    print(
        f"  {target.name:<15} {sessions:>4} sessions × {args.turns} turns: "
        f"{level['completed']}/{level['attempted']} ok in {wall:.1f} s, {level['turns_per_s']:.1f} turns/s, "
        f"p50 {report.fmt_ms(level['p50_ms'])}, p95 {report.fmt_ms(level['p95_ms'])}, "
        f"p99 {report.fmt_ms(level['p99_ms'])}, errors {level['errors']} "
        f"({level['error_rate'] * 100:.1f} %) · {cpu}, other processes {level['other_cpu_percent']:.0f} % CPU",
        flush=True,
    )
    return level


def run_levels(target: Target, sampler: Sampler, roles: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each level once; a level the rest of the machine disturbed (other processes above
    ``--disturbed-cpu`` %) is measured again, up to ``--retries`` times, and the least disturbed
    attempt is kept (the others are listed in ``disturbed_attempts``)."""
    levels = []
    for sessions in args.sessions:
        attempts = [measure_level(target, sampler, roles, sessions, args)]
        while attempts[-1]["other_cpu_percent"] > args.disturbed_cpu and len(attempts) <= args.retries:
            print(f"  (disturbed: other processes {attempts[-1]['other_cpu_percent']:.0f} % CPU; again)", flush=True)
            attempts.append(measure_level(target, sampler, roles, sessions, args))
        best = min(attempts, key=lambda lv: lv["other_cpu_percent"])
        keys = ("other_cpu_percent", "turns_per_s", "p95_ms", "errors")
        best["disturbed_attempts"] = [{k: lv[k] for k in keys} for lv in attempts if lv is not best]
        levels.append(best)
    return levels


def bot_entry(
    target: Target,
    replies: dict[str, str],
    levels: list[dict[str, Any]],
    tree: dict[str, Any],
    alone: dict[str, Any] | None = None,
) -> dict[str, Any]:
    entry = {"measured_at": now(), **tree, "script": target.script, "replies": replies}
    if alone is not None:
        entry["single_turn_rasa"] = alone
    return {**entry, "levels": levels}


def measure_alone(target: Target, rasa_url: str, token: str | None, args: argparse.Namespace) -> dict[str, Any] | None:
    if args.single_turns <= 0:
        return None
    alone = asyncio.run(
        rasa_alone(target, rasa_url=rasa_url, token=token, turns=args.single_turns, conversation_turns=args.turns)
    )
    m = alone["measured"]
    print(
        f"  {target.name:<15} one customer alone, straight to Rasa ({alone['turns']} turns): "
        f"p50 {report.fmt_ms(m['turn_client']['p50_ms'])}, p95 {report.fmt_ms(m['turn_client']['p95_ms'])}; "
        f"parse p50 {report.fmt_ms(m['nlu_parse_model_parse']['p50_ms'])}",
        flush=True,
    )
    return alone


def working_tree() -> dict[str, Any]:
    """The commit and the uncommitted paths, when a bot starts (the tree may change during a run)."""
    return {
        "git_commit": git("rev-parse", "HEAD").strip(),
        "git_changes": [line[3:] for line in git("status", "--porcelain").splitlines()],
    }


def run_stock(args: argparse.Namespace) -> dict[str, Any]:
    tree = working_tree()
    print("==> stock bot: rasa init (trained once into var/bench/stock, then reused)", flush=True)
    model = launcher.prepare_stock()
    with launcher.Services() as services:
        bot = launcher.start_stock(services, model)
        print(f"==> stock bot up at {bot.url} ({model.name}); warming up", flush=True)
        target = RestTarget(bot.url)
        replies = asyncio.run(warm_up(target, args.turns))
        roles = {"rasa": bot.rasa.pid, "loadgen": os.getpid()}
        settle(roles, args)
        alone = measure_alone(target, bot.url, None, args)
        with Sampler(roles) as sampler:
            levels = run_levels(target, sampler, ["rasa", "loadgen"], args)
    return {"stock": {**bot_entry(target, replies, levels, tree, alone), "model": model_info(model)}}


def tandem_name(pipeline: str) -> str:
    return "tandem" if pipeline == "minilm" else f"tandem-{pipeline}"


def run_tandem(args: argparse.Namespace, pipeline: str) -> dict[str, Any]:
    tree = working_tree()
    model = launcher.tandem_model(pipeline)
    print(
        f"==> tandem ({model.relative_to(launcher.ROOT)}): fresh SQLite databases, migrate, seed --demo, "
        "action server, Rasa, gateway",
        flush=True,
    )
    out: dict[str, Any] = {}
    name = tandem_name(pipeline)
    info = model_info(model)  # before Rasa loads it (a `make train` elsewhere may replace it later)
    with launcher.Services() as services:
        bot = launcher.start_tandem(services, model)
        print(f"==> tandem up: Rasa {bot.rasa_url}, gateway {bot.gateway_url}; warming up", flush=True)
        direct = GatewayChannelTarget(bot.rasa_url, bot.token, name=name)
        website = WebsiteGatewayTarget(bot.gateway_url, name=f"{name}-gateway")
        replies = asyncio.run(warm_up(direct, args.turns))
        gateway_replies = asyncio.run(warm_up(website, args.turns))
        roles = {"rasa": bot.rasa.pid, "actions": bot.actions.pid, "gateway": bot.gateway.pid, "loadgen": os.getpid()}
        settle(roles, args)
        alone = measure_alone(direct, bot.rasa_url, bot.token, args)
        single = None
        if args.single_turns > 0:
            settle(roles, args)
            single = asyncio.run(
                single_turn(
                    gateway_url=bot.gateway_url,
                    rasa_url=bot.rasa_url,
                    token=bot.token,
                    gateway_log=bot.gateway.log,
                    action_log=bot.actions.log,
                    turns=args.single_turns,
                    conversation_turns=args.turns,
                )
            )
            m = single["measured"]
            print(
                f"  single turn through the gateway ({single['turns']} turns): "
                f"p50 {report.fmt_ms(m['whole_turn_client']['p50_ms'])}, "
                f"p95 {report.fmt_ms(m['whole_turn_client']['p95_ms'])}; Rasa p50 "
                f"{report.fmt_ms(m['rasa_turn_gateway_upstream']['p50_ms'])}, parse p50 "
                f"{report.fmt_ms(m['nlu_parse_model_parse']['p50_ms'])}",
                flush=True,
            )
        with Sampler(roles) as sampler:
            levels = run_levels(direct, sampler, ["rasa", "actions", "loadgen"], args)
            out[direct.name] = bot_entry(direct, replies, levels, tree, alone)
            out[direct.name]["model"] = info
            levels = []
            if args.gateway_levels:
                levels = run_levels(website, sampler, ["rasa", "actions", "gateway", "loadgen"], args)
            if levels or single:
                out[website.name] = bot_entry(website, gateway_replies, levels, tree)
                out[website.name]["model"] = out[direct.name]["model"]
                if single:
                    out[website.name]["single_turn"] = single
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load.run", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default=env.get("SESSIONS", "1 10 100"), help='levels, e.g. "1 10 100"')
    parser.add_argument("--turns", type=int, default=int(env.get("TURNS", "5")), help="turns per session")
    parser.add_argument(
        "--duration", type=float, default=float(env.get("DURATION", "300")), help="cap per level, s (0 = none)"
    )
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="per turn, s")
    parser.add_argument("--single-turns", type=int, default=int(env.get("SINGLE_TURNS", "50")))
    parser.add_argument("--only", choices=["stock", "tandem"], default=env.get("ONLY") or None)
    parser.add_argument("--no-gateway-levels", dest="gateway_levels", action="store_false")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=float(env.get("QUIET_WAIT", "300")),
        help="before each measurement, wait up to this many s for the rest of the machine to be quiet",
    )
    parser.add_argument("--quiet-cpu", type=float, default=25.0, help="'quiet': other processes under this CPU %%")
    parser.add_argument("--disturbed-cpu", type=float, default=20.0, help="a level is measured again above this")
    parser.add_argument("--retries", type=int, default=int(env.get("RETRIES", "2")), help="per disturbed level")
    parser.add_argument(
        "--pipeline",
        default=env.get("PIPELINE") or "minilm",
        help='tandem\'s model(s): minilm (default), diet, or several ("minilm diet"), one after the other',
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="only redo table.md and load.png from results.json")
    args = parser.parse_args(argv)
    args.sessions = [int(s) for s in str(args.sessions).replace(",", " ").split()]
    args.duration = args.duration or None
    args.pipelines = list(dict.fromkeys(str(args.pipeline).replace(",", " ").split()))
    return args


def write_report(results: dict[str, Any], directory: Path) -> None:
    (directory / "table.md").write_text(report.render(results))
    report.plot(results, directory / "load.png")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results_path = args.results / "results.json"
    if args.render:
        write_report(json.loads(results_path.read_text()), args.results)
        print(f"==> {args.results}/table.md and load.png rendered from results.json")
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    tree = working_tree()
    bots: dict[str, Any] = {}
    if args.only and results_path.exists():
        # Keep the other bots' entries (each says when and at which commit it was measured).
        mine = (
            {"stock"}
            if args.only == "stock"
            else {n for p in args.pipelines for n in (tandem_name(p), f"{tandem_name(p)}-gateway")}
        )
        previous = json.loads(results_path.read_text())
        bots = {k: v for k, v in previous.get("bots", {}).items() if k not in mine}
    started = time.monotonic()
    run = now()  # this run's id, in each bot it measured (`--only` keeps other runs' bots)
    try:
        if args.only in (None, "stock"):
            bots.update({name: {"run": run, **bot} for name, bot in run_stock(args).items()})
        if args.only in (None, "tandem"):
            for pipeline in args.pipelines:
                bots.update({name: {"run": run, **bot} for name, bot in run_tandem(args, pipeline).items()})
    except KeyboardInterrupt:
        print("\n==> interrupted: every process this run started is stopped; no results written", file=sys.stderr)
        return 130
    order = ["stock", "tandem", "tandem-gateway", "tandem-diet", "tandem-diet-gateway"]
    results = {
        "command": shlex.join(["python", "-m", "benchmarks.load.run", *(argv if argv is not None else sys.argv[1:])]),
        "run": run,
        "date": now(),
        # The working tree when the run started: the commit plus these uncommitted paths (each bot
        # has its own, taken when it started).
        **tree,
        "machine": machine(),
        "config": {
            "sessions": args.sessions,
            "turns": args.turns,
            "duration_cap_s": args.duration,
            "timeout_s": args.timeout,
            "single_turns": args.single_turns,
            "sample_interval_s": 0.5,
            "pipelines": args.pipelines,
            "quiet_wait_s": args.quiet_wait,
            "quiet_cpu_percent": args.quiet_cpu,
            "disturbed_cpu_percent": args.disturbed_cpu,
            "retries": args.retries,
        },
        "bots": {k: bots[k] for k in sorted(bots, key=lambda k: order.index(k) if k in order else 99)},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_report(results, args.results)
    print(f"==> done in {(time.monotonic() - started) / 60:.1f} min: {args.results}/results.json, table.md, load.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
