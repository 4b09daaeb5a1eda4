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


def label(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    if name.endswith("-gateway"):
        return f"{label(name.removesuffix('-gateway'))} through the website gateway"
    if name.startswith("tandem-"):
        return f"tandem ({name.removeprefix('tandem-')} pipeline; Rasa's gateway channel)"
    return name


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
    return f"{summary['rss_max_mib']:.0f} MiB · {'—' if cpu is None else f'{cpu:.0f}'} %"


def load_table(bots: dict[str, Any]) -> str:
    present = {role for bot in bots.values() for level in bot["levels"] for role in level["processes"]}
    roles = [(key, label) for key, label in ROLES if key in present]
    head = (
        ["bot", "sessions", "turns", "turns/s", "p50", "p95", "p99", "errors", "Rasa CPU per turn"]
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
                label(name),
                str(lv["sessions"]),
                str(lv["attempted"]),
                f"{lv['turns_per_s']:.1f}",
                fmt_ms(lv["p50_ms"]),
                fmt_ms(lv["p95_ms"]),
                fmt_ms(lv["p99_ms"]),
                errors,
                fmt_ms(lv.get("rasa_cpu_ms_per_turn")),
            ] + [fmt_process(lv["processes"].get(key)) for key, _ in roles]
            other = lv.get("other_cpu_percent")
            row.append("—" if other is None else f"{other:.0f} %")
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
            f"| {label(name)} | {alone['turns']} | {fmt_ms(m['turn_client']['p50_ms'])} | "
            f"{fmt_ms(m['turn_client']['p95_ms'])} | {fmt_ms(m['nlu_parse_model_parse']['p50_ms'])} | "
            f"{fmt_ms(m['nlu_parse_model_parse']['p95_ms'])} | {fmt_ms(d['rest']['p50_ms'])} |"
        )
    return "\n".join(lines)


def render(results: dict[str, Any]) -> str:
    machine = results["machine"]
    config = results["config"]
    out = [
        "# Load benchmark: stock `rasa init` bot vs tandem",
        "",
        f"`{results['command']}` · {results['date']} · commit `{results['git_commit'][:12]}`"
        f"{' + uncommitted changes' if results.get('git_changes') else ''} · {machine['nproc']} cores "
        f"({machine['cpu_model']}), {machine['memory_gib']} GiB · Rasa {machine.get('rasa', '?')}",
        "",
        f"Each level: N concurrent sessions, each a scripted conversation of {config['turns']} turns sent "
        "back to back (no think time); the bots run one after the other, never at the same time. "
        "Latency percentiles cover every attempted turn; turns/s counts completed turns over the "
        "level's wall time; Rasa CPU per turn = the Rasa process's CPU time over the level / completed "
        "turns (steadier than wall times on a shared machine). CPU 100 % = one core busy; "
        '"other processes" is what the rest of the machine used meanwhile (the machine is shared: a '
        "high value means that level was disturbed, and such a level is measured again).",
        "",
    ]
    if any(b.get("run") != results.get("run") for b in results["bots"].values()):
        out += ["**Bots from different runs** (`--only`; see `run` per bot): compare with care.", ""]
    trees = {(b.get("git_commit"), tuple(b.get("git_changes", []))) for b in results["bots"].values()}
    if len(trees) > 1:
        out += ["**The working tree changed between the bots** (see `git_commit` / `git_changes` per bot).", ""]
    out += [load_table(results["bots"]), ""]
    for name, bot in results["bots"].items():
        out.append(f"- {label(name)}: " + " → ".join(f"“{t}”" for t in bot["script"][: config["turns"]]))
    if any(b.get("single_turn_rasa") for b in results["bots"].values()):
        out += [
            "",
            "## One customer alone, straight to Rasa (sequential turns, the same scripts)",
            "",
            rasa_alone_table(results["bots"]),
        ]
    for name, bot in results["bots"].items():
        single = bot.get("single_turn")
        if single:
            out += [
                "",
                f"## One customer alone: {label(name)} ({single['turns']} sequential turns, "
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

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, bot in results["bots"].items():
        levels = bot["levels"]
        if not levels:
            continue
        x = [lv["sessions"] for lv in levels]
        text = label(name)
        left.plot(x, [lv["turns_per_s"] for lv in levels], marker="o", label=text)
        right.plot(x, [(lv["p95_ms"] or 0) / 1000 for lv in levels], marker="o", label=text)
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
    left.legend(fontsize=8)
    machine = results["machine"]
    fig.suptitle(f"{machine['nproc']} cores, {results['date'][:10]}, commit {results['git_commit'][:8]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
