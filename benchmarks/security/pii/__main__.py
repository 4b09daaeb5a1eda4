"""``python -m benchmarks.security.pii``: score the PII masker, write ``benchmarks/results/pii.json``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.security.pii import PATTERN_TYPES, ROOT, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "pii.json")
    args = parser.parse_args(argv)
    results = {"command": "python -m benchmarks.security.pii " + " ".join(argv or sys.argv[1:]).strip(), **run()}
    results["command"] = results["command"].strip()
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, scores in results["scores"].items():
        cells = ", ".join(
            f"{kind} R={s['recall']} P={s['precision']} (n={s['support']})"
            for kind, s in scores.items()
            if s["support"]
        )
        print(f"{name}: {cells}")
    fp = results["false_positives_on_airline_turns"]
    print(f"ordinary airline turns: {fp['turns']}, masked: {fp['masked_turns']}")
    print(f"booking references: {results['booking_references_in_nlu_data']}")
    print(f"written to {args.results}")
    low = [
        (name, kind)
        for name, scores in results["scores"].items()
        for kind in PATTERN_TYPES
        if scores[kind]["support"] and (scores[kind]["recall"] or 0) < 0.95
    ]
    if low:
        print(f"below the pattern recall goal: {low}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
