"""CLINC150: is this turn a known intent or not? Pipelines compared through their own parse.

Runs in the Rasa environment (make bench-nlu calls it):

    .venv-rasa/bin/python -m benchmarks.clinc150.bench all             # train what is missing, evaluate, tune, report
    .venv-rasa/bin/python -m benchmarks.clinc150.bench train minilm    # one pipeline (see pipelines/)
    .venv-rasa/bin/python -m benchmarks.clinc150.bench evaluate minilm --test PATH   # any CLINC-format file
    .venv-rasa/bin/python -m benchmarks.clinc150.bench report          # table + plots from stored results
    .venv-rasa/bin/python -m benchmarks.clinc150.bench epochs --epochs 4   # MiniLM: val scores per epoch

Each pipeline is a Rasa config in pipelines/<name>.yml; "<name>+oos" trains the same pipeline with
CLINC's 100 out-of-scope training utterances as an extra intent `oos` ("threshold plus a trained
out-of-scope intent"), from pipelines/<name>+oos.yml (the same components, its own thresholds).
Models are kept in benchmarks/work/clinc150/models (ignored by git) so evaluation alone is quick.
The FallbackClassifier's threshold and ambiguity threshold are tuned on the validation split only;
`--test PATH` applies the tuned values to another file (keys `test` and `oos_test`, items
[text, intent]). The pipeline files carry the tuned thresholds, so a model trained from one and
served as it is scores what the table says; the report flags a file whose thresholds differ from
the tuned ones, and scores the evaluated model as it was served too (`served_as_is`, from its own
parse). The table is rendered from every results/<name>--val.json, not only this run's pipelines.

Scoring goes through Agent.parse_message, i.e. the model's own pipeline including its
FallbackClassifier; the ranking the classifier produced before the fallback rule is kept, so one
parse per message serves every threshold of the sweep (the rule is FallbackClassifier's:
fallback when the top confidence < threshold or top − second < ambiguity threshold).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DATA = ROOT.parent / "shared" / "data" / "clinc150" / "clinc150_trainval.json"
WORK = ROOT / "benchmarks" / "work" / "clinc150"
RESULTS = HERE / "results"
PIPELINES = HERE / "pipelines"
RASA = str(Path(sys.executable).parent / "rasa")
ENV = {
    **os.environ,
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
}
OOS = "oos"
FALLBACK = "nlu_fallback"
# rasa.nlu.classifiers.fallback_classifier.FallbackClassifier.get_default_config() in Rasa 3.6
FALLBACK_DEFAULTS = {"threshold": 0.3, "ambiguity_threshold": 0.1}
# Budget for in-scope turns wrongly sent to the fallback (each one costs an LLM call) when tuning
# on validation. The goal's ceiling is 5 %; tuning at 3 % leaves a margin for held-out data, whose
# confidences run lower than the validation split's (the model saw the same annotators' style).
FALLBACK_BUDGET = 0.03
THRESHOLDS = [round(x, 3) for x in np.arange(0.0, 1.0001, 0.005)]
AMBIGUITY = [0.0, 0.02, 0.05, 0.1]


def load_clinc(path: Path) -> dict[str, list[list[str]]]:
    return json.loads(path.read_text(encoding="utf-8"))


def split_keys(data: dict[str, Any]) -> tuple[str, str]:
    """The in-scope and out-of-scope keys of a CLINC-format file (val or test)."""
    for ins, oos in (("test", "oos_test"), ("val", "oos_val")):
        if ins in data and oos in data:
            return ins, oos
    raise SystemExit("the file needs keys test/oos_test (or val/oos_val), items [text, intent]")


# -- data ------------------------------------------------------------------------------------


def write_training_data(with_oos: bool) -> Path:
    """CLINC train (+ oos_train as intent `oos`) as Rasa NLU YAML."""
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    data = load_clinc(DATA)
    items = data["train"] + ([[t, OOS] for t, _ in data["oos_train"]] if with_oos else [])
    messages = [Message.build(text=text, intent=intent) for text, intent in items]
    path = WORK / "data" / ("train_oos.yml" if with_oos else "train.yml")
    path.parent.mkdir(parents=True, exist_ok=True)
    TrainingData(training_examples=messages).persist_nlu(str(path))
    return path


def variant(name: str) -> tuple[str, bool]:
    base, _, extra = name.partition("+")
    return base, extra == "oos"


def model_path(name: str) -> Path:
    return WORK / "models" / f"{name}.tar.gz"


def config_path(name: str) -> Path:
    """pipelines/<name>.yml; a variant without a file of its own uses its base pipeline's."""
    own = PIPELINES / f"{name}.yml"
    return own if own.exists() else PIPELINES / f"{variant(name)[0]}.yml"


