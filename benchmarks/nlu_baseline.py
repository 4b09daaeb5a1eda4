"""NLU baseline of the bot's own data: intent and entity F1 on a held-out 20 %, training time,
model size. Runs in the Rasa environment:

    .venv-rasa/bin/python -m benchmarks.nlu_baseline            # split, train NLU, evaluate
    .venv-rasa/bin/python -m benchmarks.nlu_baseline --full     # also time a full `rasa train`
    .venv-rasa/bin/python -m benchmarks.nlu_baseline --full --config config-diet.yml \
        --results benchmarks/results/nlu_baseline-diet.json        # the DIET pipeline

(as a module from the project root, so the model's custom component, tandem_nlu, imports)

Writes benchmarks/results/nlu_baseline.json (and prints it; --results elsewhere). Intermediate
files go to benchmarks/work/nlu_baseline/ (ignored by git), or benchmarks/work/nlu_baseline-<config
stem>/ for another --config, so two pipelines' runs never share a directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / "work" / "nlu_baseline"
RESULTS = ROOT / "benchmarks" / "results" / "nlu_baseline.json"
RASA = str(Path(sys.executable).parent / "rasa")
ENV = {
    **os.environ,
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
    # the custom NLU component (tandem_nlu) is imported from the project root
    "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
}


ENTITY_EXTRACTORS = ("CRFEntityExtractor", "DIETClassifier")


def run(command: list[str]) -> float:
    """Run a rasa command; its wall time in seconds."""
    start = time.perf_counter()
    # a cache of its own, emptied per run: training times are never cache hits
    env = {**ENV, "RASA_CACHE_DIRECTORY": str(WORK / "rasa-cache")}
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def split(seed: int) -> tuple[Path, Path, dict[str, int]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(ROOT / "data" / "nlu"))
    train, test = data.train_test_split(train_frac=0.8, random_seed=seed)
    WORK.mkdir(parents=True, exist_ok=True)
    train_path, test_path = WORK / "train.yml", WORK / "test.yml"
    train.persist_nlu(str(train_path))
    test.persist_nlu(str(test_path))
    counts = {
        "examples": len(data.intent_examples),
        "train": len(train.intent_examples),
        "test": len(test.intent_examples),
        "intents": len(data.intents),
    }
    return train_path, test_path, counts


async def parse_all(model: Path, test_path: Path) -> dict[str, Any]:
    """Through the model's own parse (so FallbackClassifier's nlu_fallback counts as a miss)."""
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data

    agent = Agent.load(str(model))
    examples = load_data(str(test_path)).intent_examples
    correct = fallback = 0
    latencies = []
    for example in examples:
        start = time.perf_counter()
        parsed = await agent.parse_message(example.get("text"))
        latencies.append((time.perf_counter() - start) * 1000)
        predicted = parsed["intent"]["name"]
        expected = example.get("intent")
        correct += predicted == expected
        fallback += predicted == "nlu_fallback"
    latencies.sort()
    return {
        "accuracy_through_parse": round(correct / len(examples), 4),
        "share_sent_to_fallback": round(fallback / len(examples), 4),
        "parse_ms_p50": round(latencies[len(latencies) // 2], 2),
        "parse_ms_p95": round(latencies[int(len(latencies) * 0.95)], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--full", action="store_true", help="also time a full `rasa train --force`")
    parser.add_argument("--config", default="config.yml", help="pipeline to measure (default: the bot's)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write the JSON")
    parser.add_argument("--work", type=Path, help="intermediate files (default: per --config, under benchmarks/work/)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    global WORK
    if args.work:
        WORK = args.work.resolve()
    elif Path(args.config).name != "config.yml":
        WORK = WORK.with_name(f"{WORK.name}-{Path(args.config).stem}")

    shutil.rmtree(WORK / "rasa-cache", ignore_errors=True)
    train_path, test_path, counts = split(args.seed)
    models = WORK / "models"
    nlu_seconds = run(
        [
            RASA,
            "train",
            "nlu",
            "--config",
            args.config,
            "--nlu",
            str(train_path),
            "--domain",
            "domain.yml",
            "--out",
            str(models),
            "--fixed-model-name",
            "split",
        ]
    )
    model = models / "split.tar.gz"
    report = WORK / "report"
    shutil.rmtree(report, ignore_errors=True)  # no report of an earlier run's extractor is read
    run([RASA, "test", "nlu", "--model", str(model), "--nlu", str(test_path), "--out", str(report), "--no-plot"])
    intents = json.loads((report / "intent_report.json").read_text())
    # the trained entity extractor's report (DIETClassifier or CRFEntityExtractor; not the regexes)
    extractor = next(name for name in ENTITY_EXTRACTORS if (report / f"{name}_report.json").exists())
    entities = json.loads((report / f"{extractor}_report.json").read_text())
    regex_entities_path = report / "RegexEntityExtractor_report.json"
    selector_path = report / "response_selection_report.json"
    result: dict[str, Any] = {
        # the command as run (`make bench-nlu-baseline` runs it with --full)
        "command": " ".join([".venv-rasa/bin/python -m benchmarks.nlu_baseline", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "data": counts,
        "seed": args.seed,
        "intent_f1_weighted": round(intents["weighted avg"]["f1-score"], 4),
        "intent_f1_macro": round(intents["macro avg"]["f1-score"], 4),
        "intent_accuracy": round(intents["accuracy"], 4),
        "entity_extractor": extractor,
        "entity_f1_weighted": round(entities["weighted avg"]["f1-score"], 4),
        "entity_f1_per_entity": {
            name: round(values["f1-score"], 4)
            for name, values in entities.items()
            if isinstance(values, dict) and "f1-score" in values and "avg" not in name and name != "no_entity"
        },
        "nlu_training_seconds_80pct": round(nlu_seconds, 1),
        "nlu_model_mb": round(model.stat().st_size / 1e6, 1),
    }
    if regex_entities_path.exists():
        regex = json.loads(regex_entities_path.read_text())
        result["entity_f1_weighted_regex"] = round(regex["weighted avg"]["f1-score"], 4)
    if selector_path.exists():
        selector = json.loads(selector_path.read_text())
        result["faq_response_selection_f1_weighted"] = round(selector["weighted avg"]["f1-score"], 4)
    result.update(asyncio.run(parse_all(model, test_path)))
    if args.full:
        full_models = WORK / "full"
        result["full_training_seconds"] = round(
            run(
                [
                    RASA,
                    "train",
                    "--force",
                    "--config",
                    args.config,
                    "--domain",
                    "domain.yml",
                    "--data",
                    "data",
                    "--out",
                    str(full_models),
                    "--fixed-model-name",
                    "full",
                ]
            ),
            1,
        )
        result["full_model_mb"] = round((full_models / "full.tar.gz").stat().st_size / 1e6, 1)
    result["peak_rss_mb_of_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
