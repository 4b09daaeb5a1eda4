"""``python -m benchmarks.load.run`` (``make bench-load``): the stock bot and tandem under load, one
after the other in one run; results in benchmarks/load/results/ (results.json, table.md, load.png).

    .venv/bin/python -m benchmarks.load.run                       # SESSIONS="1 10 100" TURNS=5
    .venv/bin/python -m benchmarks.load.run --sessions "1 10" --turns 3 --only tandem
    .venv/bin/python -m benchmarks.load.run --replicas "1 2" --sessions "100 1000" --think 45
    .venv/bin/python -m benchmarks.load.run --only tandem --replicas 2 --adversarial --lock-store redis

Options default to the environment: SESSIONS, TURNS, DURATION (cap in seconds per level; 0 = none),
SINGLE_TURNS (sequential turns through the gateway), REPLICAS, PRODUCTION=1, THINK, ADVERSARIAL=1,
LOCK_STORE.
``--only`` replaces the entries this run measures in an existing results.json and keeps the others
(the table then says the bots come from different runs). ``--replicas`` above 1 implies
``--production`` (PostgreSQL + Redis, as ``make run`` with DATABASE_URL and REDIS_URL): tandem is then
measured through the gateway with the booking script, and every conversation's history is checked
(benchmarks/load/ordering.py).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks.load import launcher, report
from benchmarks.load.loadgen import (
    BOOKING_SCRIPT,
    TIMEOUT_SECONDS,
    GatewayChannelTarget,
    RandomReplicaTarget,
    RestTarget,
    Target,
    WebsiteGatewayTarget,
    make_client,
    resolve_step,
    run_level,
)
from benchmarks.load.ordering import check_level, read_events
from benchmarks.load.procstat import CLOCK_TICKS, Roots, Sampler, cpu_now, machine_busy_ticks, main_roles
from benchmarks.load.stages import rasa_alone, single_turn
from benchmarks.load.stats import summarize_level

RESULTS = Path(__file__).resolve().parent / "results"
# The adversarial mode's bursts: each a random 2 or 3 consecutive turns of a conversation at once.
ADVERSARIAL_BURSTS = (2, 3)


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


def settle(roles: dict[str, Roots], args: argparse.Namespace) -> dict[str, float]:
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


def wait_idle(roles: dict[str, Roots], seconds: float = 120.0) -> float:
    """Until the Rasa servers are idle (turns the clients gave up on finish), at most ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        per_role, _ = cpu_now(roles)
        if per_role.get("rasa", 0.0) < 10:
            break
    return round(time.monotonic() - started, 1)


async def warm_up(target: Target, turns: int) -> dict[str, str]:
    """One conversation, sequential, not measured: the first reply text of each utterance."""
    seen: dict[str, str] = {}
    async with make_client(1) as client:
        session = await target.open_session(client, 0)
        previous = None
        for index in range(max(turns, len(target.script))):
            step = target.script[index % len(target.script)]
            text = resolve_step(step, previous)
            answer = await target.send(client, session, text)
            if answer.status != 200 or not isinstance(answer.messages, list):
                raise RuntimeError(f"{target.name}: warm-up turn {text!r} answered {answer.status}")
            previous = answer.messages
            first = next((str(m.get("text", "")) for m in answer.messages if m.get("text")), "")
            seen.setdefault(str(step), first[:100] or f"({len(answer.messages)} messages without text)")
    return seen


@dataclass
class Check:
    """Where a level's conversations are checked (benchmarks/load/ordering.py): the tracker
    store's database, and the set collecting every sender id checked (for the Redis clean-up)."""

    tracker_url: str
    senders: set[str]