def fallback_thresholds(config: dict[str, Any] | None) -> dict[str, float] | None:
    """The FallbackClassifier's (threshold, ambiguity threshold) in a pipeline (Rasa's defaults
    for keys left out); None without a FallbackClassifier."""
    for step in (config or {}).get("pipeline", []):
        if step.get("name") == "FallbackClassifier":
            return {
                "threshold": float(step.get("threshold", FALLBACK_DEFAULTS["threshold"])),
                "ambiguity_threshold": float(step.get("ambiguity_threshold", FALLBACK_DEFAULTS["ambiguity_threshold"])),
            }
    return None


def file_thresholds(name: str) -> dict[str, float] | None:
    import yaml

    path = config_path(name)
    return fallback_thresholds(yaml.safe_load(path.read_text(encoding="utf-8"))) if path.exists() else None


def same_thresholds(a: dict[str, float] | None, b: dict[str, Any] | None) -> bool:
    if not a or not b:
        return False
    return all(round(float(a[k]), 6) == round(float(b[k]), 6) for k in ("threshold", "ambiguity_threshold"))


# -- training --------------------------------------------------------------------------------


def train(name: str) -> dict[str, Any]:
    """Train one pipeline with `rasa train nlu`; wall time, peak memory, model size."""
    _, with_oos = variant(name)
    config = config_path(name)
    data = write_training_data(with_oos)
    out = model_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    log = WORK / "logs" / f"train-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        RASA,
        "train",
        "nlu",
        "--config",
        str(config),
        "--nlu",
        str(data),
        "--out",
        str(out.parent),
        "--fixed-model-name",
        name,
    ]
    started = time.perf_counter()
    with log.open("w") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"training {name} failed; see {log}")
    info = {
        "pipeline": name,
        "config": str(config.relative_to(ROOT)),
        "training_seconds": round(seconds, 1),
        "training_peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "training_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "model_mb": round(out.stat().st_size / 1e6, 1),
        "epochs": epochs_of(config),
        "fallback_thresholds": file_thresholds(name),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(RESULTS / "training" / f"{name}.json", info)
    print(json.dumps(info))
    return info


def epochs_of(config: Path) -> dict[str, int]:
    import yaml

    pipeline = yaml.safe_load(config.read_text(encoding="utf-8"))["pipeline"]
    return {step["name"]: step["epochs"] for step in pipeline if "epochs" in step}


def epoch_curve(epochs: int, with_oos: bool) -> dict[str, Any]:
    """Early stopping on validation for the MiniLM classifier: fine-tune once for `epochs` epochs
    (same code and defaults as the Rasa component) and score the validation split after each
    epoch, at every threshold; the epoch count in pipelines/minilm.yml comes from this curve."""
    from tandem_nlu.minilm import (
        MiniLMClassifier,
        Predictor,
        TrainingOptions,
        WordPieces,
        fine_tune,
        pretrained_dir,
    )

    data = load_clinc(DATA)
    train_items = data["train"] + ([[t, OOS] for t, _ in data["oos_train"]] if with_oos else [])
    labels = sorted({intent for _, intent in train_items})
    index = {label: i for i, label in enumerate(labels)}
    pretrained = pretrained_dir()
    tokens = WordPieces(pretrained / "tokenizer.json", 64)
    model = MiniLMClassifier.from_pretrained(len(labels))
    predictor = Predictor(model)
    val_items = [(t, i) for t, i in data["val"]] + [(t, OOS) for t, _ in data["oos_val"]]
    val_seqs = tokens.encode([t for t, _ in val_items])
    curve: list[dict[str, Any]] = []

    def after_epoch(epoch: int) -> None:
        probs = predictor.predict(val_seqs)
        rows = []
        for (_text, gold), row in zip(val_items, probs, strict=True):
            top = np.argsort(-row)[:2]
            rows.append({"gold": gold, "ranking": [[labels[i], float(row[i])] for i in top]})
        tuned = tune(rows)
        curve.append(
            {"epoch": epoch, "tuned": tuned, "auroc_in_scope": round(auroc(rows), 4), "at_0.5": score(rows, 0.5, 0.0)}
        )
        print(json.dumps(curve[-1]), flush=True)

    started = time.perf_counter()
    history = fine_tune(
        model,
        tokens.encode([t for t, _ in train_items]),
        np.array([index[i] for _, i in train_items], dtype=np.int32),
        TrainingOptions(epochs=epochs, log=print),
        on_epoch_end=after_epoch,
    )
    result = {
        "epochs": epochs,
        "with_oos_intent": with_oos,
        "history": history,
        "curve": curve,
        "seconds_including_evaluation": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_json(RESULTS / f"minilm{'+oos' if with_oos else ''}--epochs.json", result)
    return result


# -- evaluation ------------------------------------------------------------------------------


async def _parse_all(
    model: Path, texts: list[str]
) -> tuple[list[dict[str, Any]], list[float], dict[str, float] | None]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))
    # the FallbackClassifier's thresholds as trained into the model (what serving it applies)
    nodes = agent.processor.model_metadata.predict_schema.nodes.values()
    steps = [{**node.config, "name": node.uses.__name__} for node in nodes]
    thresholds = fallback_thresholds({"pipeline": steps})
    await agent.parse_message("warm up")
    parses, latencies = [], []
    for text in texts:
        started = time.perf_counter()
        parsed = await agent.parse_message(text)
        latencies.append((time.perf_counter() - started) * 1000)
        parses.append(parsed)
    return parses, latencies, thresholds


