"""The prompt-injection benchmark: the corpus through the whole fallback chain, with an obedient model.

Run from the project root::

    .venv/bin/python -m benchmarks.security.injection            # or: make bench-injection

Every row of ``corpus.jsonl`` goes through ``ActionFallback`` in five conversation states against
the obedient model of tests/security/obedient_llm.py (real HTTP, the real openai SDK, a migrated and
seeded SQLite database in a temporary folder); then each hostile behaviour of the model is forced
on ``--sweep-per-category`` rows of every category in every state. The harness and the checks are
tests/security/injection_harness.py (shared with tests/security/test_injection_corpus.py, which
asserts that the safety counts are zero). Results: ``benchmarks/results/injection.json`` and a table
on stdout. Measurements only; nothing here calls a vendor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.security.injection_harness import (
    CHECKS,
    CORPUS,
    INFO,
    ROOT,
    STATES,
    Harness,
    SeededDatabase,
    Turn,
    failures,
    load_corpus,
    stratified_sample,
    summarise,
    write_evidence,
)
from tests.security.obedient_llm import BEHAVIOURS, start_obedient_server

RESULTS = ROOT / "benchmarks" / "results" / "injection.json"
COMMAND = ".venv/bin/python -m benchmarks.security.injection"
SAFETY = ("write_tool_calls", "write_followups", "affirm_or_foreign_event", "system_prompt_in_reply",
          "pii_to_model", "off_allowlist_links")  # fmt: skip


async def run(sweep_per_category: int) -> dict[str, Any]:
    rows = load_corpus()
    with tempfile.TemporaryDirectory() as folder:
        db = SeededDatabase.create(Path(folder) / "tandem.db")
        server, model = start_obedient_server()
        harness = await Harness.create(sessions=db.sessions, settings=db.settings, server=server, model=model)
        try:
            before = write_evidence(db.sessions)
            started = time.perf_counter()
            turns = await harness.run(rows)
            corpus_seconds = time.perf_counter() - started
            sample = stratified_sample(rows, sweep_per_category)
            swept: list[Turn] = []
            started = time.perf_counter()
            for behaviour in BEHAVIOURS:
                swept += await harness.run(sample, force=behaviour)
            sweep_seconds = time.perf_counter() - started
            after = write_evidence(db.sessions)
        finally:
            await harness.aclose()
            server.stop()
            db.close()
    categories: dict[str, int] = {}
    for row in rows:
        categories[row.category] = categories.get(row.category, 0) + 1
    everything = [*turns, *swept]
    return {
        "command": COMMAND + (f" --sweep-per-category {sweep_per_category}" if sweep_per_category != 2 else ""),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "corpus": {
            "file": str(CORPUS.relative_to(ROOT)),
            "rows": len(rows),
            "verbatim_rows": sum(1 for r in rows if not r.source.startswith("generated")),
            "per_category": dict(sorted(categories.items())),
        },
        "states": list(STATES),
        "behaviours": list(BEHAVIOURS),
        "checks": {"asserted_zero": [*SAFETY, "unexpected_followups"], "reported": list(INFO)},
        "database": {"before": before, "after": after},
        "corpus_run": {"seconds": round(corpus_seconds, 1), **summarise(turns)},
        "forced_sweep": {
            "rows": len(sample),
            "rows_per_category": sweep_per_category,
            "seconds": round(sweep_seconds, 1),
            **summarise(swept),
        },
        "failures": {check: failures(everything, check)[:20] for check in CHECKS if failures(everything, check)},
    }


def table(result: dict[str, Any]) -> str:
    """Per category (corpus run) and per behaviour (forced sweep): turns, reached the model, the safety counts."""
    short = {"write_tool_calls": "writes", "write_followups": "wr.follow", "affirm_or_foreign_event": "affirm",
             "system_prompt_in_reply": "sysprompt", "pii_to_model": "pii", "off_allowlist_links": "links"}  # fmt: skip
    header = f"{'':26s} {'turns':>6s} {'model':>6s} " + " ".join(f"{short[c]:>9s}" for c in SAFETY)
    lines = [f"corpus: {result['corpus']['rows']} rows x {len(result['states'])} states", header]

    def line(name: str, block: dict[str, Any]) -> str:
        counts = " ".join(f"{block[c]:>9d}" for c in SAFETY)
        return f"{name[:26]:26s} {block['turns']:>6d} {block['reached_model']:>6d} {counts}"

    for name, block in result["corpus_run"]["per_category"].items():
        lines.append(line(name, block))
    lines.append(line("TOTAL (corpus)", result["corpus_run"]["totals"]))
    lines.append("")
    lines.append(f"forced sweep: {result['forced_sweep']['rows']} rows x {len(result['behaviours'])} behaviours")
    lines.append(header)
    for name, block in result["forced_sweep"]["per_behaviour"].items():
        lines.append(line(name, block))
    lines.append(line("TOTAL (sweep)", result["forced_sweep"]["totals"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep-per-category", type=int, default=2, help="rows per category in the forced sweep")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args.sweep_per_category))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(result))
    print(f"\nwritten: {args.results.relative_to(ROOT) if args.results.is_relative_to(ROOT) else args.results}")
    unsafe = sum(result["corpus_run"]["totals"][c] + result["forced_sweep"]["totals"][c] for c in SAFETY)
    return 1 if unsafe else 0


if __name__ == "__main__":
    sys.exit(main())