def measure_level(
    target: Target,
    sampler: Sampler,
    roles: list[str],
    sessions: int,
    args: argparse.Namespace,
    *,
    turns: int,
    bursts: tuple[int, int] | None = None,
    check: Check | None = None,
) -> dict[str, Any]:
    before = settle(sampler.roles, args)
    start = sampler.sample_now()
    busy_before = machine_busy_ticks()
    run = asyncio.run(
        run_level(
            target,
            sessions=sessions,
            turns=turns,
            duration=args.duration,
            timeout=args.timeout,
            think=args.think,
            think_distribution=args.think_distribution,
            bursts=bursts,
            seed=args.seed * 1_000_003 + sessions,
            progress=not args.no_progress,
        )
    )
    busy_after = machine_busy_ticks()
    sampler.sample_now()
    end = time.monotonic()
    level = summarize_level(run.turns, sessions=sessions, wall_seconds=run.wall_seconds)
    level["turns_per_session"] = turns
    level["think_s"] = args.think
    level["bursts"] = list(bursts) if bursts else None
    window = sampler.window(start, end)
    level["processes"] = {role: window[role] for role in roles}
    # The whole machine's CPU during the level, and what other processes (not this run's) used.
    machine_cpu = (busy_after - busy_before) / CLOCK_TICKS / (end - start) * 100 if end > start else 0.0
    ours = sum(s.get("cpu_percent") or 0.0 for role, s in window.items() if role in main_roles(sampler.roles))
    level["machine_cpu_percent"] = round(machine_cpu, 1)
    level["other_cpu_percent"] = round(max(0.0, machine_cpu - ours), 1)
    level["before_level"] = before
    # CPU time of the Rasa process(es) per completed turn: steadier than wall times on a shared machine.
    rasa = level["processes"].get("rasa") or {}
    if rasa.get("cpu_percent") is not None and level["completed"]:
        level["rasa_cpu_ms_per_turn"] = round(rasa["cpu_percent"] / 100 * (end - start) / level["completed"] * 1000, 1)
    verdict = ""
    if check is not None:
        senders = [s for s in run.senders if s is not None]
        check.senders.update(senders)
        waited = wait_idle(sampler.roles)
        ordering = check_level(run.turns, run.senders, read_events(check.tracker_url, senders))
        ordering["waited_for_idle_s"] = waited
        level["ordering"] = ordering
        kinds = ", ".join(f"{k} {v}" for k, v in ordering["by_kind"].items() if v)
        verdict = (
            f" · history of {ordering['conversations']} conversations: "
            f"{ordering['violations']} violations{f' ({kinds})' if kinds else ''}"
        )
    cpu = ", ".join(
        f"{role} {s['cpu_percent']:.0f} % CPU {s['rss_max_mib']:.0f} MiB"
        for role, s in level["processes"].items()
        if s and s.get("cpu_percent") is not None and "#" not in role
    )
    print(
        f"  {target.name:<15} {sessions:>4} sessions × {turns} turns: "
        f"{level['completed']}/{level['attempted']} ok in {run.wall_seconds:.1f} s, "
        f"{level['turns_per_s']:.1f} turns/s, "
        f"p50 {report.fmt_ms(level['p50_ms'])}, p95 {report.fmt_ms(level['p95_ms'])}, "
        f"p99 {report.fmt_ms(level['p99_ms'])}, errors {level['errors']} "
        f"({level['error_rate'] * 100:.1f} %) · {cpu}, other processes {level['other_cpu_percent']:.0f} % CPU"
        f"{verdict}",
        flush=True,
    )
    return level


def run_levels(
    target: Target,
    sampler: Sampler,
    roles: list[str],
    args: argparse.Namespace,
    *,
    turns: int,
    bursts: tuple[int, int] | None = None,
    check: Check | None = None,
) -> list[dict[str, Any]]:
    """Each level once; a level the rest of the machine disturbed (other processes above
    ``--disturbed-cpu`` %) is measured again, up to ``--retries`` times, and the least disturbed
    attempt is kept (the others are listed in ``disturbed_attempts``, with their violations)."""
    levels = []
    for sessions in args.sessions:

        def measure(sessions: int = sessions) -> dict[str, Any]:
            return measure_level(target, sampler, roles, sessions, args, turns=turns, bursts=bursts, check=check)

        attempts = [measure()]
        while attempts[-1]["other_cpu_percent"] > args.disturbed_cpu and len(attempts) <= args.retries:
            print(f"  (disturbed: other processes {attempts[-1]['other_cpu_percent']:.0f} % CPU; again)", flush=True)
            attempts.append(measure())
        best = min(attempts, key=lambda lv: lv["other_cpu_percent"])
        keys = ("other_cpu_percent", "turns_per_s", "p95_ms", "errors")
        best["disturbed_attempts"] = [
            {**{k: lv[k] for k in keys}, **({"violations": lv["ordering"]["violations"]} if "ordering" in lv else {})}
            for lv in attempts
            if lv is not best
        ]
        levels.append(best)
    return levels


