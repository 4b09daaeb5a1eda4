"""results.json → table.md and load.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROLES = [("rasa", "Rasa server"), ("actions", "action server"), ("gateway", "gateway"), ("loadgen", "load generator")]
LABELS = {
    "stock": "stock `rasa init` bot (REST channel)",
    "tandem": "tandem (`make run`; Rasa's gateway channel)",
    "tandem-gateway": "tandem through the website gateway",
}
LOCKS = {"atomic": "atomic lock store", "redis": "Rasa's RedisLockStore"}


def label(name: str, bot: dict[str, Any] | None = None) -> str:
    """A row's name: from the entry's configuration when it has one (issue 15), else from its name."""
    config = (bot or {}).get("config")
    if config:
        return config_label(config)
    if name in LABELS:
        return LABELS[name]
    if name.endswith("-gateway"):
        return f"{label(name.removesuffix('-gateway'))} through the website gateway"
    if name.startswith("tandem-"):
        return f"tandem ({name.removeprefix('tandem-')} pipeline; Rasa's gateway channel)"
    return name


def config_label(config: dict[str, Any]) -> str:
    think = f", think {config['think_s']:g} s" if config.get("think_s") else ""
    if config.get("bot") == "stock":
        return f"{LABELS['stock']}{think}"
    pipeline = config.get("pipeline") or "minilm"
    name = "tandem" if pipeline == "minilm" else f"tandem ({pipeline} pipeline)"
    door = config.get("door")
    if not config.get("production"):
        text = (
            f"{name} through the website gateway"
            if door == "gateway"
            else f"{name} (`make run`; Rasa's gateway channel)"
        )
        return text + think
    replicas = config.get("replicas") or 1
    setup = (
        f"{name}, production: PostgreSQL + {LOCKS.get(str(config.get('lock_store')), config.get('lock_store'))}, "
        f"{replicas} Rasa replica{'s' if replicas > 1 else ''}"
    )
    if door == "adversarial":
        bursts = config.get("bursts") or []
        shape = "-".join(str(b) for b in bursts) if bursts else "?"
        return f"{setup}, adversarial (each turn to a random replica, bursts of {shape}){think}"
    return f"{setup}, through the website gateway{think}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.2f} s"


def fmt_share(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def fmt_process(summary: dict[str, Any] | None) -> str:
    if not summary:
        return "—"
    cpu = summary.get("cpu_percent")
    processes = len(summary.get("pids") or [])
    together = f" ({processes} processes)" if processes > 1 else ""
    return f"{summary['rss_max_mib']:.0f} MiB · {'—' if cpu is None else f'{cpu:.0f}'} %{together}"


def fmt_violations(ordering: dict[str, Any] | None) -> str:
    if not ordering:
        return "—"
    kinds = ", ".join(f"{kind} {n}" for kind, n in ordering["by_kind"].items() if n)
    return f"{ordering['violations']}{f' ({kinds})' if kinds else ''}"


def load_table(bots: dict[str, Any]) -> str:
    present = {role for bot in bots.values() for level in bot["levels"] for role in level["processes"]}
    roles = [(key, label) for key, label in ROLES if key in present]
    checked = any("ordering" in level for bot in bots.values() for level in bot["levels"])
    head = (
        ["bot", "sessions", "turns", "turns/s", "p50", "p95", "p99", "errors"]
        + (["history violations"] if checked else [])
        + ["Rasa CPU per turn"]
        + [f"{label} (RSS max · CPU)" for _, label in roles]
        + ["other processes' CPU"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, bot in bots.items():
        for lv in bot["levels"]:
            errors = f"{lv['errors']} ({lv['error_rate'] * 100:.1f} %)"
            if lv["errors_by_kind"]:
                errors += " " + ", ".join(f"{k} {v}" for k, v in lv["errors_by_kind"].items())
            row = [
                label(name, bot),
                str(lv["sessions"]),
                str(lv["attempted"]),
                f"{lv['turns_per_s']:.1f}",
                fmt_ms(lv["p50_ms"]),
                fmt_ms(lv["p95_ms"]),
                fmt_ms(lv["p99_ms"]),
                errors,
                *([fmt_violations(lv.get("ordering"))] if checked else []),
                fmt_ms(lv.get("rasa_cpu_ms_per_turn")),
            ] + [fmt_process(lv["processes"].get(key)) for key, _ in roles]
            other = lv.get("other_cpu_percent")
            row.append("—" if other is None else f"{other:.0f} %")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def ordering_table(bots: dict[str, Any]) -> str:
    """Every checked level: the conversations, what was stored, and the violations by kind."""
    kinds: list[str] = []
    for bot in bots.values():
        for level in bot["levels"]:
            for kind in (level.get("ordering") or {}).get("by_kind", {}):
                if kind not in kinds:
                    kinds.append(kind)
    head = ["bot", "sessions", "conversations", "turns sent", "user events stored", "HTTP errors", *kinds, "holds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, bot in bots.items():
        for lv in bot["levels"]:
            o = lv.get("ordering")
            if not o:
                continue
            row = [
                label(name, bot),
                str(lv["sessions"]),
                str(o["conversations"]),
                str(o["turns_sent"]),
                str(o["user_events"]),
                str(o["http_errors"]),
                *[str(o["by_kind"].get(kind, 0)) for kind in kinds],
                "yes" if o["holds"] else "**no**",
            ]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def single_turn_table(single: dict[str, Any]) -> str:
    m, d, share = single["measured"], single["derived"], single["share_of_mean_turn"]
    rows = [
        ("whole turn through the gateway", "measured: client side", m["whole_turn_client"], None),
        ("gateway overhead", "derived: whole turn − Rasa turn", d["gateway_overhead"], share["gateway"]),
        ("Rasa turn", "measured: the gateway's `upstream_ms`", m["rasa_turn_gateway_upstream"], None),
        ("· NLU parse", "measured apart: `POST /model/parse`, same texts", m["nlu_parse_model_parse"], share["parse"]),
        (
            f"· action server ({m['action_calls_per_turn']} calls/turn)",
            "measured: sum of the action log's `duration_ms`",
            m["action_server_in_actions"],
            share["actions"],
        ),
        (
            "· rest: policies, tracker store, lock, HTTP to actions",
            "derived: Rasa turn − parse − actions",
            d["rasa_rest"],
            share["rest"],
        ),
    ]
    lines = ["| stage | how | p50 | p95 | mean | share of the mean turn |", "|---|---|---|---|---|---|"]
    for stage, how, dist, sh in rows:
        lines.append(
            f"| {stage} | {how} | {fmt_ms(dist['p50_ms'])} | {fmt_ms(dist['p95_ms'])} | "
            f"{fmt_ms(dist['mean_ms'])} | {fmt_share(sh)} |"
        )
    lines += [
        "",
        "| utterance | turns | whole p50 | Rasa p50 | parse p50 | actions p50 | action calls |",
        "|---|---|---|---|---|---|---|",
    ]
    for text, t in single["by_text"].items():
        lines.append(
            f"| {text} | {t['turns']} | {fmt_ms(t['whole_p50_ms'])} | {fmt_ms(t['rasa_p50_ms'])} | "
            f"{fmt_ms(t['parse_p50_ms'])} | {fmt_ms(t['actions_p50_ms'])} | {t['action_calls']} |"
        )
    return "\n".join(lines)


def rasa_alone_table(bots: dict[str, Any]) -> str:
    lines = [
        "| bot | turns | turn p50 | turn p95 | NLU parse p50 | NLU parse p95 | rest p50 (derived: turn − parse) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, bot in bots.items():
        alone = bot.get("single_turn_rasa")
        if not alone:
            continue
        m, d = alone["measured"], alone["derived"]
        lines.append(
            f"| {label(name, bot)} | {alone['turns']} | {fmt_ms(m['turn_client']['p50_ms'])} | "
            f"{fmt_ms(m['turn_client']['p95_ms'])} | {fmt_ms(m['nlu_parse_model_parse']['p50_ms'])} | "
            f"{fmt_ms(m['nlu_parse_model_parse']['p95_ms'])} | {fmt_ms(d['rest']['p50_ms'])} |"
        )
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    config = results["config"]
    bots = results["bots"]
    turns = sorted(
        {lv.get("turns_per_session") or config.get("turns") for b in bots.values() for lv in b["levels"]} - {None}
    )
    thinks = sorted({(b.get("config") or {}).get("think_s") or 0 for b in bots.values()})
    pace = (
        "sent back to back (no think time)"
        if thinks == [0]
        else "each after a think time (the entry says its mean: exponential unless the JSON says uniform; "
        "a session also thinks before its first turn) or back to back"
    )
    out = [
        "# Load benchmark: stock `rasa init` bot vs tandem",
        "",
        f"`{results['command']}` · {results['date']} · commit `{results['git_commit'][:12]}`"
        f"{' + uncommitted changes' if results.get('git_changes') else ''} · {machine['nproc']} cores "
        f"({machine['cpu_model']}), {machine['memory_gib']} GiB · Rasa {machine.get('rasa', '?')}",
        "",
        f"Each level: N concurrent sessions, each a scripted conversation of {' or '.join(map(str, turns)) or '?'} "
        f"turns {pace}; the bots run one after the other, never at the same time. "
        "Latency percentiles cover every attempted turn; turns/s counts completed turns over the "
        "level's wall time; Rasa CPU per turn = the Rasa process's CPU time over the level / completed "
        "turns (all replicas together: steadier than wall times on a shared machine). CPU 100 % = one core busy; "
        '"other processes" is what the rest of the machine used meanwhile (the machine is shared: a '
        "high value means that level was disturbed, and such a level is measured again).",
        "",
    ]
    if any(b.get("run") != results.get("run") for b in bots.values()):
        out += ["**Bots from different runs** (`--only`; see `run` per bot): compare with care.", ""]
    trees = {(b.get("git_commit"), tuple(b.get("git_changes", []))) for b in bots.values()}
    if len(trees) > 1:
        out += ["**The working tree changed between the bots** (see `git_commit` / `git_changes` per bot).", ""]
    out += [load_table(bots), ""]
    for name, bot in bots.items():
        shown = max((lv.get("turns_per_session") or 0 for lv in bot["levels"]), default=0) or config.get("turns")
        script = bot["script"][:shown] if shown else bot["script"]
        out.append(f"- {label(name, bot)}: " + " → ".join(f"“{t}”" for t in script))
    if any("ordering" in lv for b in bots.values() for lv in b["levels"]):
        out += [
            "",
            "## Every conversation's history, as Rasa stored it (benchmarks/load/ordering.py)",
            "",
            "Each message sent exactly once, in order (a burst's turns in any order among themselves), "
            "never interleaved with or run at the same time as another turn, with the replies its client "
            'got; "holds" = no violation and no HTTP error.',
            "",
            ordering_table(bots),
        ]
    if any(b.get("single_turn_rasa") for b in bots.values()):
        out += [
            "",
            "## One customer alone, straight to Rasa (sequential turns, the same scripts)",
            "",
            rasa_alone_table(bots),
        ]
    for name, bot in bots.items():
        single = bot.get("single_turn")
        if single:
            out += [
                "",
                f"## One customer alone: {label(name, bot)} ({single['turns']} sequential turns, "
                f"a new conversation every {single['conversation_turns']}; {single['errors']} errors)",
                "",
                single_turn_table(single),
            ]
    out += ["", "![turns/s and p95 by concurrency](load.png)", ""]
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = sum(1 for bot in results["bots"].values() if bot["levels"])
    # The legend goes under the plots (the labels say the configuration, they are long): a line each.
    legend_inches = 0.2 * entries + 0.3
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2 + legend_inches))
    for name, bot in results["bots"].items():
        levels = bot["levels"]
        if not levels:
            continue
        x = [lv["sessions"] for lv in levels]
        text = label(name, bot)
        # Adversarial levels dashed, levels with think time dotted: a different load than back to back.
        config = bot.get("config") or {}
        style = "--" if config.get("adversarial") else ":" if config.get("think_s") else "-"
        left.plot(x, [lv["turns_per_s"] for lv in levels], marker="o", linestyle=style, label=text)
        right.plot(x, [(lv["p95_ms"] or 0) / 1000 for lv in levels], marker="o", linestyle=style, label=text)
    levels = sorted({lv["sessions"] for bot in results["bots"].values() for lv in bot["levels"]})
    right.set_yscale("log")
    for ax, title, unit in ((left, "throughput", "completed turns/s"), (right, "p95 per turn (log)", "seconds")):
        ax.set_xscale("log")
        ax.set_xticks(levels, [str(n) for n in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrent sessions")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    left.set_ylim(bottom=0)
    p95s = [(lv["p95_ms"] or 0) / 1000 for bot in results["bots"].values() for lv in bot["levels"] if lv["p95_ms"]]
    if p95s:
        ticks = [t for t in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 60) if min(p95s) / 2 <= t <= max(p95s) * 2]
        right.set_yticks(ticks, [f"{t:g} s" for t in ticks])
    handles, texts = left.get_legend_handles_labels()
    fig.legend(handles, texts, loc="lower center", ncol=1, fontsize=8, frameon=False)
    machine = results["machine"]
    fig.suptitle(f"{machine['nproc']} cores, {results['date'][:10]}, commit {results['git_commit'][:8]}", fontsize=9)
    fig.tight_layout(rect=(0, legend_inches / (4.2 + legend_inches), 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)