def evaluate(name: str, test_path: Path) -> Path:
    """Parse every utterance of a CLINC-format file with the model; store the rankings."""
    data = load_clinc(test_path)
    ins_key, oos_key = split_keys(data)
    items = [(t, i) for t, i in data[ins_key]] + [(t, OOS) for t, _ in data[oos_key]]
    parses, latencies, thresholds = asyncio.run(_parse_all(model_path(name), [t for t, _ in items]))
    rows = []
    for (_text, gold), parsed in zip(items, parses, strict=True):
        ranking = [r for r in parsed.get("intent_ranking", []) if r["name"] != FALLBACK][:3]
        rows.append(
            {
                "gold": gold,
                "ranking": [[r["name"], round(float(r["confidence"]), 6)] for r in ranking],
                "parsed": (parsed.get("intent") or {}).get("name"),
            }
        )
    out = WORK / "predictions" / f"{name}--{test_path.stem}.json"
    write_json(
        out,
        {
            "pipeline": name,
            "file": str(test_path),
            "split": ins_key,
            "rows": rows,
            "model_thresholds": thresholds,
            "latency_ms": {
                "p50": round(float(np.percentile(latencies, 50)), 2),
                "p95": round(float(np.percentile(latencies, 95)), 2),
                "mean": round(float(np.mean(latencies)), 2),
            },
            "eval_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
    )
    print(f"{name}: parsed {len(rows)} utterances of {test_path.name} → {out.relative_to(ROOT)}")
    return out


def _arrays(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    gold = np.array([r["gold"] for r in rows])
    top = np.array([r["ranking"][0][0] if r["ranking"] else "" for r in rows])
    conf = np.array([r["ranking"][0][1] if r["ranking"] else 0.0 for r in rows])
    second = np.array([r["ranking"][1][1] if len(r["ranking"]) > 1 else 0.0 for r in rows])
    return {"gold": gold, "top": top, "conf": conf, "margin": conf - second}


def score(rows: list[dict[str, Any]], threshold: float, ambiguity: float) -> dict[str, float]:
    """Metrics at one (threshold, ambiguity threshold) under FallbackClassifier's rule."""
    return _score(_arrays(rows), threshold, ambiguity)


def _score(a: dict[str, np.ndarray], threshold: float, ambiguity: float) -> dict[str, float]:
    """`score` on the arrays of `_arrays`, so a sweep converts the rows once."""
    fallback = (a["conf"] < threshold) | (a["margin"] < ambiguity)
    flagged = fallback | (a["top"] == OOS)  # handed to the fallback chain
    ins, oos = a["gold"] != OOS, a["gold"] == OOS
    return {
        "threshold": threshold,
        "ambiguity_threshold": ambiguity,
        "in_scope_accuracy": float(np.mean((a["top"] == a["gold"])[ins] & ~flagged[ins])),
        "in_scope_accuracy_no_fallback": float(np.mean((a["top"] == a["gold"])[ins])),
        "oos_recall": float(np.mean(flagged[oos])),
        "oos_precision": float(np.sum(flagged & oos) / max(1, np.sum(flagged))),
        "in_scope_to_fallback": float(np.mean(flagged[ins])),
    }


def served(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The metrics of the model's own parse as served (its trained-in thresholds): `parsed` is the
    intent it answered, `nlu_fallback` (or `oos`) meaning handed to the fallback chain."""
    gold = np.array([r["gold"] for r in rows])
    parsed = np.array([r.get("parsed") or "" for r in rows])
    flagged = (parsed == FALLBACK) | (parsed == OOS)
    ins, oos = gold != OOS, gold == OOS
    return {
        "in_scope_accuracy": float(np.mean((parsed == gold)[ins])),
        "oos_recall": float(np.mean(flagged[oos])),
        "oos_precision": float(np.sum(flagged & oos) / max(1, np.sum(flagged))),
        "in_scope_to_fallback": float(np.mean(flagged[ins])),
    }


def auroc(rows: list[dict[str, Any]]) -> float:
    """AUROC of "in scope" from the confidence of the best in-scope intent (`oos` winning = 0):
    the probability that a random in-scope turn scores above a random out-of-scope one
    (Mann-Whitney U, ties counted half)."""
    a = _arrays(rows)
    in_conf = np.where(a["top"] == OOS, 0.0, a["conf"])
    pos, neg = in_conf[a["gold"] != OOS], in_conf[a["gold"] == OOS]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.sort(neg)
    below = np.searchsorted(order, pos, side="left")
    ties = np.searchsorted(order, pos, side="right") - below
    return float(np.sum(below + 0.5 * ties) / (len(pos) * len(neg)))


def tune(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The (threshold, ambiguity threshold) with the highest in-scope accuracy + out-of-scope recall
    (a wrong answer to an in-scope turn and a guessed intent for an out-of-scope turn weigh the
    same), among those sending ≤ FALLBACK_BUDGET of in-scope turns to the fallback; ties go to the
    higher in-scope accuracy."""
    best = None
    a = _arrays(rows)
    for amb in AMBIGUITY:
        for th in THRESHOLDS:
            s = _score(a, th, amb)
            if s["in_scope_to_fallback"] > FALLBACK_BUDGET:
                continue
            key = (round(s["in_scope_accuracy"] + s["oos_recall"], 9), s["in_scope_accuracy"])
            if best is None or key > best[0]:
                best = (key, s)
    assert best is not None  # threshold 0 and ambiguity 0 send nothing to the fallback
    return best[1]


def summarise(name: str, prediction_file: Path, tuned: dict[str, float] | None) -> dict[str, Any]:
    pred = json.loads(prediction_file.read_text(encoding="utf-8"))
    rows = pred["rows"]
    chosen = tuned or tune(rows)
    at = score(rows, chosen["threshold"], chosen["ambiguity_threshold"])
    training = read_json(RESULTS / "training" / f"{name}.json")
    model_thresholds = pred.get("model_thresholds") or training.get("fallback_thresholds")
    extra: dict[str, Any] = {}
    if rows and all("parsed" in r for r in rows):
        extra["served_as_is"] = {**(model_thresholds or {}), **served(rows)}
    curve = {"threshold_curve": threshold_curve(rows, chosen["ambiguity_threshold"])} if pred["split"] == "val" else {}
    return {
        "pipeline": name,
        "split": pred["split"],
        "tuned_on": "val",
        **at,
        "pipeline_file": str(_rel(config_path(name))),
        "pipeline_file_thresholds": file_thresholds(name),
        **extra,
        "auroc_in_scope": round(auroc(rows), 4),
        "parse_latency_ms": pred["latency_ms"],
        "eval_peak_rss_mb": pred["eval_peak_rss_mb"],
        **{
            k: training.get(k)
            for k in ("training_seconds", "training_cpu_seconds", "training_peak_rss_mb", "model_mb", "epochs", "note")
            if k in training
        },
        **curve,
    }


# -- report ----------------------------------------------------------------------------------


PUBLISHED = [
    ("Rasa 2019 (spaCy + sklearn), threshold — paper, test", 90.9, 31.2),
    ("Rasa 2019, extra oos intent — paper, test", 91.5, 45.3),
    ("BERT fine-tuned, threshold — paper, test", 96.2, 52.3),
]


def collect(results: Path | None = None) -> list[dict[str, Any]]:
    """Every stored validation result (results/<name>--val.json), DEFAULT_PIPELINES first, then
    by name: the table shows every pipeline measured, not only those of the last run."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((results or RESULTS).glob("*--val.json")):
        data = read_json(path)
        if data.get("split") == "val" and data.get("pipeline"):
            found[data["pipeline"]] = data
    order = {name: i for i, name in enumerate(DEFAULT_PIPELINES)}
    return [found[n] for n in sorted(found, key=lambda n: (order.get(n, len(order)), n))]


def threshold_notes(s: dict[str, Any]) -> list[str]:
    """Where the served model and the table would disagree: the pipeline file's FallbackClassifier
    thresholds are not the tuned ones, or the evaluated model was trained with other thresholds."""
    tuned = {k: s[k] for k in ("threshold", "ambiguity_threshold")}
    notes = []
    path = config_path(s["pipeline"])
    in_file = file_thresholds(s["pipeline"])
    if path.exists() and not same_thresholds(in_file, tuned):
        said = (
            f"{in_file['threshold']:.3f} / {in_file['ambiguity_threshold']:.2f}" if in_file else "no FallbackClassifier"
        )
        notes.append(
            f"{_rel(path)} says {said}, tuned {tuned['threshold']:.3f} / {tuned['ambiguity_threshold']:.2f}: "
            "a model trained from the file scores otherwise when served; write the tuned values into it"
        )
    as_is = s.get("served_as_is")
    if as_is and "threshold" in as_is and not same_thresholds(as_is, tuned):
        notes.append(
            f"the evaluated model was trained with {as_is['threshold']:.3f} / {as_is['ambiguity_threshold']:.2f}; "
            f"served as it is it scores in-scope acc {100 * as_is['in_scope_accuracy']:.1f}, "
            f"OOS recall {100 * as_is['oos_recall']:.1f}, {100 * as_is['in_scope_to_fallback']:.1f} % in-scope → "
            "fallback (retrain it from the file with the tuned values)"
        )
    return notes


def render_table(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| pipeline | threshold / ambiguity | in-scope acc | OOS recall | OOS precision | in-scope → fallback "
        "| AUROC | parse p50 / p95 ms | training | model MB | peak RSS MB (train) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes: list[str] = []
    for s in summaries:
        t = s.get("training_seconds")
        mismatch = threshold_notes(s)
        lines.append(
            f"| {s['pipeline']} | {s['threshold']:.3f} / {s['ambiguity_threshold']:.2f}{' ‡' if mismatch else ''} | "
            f"{100 * s['in_scope_accuracy']:.1f} | {100 * s['oos_recall']:.1f} | {100 * s['oos_precision']:.1f} | "
            f"{100 * s['in_scope_to_fallback']:.1f} % | {s['auroc_in_scope']:.3f} | "
            f"{s['parse_latency_ms']['p50']:.1f} / {s['parse_latency_ms']['p95']:.1f} | "
            f"{(t or 0) / 60:.1f} min{' †' if s.get('note') else ''}{_cpu(s)} | {s.get('model_mb')} | "
            f"{s.get('training_peak_rss_mb')} |"
        )
        if s.get("note"):
            notes.append(f"† {s['pipeline']}: {s['note']}")
        notes.extend(f"‡ {s['pipeline']}: {m}" for m in mismatch)
    for label, acc, rec in PUBLISHED:
        lines.append(f"| {label} | | {acc} | {rec} | | | | | | | |")
    return "\n".join(lines + (["", *notes] if notes else []))


def report(names: list[str]) -> None:
    """Re-tune `names` from their stored validation parses (a new budget needs no re-parse), then
    render the table and plots from every stored result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in names:
        predictions = WORK / "predictions" / f"{name}--{DATA.stem}.json"
        if predictions.exists():
            write_json(RESULTS / f"{name}--val.json", {**summarise(name, predictions, None), "machine": machine()})
    summaries = collect()
    table = render_table(summaries)
    (RESULTS / "table.md").write_text(
        "# CLINC150 validation split (tuned on it; in-scope → fallback budget "
        f"{int(FALLBACK_BUDGET * 100)} %)\n\n{table}\n",
        encoding="utf-8",
    )
    print(table)
    for s in summaries:
        for note in threshold_notes(s):
            print(f"WARNING: {s['pipeline']}: {note}", file=sys.stderr)

    plots = RESULTS / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for s in summaries:  # per pipeline: redrawn where its parses are at hand, else kept
        predictions = WORK / "predictions" / f"{s['pipeline']}--{DATA.stem}.json"
        if predictions.exists():
            _histogram(plt, json.loads(predictions.read_text())["rows"], s, plots / f"confidence-{s['pipeline']}.png")
    missing = [s["pipeline"] for s in summaries if "threshold_curve" not in s]
    if missing:  # an incomplete plot would drop lines: keep the one there
        print(f"plots/threshold.png kept: no stored threshold curve for {', '.join(missing)}", file=sys.stderr)
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in summaries:
        curve = s["threshold_curve"]
        ax1.plot(curve["thresholds"], curve["in_scope_accuracy"], label=s["pipeline"])
        ax2.plot(curve["thresholds"], curve["oos_recall"], label=s["pipeline"])
    for ax, title in ((ax1, "in-scope accuracy"), (ax2, "out-of-scope recall")):
        ax.set_xlabel("FallbackClassifier threshold")
        ax.set_title(f"{title} vs threshold (CLINC150 val)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "threshold.png", dpi=110)
    plt.close(fig)


def threshold_curve(rows: list[dict[str, Any]], ambiguity: float) -> dict[str, list[float]]:
    """In-scope accuracy and out-of-scope recall over the threshold sweep (at the tuned ambiguity
    threshold), stored with the result so the plot can be redrawn without the parses."""
    arrays = _arrays(rows)
    curve = [_score(arrays, th, ambiguity) for th in THRESHOLDS]
    return {
        "thresholds": THRESHOLDS,
        "in_scope_accuracy": [round(c["in_scope_accuracy"], 4) for c in curve],
        "oos_recall": [round(c["oos_recall"], 4) for c in curve],
    }


def _rel(path: Path) -> Path:
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def _cpu(s: dict[str, Any]) -> str:
    cpu = s.get("training_cpu_seconds")
    return f" ({cpu / 60:.1f} CPU-min)" if cpu else ""


def _histogram(plt: Any, rows: list[dict[str, Any]], s: dict[str, Any], path: Path) -> None:
    a = _arrays(rows)
    in_conf = np.where(a["top"] == OOS, 0.0, a["conf"])
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(in_conf[a["gold"] != OOS], bins=bins, alpha=0.6, density=True, label="in-scope")
    ax.hist(in_conf[a["gold"] == OOS], bins=bins, alpha=0.6, density=True, label="out-of-scope")
    ax.axvline(s["threshold"], color="k", linestyle="--", label=f"threshold {s['threshold']:.3f}")
    ax.set_xlabel("confidence of the best in-scope intent (0 when `oos` wins)")
    ax.set_ylabel("density")
    ax.set_title(f"{s['pipeline']} — CLINC150 val")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- helpers and CLI -------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def run_pipeline(name: str, test_path: Path, retrain: bool) -> dict[str, Any]:
    if retrain or not model_path(name).exists():
        train(name)
    # Each evaluation in its own process, so its peak memory is its own.
    subprocess.run(
        [sys.executable, "-m", "benchmarks.clinc150.bench", "evaluate", name, "--test", str(test_path)],
        cwd=ROOT,
        env=ENV,
        check=True,
    )
    predictions = WORK / "predictions" / f"{name}--{test_path.stem}.json"
    if test_path.resolve() == DATA.resolve():
        summary = summarise(name, predictions, None)
        write_json(RESULTS / f"{name}--val.json", {**summary, "machine": machine()})
    else:
        tuned = read_json(RESULTS / f"{name}--val.json")
        if not tuned:
            raise SystemExit(f"tune {name} on the validation split first (bench {name})")
        summary = summarise(name, predictions, tuned)
        write_json(RESULTS / f"{name}--{test_path.stem}.json", {**summary, "machine": machine()})
    print(json.dumps({k: v for k, v in summary.items() if k != "threshold_curve"}, indent=2))
    for note in threshold_notes(summary):
        print(f"WARNING: {name}: {note}", file=sys.stderr)
    return summary


DEFAULT_PIPELINES = ["stock", "sparse", "sparse+oos", "minilm", "minilm+oos"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_all = sub.add_parser("all", help="every pipeline: train if missing, evaluate on val, tune, report")
    p_all.add_argument("--pipelines", nargs="+", default=DEFAULT_PIPELINES)
    p_all.add_argument("--retrain", action="store_true")
    p_all.add_argument("--test", type=Path, default=DATA, help="CLINC-format file (default: the validation split)")
    for cmd in ("train", "bench"):
        p = sub.add_parser(cmd)
        p.add_argument("pipeline")
        if cmd == "bench":
            p.add_argument("--retrain", action="store_true")
            p.add_argument("--test", type=Path, default=DATA)
    p_eval = sub.add_parser("evaluate", help="parse a CLINC-format file with a trained model")
    p_eval.add_argument("pipeline")
    p_eval.add_argument("--test", type=Path, default=DATA)
    p_curve = sub.add_parser("epochs", help="MiniLM: validation scores after each fine-tuning epoch")
    p_curve.add_argument("--epochs", type=int, default=4)
    p_curve.add_argument("--oos", action="store_true", help="with CLINC's oos_train as an intent")
    p_rep = sub.add_parser("report")
    p_rep.add_argument("--pipelines", nargs="+", default=DEFAULT_PIPELINES)
    args = parser.parse_args()

    if args.command == "train":
        train(args.pipeline)
    elif args.command == "evaluate":
        evaluate(args.pipeline, args.test)
    elif args.command == "bench":
        run_pipeline(args.pipeline, args.test, args.retrain)
    elif args.command == "all":
        for name in args.pipelines:
            run_pipeline(name, args.test, args.retrain)
        report(args.pipelines)
    elif args.command == "epochs":
        epoch_curve(args.epochs, args.oos)
    elif args.command == "report":
        report(args.pipelines)


if __name__ == "__main__":
    main()