def bot_entry(
    target: Target,
    replies: dict[str, str],
    levels: list[dict[str, Any]],
    tree: dict[str, Any],
    config: dict[str, Any],
    alone: dict[str, Any] | None = None,
) -> dict[str, Any]:
    entry = {
        "measured_at": now(),
        **tree,
        "config": config,
        "script": [str(step) for step in target.script],
        "replies": replies,
    }
    if alone is not None:
        entry["single_turn_rasa"] = alone
    return {**entry, "levels": levels}


def measure_alone(target: Target, rasa_url: str, token: str | None, args: argparse.Namespace) -> dict[str, Any] | None:
    if args.single_turns <= 0:
        return None
    alone = asyncio.run(
        rasa_alone(target, rasa_url=rasa_url, token=token, turns=args.single_turns, conversation_turns=args.turns or 5)
    )
    m = alone["measured"]
    print(
        f"  {target.name:<15} one customer alone, straight to Rasa ({alone['turns']} turns): "
        f"p50 {report.fmt_ms(m['turn_client']['p50_ms'])}, p95 {report.fmt_ms(m['turn_client']['p95_ms'])}; "
        f"parse p50 {report.fmt_ms(m['nlu_parse_model_parse']['p50_ms'])}",
        flush=True,
    )
    return alone


def measure_single(bot: launcher.TandemBot, roles: dict[str, Roots], args: argparse.Namespace) -> dict[str, Any] | None:
    """One customer alone through the gateway, the stages joined from the logs (every replica's)."""
    if args.single_turns <= 0:
        return None
    settle(roles, args)
    single = asyncio.run(
        single_turn(
            gateway_url=bot.gateway_url,
            rasa_url=bot.rasa_url,
            token=bot.token,
            gateway_log=bot.gateway.log,
            action_log=[s.log for s in bot.action_services],
            turns=args.single_turns,
            conversation_turns=args.turns or 5,
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
    return single


def working_tree() -> dict[str, Any]:
    """The commit and the uncommitted paths, when a bot starts (the tree may change during a run)."""
    return {
        "git_commit": git("rev-parse", "HEAD").strip(),
        "git_changes": [line[3:] for line in git("status", "--porcelain").splitlines()],
    }


def think_suffix(args: argparse.Namespace) -> str:
    return f"-think{args.think:g}" if args.think else ""


def load_config(args: argparse.Namespace, **config: Any) -> dict[str, Any]:
    """An entry's configuration: what the table tells the rows apart by."""
    return {
        "replicas": 1,
        "production": False,
        "adversarial": False,
        "lock_store": None,
        "tracker_store": None,
        **config,
        "think_s": args.think,
        "think_distribution": args.think_distribution if args.think else None,
    }


def stock_name(args: argparse.Namespace) -> str:
    return f"stock{think_suffix(args)}"


def run_stock(args: argparse.Namespace) -> dict[str, Any]:
    tree = working_tree()
    print("==> stock bot: rasa init (trained once into var/bench/stock, then reused)", flush=True)
    model = launcher.prepare_stock()
    turns = args.turns or 5
    with launcher.Services() as services:
        bot = launcher.start_stock(services, model)
        print(f"==> stock bot up at {bot.url} ({model.name}); warming up", flush=True)
        target = RestTarget(bot.url, name=stock_name(args))
        replies = asyncio.run(warm_up(target, turns))
        roles: dict[str, Roots] = {"rasa": bot.rasa.pid, "loadgen": os.getpid()}
        settle(roles, args)
        alone = measure_alone(target, bot.url, None, args)
        with Sampler(roles) as sampler:
            levels = run_levels(target, sampler, ["rasa", "loadgen"], args, turns=turns)
    config = load_config(args, bot="stock", door="rest", tracker_store="in_memory", lock_store="in_memory")
    entry = bot_entry(target, replies, levels, tree, config, alone)
    return {target.name: {**entry, "model": model_info(model)}}


def tandem_name(pipeline: str) -> str:
    return "tandem" if pipeline == "minilm" else f"tandem-{pipeline}"


def production_name(args: argparse.Namespace, pipeline: str, replicas: int, door: str) -> str:
    """E.g. ``tandem-prod-r2-gateway``, ``tandem-prod-r2-redislock-adversarial-think45``."""
    lock = "-redislock" if args.lock_store == "redis" else ""
    return f"{tandem_name(pipeline)}-prod-r{replicas}{lock}-{door}{think_suffix(args)}"


def run_tandem(args: argparse.Namespace, pipeline: str) -> dict[str, Any]:
    """Embedded tandem (as `make run` without PostgreSQL and Redis): straight to Rasa and through the gateway."""
    tree = working_tree()
    model = launcher.tandem_model(pipeline)
    print(
        f"==> tandem ({model.relative_to(launcher.ROOT)}): fresh SQLite databases, migrate, seed --demo, "
        "action server, Rasa, gateway",
        flush=True,
    )
    out: dict[str, Any] = {}
    name = tandem_name(pipeline) + think_suffix(args)
    turns = args.turns or 5
    info = model_info(model)  # before Rasa loads it (a `make train` elsewhere may replace it later)
    with launcher.Services() as services:
        bot = launcher.start_tandem(services, model)
        print(f"==> tandem up: Rasa {bot.rasa_url}, gateway {bot.gateway_url}; warming up", flush=True)
        direct = GatewayChannelTarget(bot.rasa_url, bot.token, name=name)
        website = WebsiteGatewayTarget(
            bot.gateway_url, name=f"{tandem_name(pipeline)}-gateway{think_suffix(args)}", secret=bot.gateway_secret
        )
        replies = asyncio.run(warm_up(direct, turns))
        gateway_replies = asyncio.run(warm_up(website, turns))
        roles = bot.roles(os.getpid())
        settle(roles, args)
        alone = measure_alone(direct, bot.rasa_url, bot.token, args)
        single = measure_single(bot, roles, args)
        check = Check(bot.tracker_url, bot.senders)
        base = {"pipeline": pipeline, **bot.config}
        with Sampler(roles) as sampler:
            levels = run_levels(direct, sampler, ["rasa", "actions", "loadgen"], args, turns=turns, check=check)
            config = load_config(args, bot="tandem", door="channel", **base)
            out[direct.name] = bot_entry(direct, replies, levels, tree, config, alone)
            out[direct.name]["model"] = info
            levels = []
            if args.gateway_levels:
                levels = run_levels(
                    website, sampler, ["rasa", "actions", "gateway", "loadgen"], args, turns=turns, check=check
                )
            if levels or single:
                config = load_config(args, bot="tandem", door="gateway", **base)
                out[website.name] = bot_entry(website, gateway_replies, levels, tree, config)
                out[website.name]["model"] = info
                if single:
                    out[website.name]["single_turn"] = single
    return out


def run_production(args: argparse.Namespace, pipeline: str, replicas: int) -> dict[str, Any]:
    """Production tandem (PostgreSQL + Redis, ``replicas`` Rasa servers): through the gateway with the
    booking script, and with ``--adversarial`` each turn to a random replica in bursts; every
    conversation's history checked after each level."""
    tree = working_tree()
    model = launcher.tandem_model(pipeline)
    print(
        f"==> tandem in production mode ({model.relative_to(launcher.ROOT)}): a fresh PostgreSQL database, "
        f"Redis, {args.lock_store} lock store, {replicas} Rasa replica(s) with an action server each, gateway",
        flush=True,
    )
    out: dict[str, Any] = {}
    turns = args.turns or len(BOOKING_SCRIPT)
    info = model_info(model)
    with launcher.Services() as services:
        bot = launcher.start_tandem(services, model, replicas=replicas, production=True, lock_store=args.lock_store)
        print(f"==> tandem up: Rasa {', '.join(bot.rasa_urls)}, gateway {bot.gateway_url}; warming up", flush=True)
        website = WebsiteGatewayTarget(
            bot.gateway_url,
            name=production_name(args, pipeline, replicas, "gateway"),
            script=list(BOOKING_SCRIPT),
            secret=bot.gateway_secret,
        )
        replies = asyncio.run(warm_up(website, turns))
        roles = bot.roles(os.getpid())
        settle(roles, args)
        direct = GatewayChannelTarget(bot.rasa_url, bot.token, name=website.name, prefix=f"load-{bot.tag}")
        alone = measure_alone(direct, bot.rasa_url, bot.token, args)
        single = measure_single(bot, roles, args)
        check = Check(bot.tracker_url, bot.senders)
        base = {"pipeline": pipeline, **bot.config}
        with Sampler(roles) as sampler:
            if args.gateway_levels or single:
                levels = (
                    run_levels(website, sampler, list(roles), args, turns=turns, check=check)
                    if args.gateway_levels
                    else []
                )
                config = load_config(args, bot="tandem", door="gateway", **base)
                out[website.name] = bot_entry(website, replies, levels, tree, config, alone)
                out[website.name]["model"] = info
                if single:
                    out[website.name]["single_turn"] = single
            if args.adversarial and replicas < 2:
                print("  (--adversarial needs 2 or more replicas: not run with 1)", flush=True)
            elif args.adversarial:
                adversarial = RandomReplicaTarget(
                    bot.rasa_urls,
                    bot.token,
                    name=production_name(args, pipeline, replicas, "adversarial"),
                    prefix=f"adv-{bot.tag}",
                    rng=random.Random(args.seed),
                )
                adversarial_replies = asyncio.run(warm_up(adversarial, turns))
                levels = run_levels(
                    adversarial,
                    sampler,
                    [r for r in roles if not r.startswith("gateway")],
                    args,
                    turns=turns,
                    bursts=ADVERSARIAL_BURSTS,
                    check=check,
                )
                config = load_config(args, bot="tandem", door="adversarial", adversarial=True, **base)
                config["bursts"] = list(ADVERSARIAL_BURSTS)
                out[adversarial.name] = bot_entry(adversarial, adversarial_replies, levels, tree, config)
                out[adversarial.name]["model"] = info
    return out


def planned_names(args: argparse.Namespace) -> set[str]:
    """The entries this run writes (``--only`` replaces these and keeps the others)."""
    names = set()
    if args.only in (None, "stock"):
        names.add(stock_name(args))
    if args.only in (None, "tandem"):
        for pipeline in args.pipelines:
            if not args.production:
                names |= {
                    tandem_name(pipeline) + think_suffix(args),
                    f"{tandem_name(pipeline)}-gateway{think_suffix(args)}",
                }
                continue
            for replicas in args.replicas:
                names.add(production_name(args, pipeline, replicas, "gateway"))
                if args.adversarial and replicas >= 2:
                    names.add(production_name(args, pipeline, replicas, "adversarial"))
    return names


def order_key(name: str, bot: dict[str, Any]) -> tuple[Any, ...]:
    """Stock first, then embedded tandem, then production by replicas, the gateway before the adversarial."""
    config = bot.get("config") or {}
    doors = {"rest": 0, "channel": 1, "gateway": 2, "adversarial": 3}
    return (
        0 if name.startswith("stock") else 1,
        config.get("think_s") or 0,
        bool(config.get("production")),
        config.get("replicas") or 1,
        str(config.get("lock_store")),
        doors.get(str(config.get("door")), 2 if name.endswith("-gateway") else 1),
        name,
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.load.run", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument("--sessions", default=env.get("SESSIONS", "1 10 100"), help='levels, e.g. "1 10 100"')
    parser.add_argument(
        "--turns",
        type=int,
        default=int(env["TURNS"]) if env.get("TURNS") else None,
        help="turns per session (default 5; production: the booking script's 10)",
    )
    parser.add_argument(
        "--duration", type=float, default=float(env.get("DURATION", "300")), help="cap per level, s (0 = none)"
    )
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="per turn, s")
    parser.add_argument("--single-turns", type=int, default=int(env.get("SINGLE_TURNS", "50")))
    parser.add_argument("--only", choices=["stock", "tandem"], default=env.get("ONLY") or None)
    parser.add_argument("--no-gateway-levels", dest="gateway_levels", action="store_false")
    parser.add_argument(
        "--replicas",
        default=env.get("REPLICAS", "1"),
        help='Rasa replicas of tandem, one run each, e.g. "1 2" (above 1: production mode)',
    )
    parser.add_argument(
        "--production",
        action="store_true",
        default=env.get("PRODUCTION", "") not in ("", "0"),
        help="tandem on PostgreSQL + Redis through the gateway, histories checked (implied by --replicas 2)",
    )
    parser.add_argument(
        "--think",
        type=float,
        default=float(env.get("THINK", "0")),
        help="mean think time between a session's turns, s (0 = none: back to back)",
    )
    parser.add_argument(
        "--think-distribution",
        choices=["exponential", "uniform"],
        default=env.get("THINK_DISTRIBUTION") or "exponential",
        help="think times: exponential (default) or uniform on [0, 2 × mean]",
    )
    parser.add_argument(
        "--adversarial",
        action="store_true",
        default=env.get("ADVERSARIAL", "") not in ("", "0"),
        help="also: each turn to a random replica's channel, bursts of 2-3 turns at once (2+ replicas)",
    )
    parser.add_argument(
        "--lock-store",
        choices=sorted(launcher.LOCK_STORES),
        default=env.get("LOCK_STORE") or "atomic",
        help="production's lock store: atomic (tandem's) or redis (Rasa's own: the control that fails)",
    )
    parser.add_argument("--seed", type=int, default=int(env.get("SEED", "0")), help="think times, bursts, replicas")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
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
    parser.add_argument(
        "--out",
        "--results",
        dest="results",
        type=Path,
        default=RESULTS,
        help="directory of results.json, table.md, load.png (default benchmarks/load/results; smoke runs elsewhere)",
    )
    parser.add_argument("--render", action="store_true", help="only redo table.md and load.png from results.json")
    args = parser.parse_args(argv)
    args.sessions = [int(s) for s in str(args.sessions).replace(",", " ").split()]
    args.replicas = sorted({int(r) for r in str(args.replicas).replace(",", " ").split()})
    if not args.replicas or min(args.replicas) < 1:
        parser.error("--replicas: whole numbers of 1 or more")
    args.production = args.production or max(args.replicas) > 1
    if args.adversarial and max(args.replicas) < 2:
        parser.error("--adversarial needs --replicas 2 or more (each turn goes to a random replica)")
    if args.lock_store != "atomic" and not args.production:
        parser.error("--lock-store redis is production mode's control: add --production or --replicas 2")
    if args.think < 0:
        parser.error("--think: 0 or more seconds")
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
        # Keep the other entries (each says when and at which commit it was measured).
        previous = json.loads(results_path.read_text())
        mine = planned_names(args)
        bots = {k: v for k, v in previous.get("bots", {}).items() if k not in mine}
    started = time.monotonic()
    run = now()  # this run's id, in each bot it measured (`--only` keeps other runs' bots)
    try:
        if args.only in (None, "stock"):
            bots.update({name: {"run": run, **bot} for name, bot in run_stock(args).items()})
        if args.only in (None, "tandem"):
            for pipeline in args.pipelines:
                if not args.production:
                    bots.update({name: {"run": run, **bot} for name, bot in run_tandem(args, pipeline).items()})
                    continue
                for replicas in args.replicas:
                    measured = run_production(args, pipeline, replicas)
                    bots.update({name: {"run": run, **bot} for name, bot in measured.items()})
    except KeyboardInterrupt:
        print("\n==> interrupted: every process this run started is stopped; no results written", file=sys.stderr)
        return 130
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
            "replicas": args.replicas,
            "production": args.production,
            "think_s": args.think,
            "think_distribution": args.think_distribution,
            "adversarial": args.adversarial,
            "adversarial_bursts": list(ADVERSARIAL_BURSTS) if args.adversarial else None,
            "lock_store": args.lock_store,
            "seed": args.seed,
            "quiet_wait_s": args.quiet_wait,
            "quiet_cpu_percent": args.quiet_cpu,
            "disturbed_cpu_percent": args.disturbed_cpu,
            "retries": args.retries,
        },
        "bots": {k: bots[k] for k in sorted(bots, key=lambda k: order_key(k, bots[k]))},
    }
    args.results.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    write_report(results, args.results)
    print(f"==> done in {(time.monotonic() - started) / 60:.1f} min: {args.results}/results.json, table.md, load.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
