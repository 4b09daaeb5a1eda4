"""The CLINC150 report (benchmarks/clinc150/bench.py): the table is rendered from every stored
validation result, so a run of some pipelines keeps the others' rows; the pipeline files carry
the thresholds the table reports, and a difference is flagged (served model ≠ table)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from benchmarks.clinc150 import bench


def stored_result(name: str, threshold: float, **extra: object) -> dict:
    return {
        "pipeline": name,
        "split": "val",
        "tuned_on": "val",
        "threshold": threshold,
        "ambiguity_threshold": 0.0,
        "in_scope_accuracy": 0.9,
        "in_scope_accuracy_no_fallback": 0.92,
        "oos_recall": 0.5,
        "oos_precision": 0.4,
        "in_scope_to_fallback": 0.02,
        "auroc_in_scope": 0.9,
        "parse_latency_ms": {"p50": 5.0, "p95": 6.0, "mean": 5.1},
        "eval_peak_rss_mb": 900.0,
        "training_seconds": 60.0,
        "model_mb": 10.0,
        "training_peak_rss_mb": 1000.0,
        **extra,
    }


def write_pipeline(directory: Path, name: str, threshold: float, ambiguity: float) -> None:
    config = {
        "recipe": "default.v1",
        "language": "en",
        "pipeline": [
            {"name": "WhitespaceTokenizer"},
            {"name": "FallbackClassifier", "threshold": threshold, "ambiguity_threshold": ambiguity},
        ],
    }
    (directory / f"{name}.yml").write_text(yaml.safe_dump(config))


# Validation parses: in-scope turns confident and right, out-of-scope turns at 0.2; one in-scope
# turn was sent to the fallback by the model as served (parsed), none by the tuned threshold.
ROWS = [
    *[{"gold": "a", "ranking": [["a", 0.9], ["b", 0.05]], "parsed": "a"} for _ in range(6)],
    {"gold": "b", "ranking": [["b", 0.9], ["a", 0.85]], "parsed": "nlu_fallback"},  # margin 0.05 < 0.1
    *[{"gold": "oos", "ranking": [["a", 0.2], ["b", 0.1]], "parsed": "nlu_fallback"} for _ in range(3)],
]


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {name: tmp_path / name for name in ("results", "work", "pipelines")}
    for path in paths.values():
        path.mkdir()
    (paths["work"] / "predictions").mkdir()
    monkeypatch.setattr(bench, "RESULTS", paths["results"])
    monkeypatch.setattr(bench, "WORK", paths["work"])
    monkeypatch.setattr(bench, "PIPELINES", paths["pipelines"])
    # results of an earlier run of every pipeline; a test split and an epoch curve are not rows
    for name, threshold in (("stock", 0.365), ("sparse", 0.335), ("minilm", 0.4), ("minilm+oos", 0.395)):
        bench.write_json(paths["results"] / f"{name}--val.json", stored_result(name, threshold))
        write_pipeline(paths["pipelines"], name, threshold, 0.0)
    bench.write_json(paths["results"] / "minilm--test.json", {**stored_result("minilm", 0.4), "split": "test"})
    bench.write_json(paths["results"] / "minilm--epochs.json", {"epochs": 3, "curve": []})
    return paths


def rerun_minilm(dirs: dict[str, Path], rows: list[dict] = ROWS, trained_with: tuple = (0.3, 0.1)) -> None:
    """`make bench-nlu PIPELINES=minilm`: minilm's validation parses are at hand, then the report."""
    bench.write_json(
        dirs["work"] / "predictions" / f"minilm--{bench.DATA.stem}.json",
        {
            "pipeline": "minilm",
            "file": str(bench.DATA),
            "split": "val",
            "rows": rows,
            "model_thresholds": {"threshold": trained_with[0], "ambiguity_threshold": trained_with[1]},
            "latency_ms": {"p50": 9.0, "p95": 12.0, "mean": 9.5},
            "eval_peak_rss_mb": 800.0,
        },
    )
    bench.report(["minilm"])


def table_rows(results: Path) -> list[str]:
    return [line for line in (results / "table.md").read_text().splitlines() if line.startswith("| ")][1:]


def test_a_run_of_one_pipeline_keeps_the_rows_of_the_others(dirs):
    write_pipeline(dirs["pipelines"], "minilm", 0.205, 0.0)  # what the sweep tunes on ROWS
    rerun_minilm(dirs)

    rows = table_rows(dirs["results"])
    names = [row.split("|")[1].strip() for row in rows if not row.startswith("|---")]
    assert names[:4] == ["stock", "sparse", "minilm", "minilm+oos"]  # DEFAULT_PIPELINES order
    assert len([n for n in names if n == "minilm"]) == 1  # the test split is not a row
    minilm = next(row for row in rows if row.startswith("| minilm |"))
    assert "| 0.205 / 0.00 " in minilm  # re-tuned from this run's parses (‡: the model had 0.3 / 0.1)
    assert "| 9.0 / 12.0 |" in minilm
    assert "| 0.365 / 0.00 |" in next(row for row in rows if row.startswith("| stock |"))

    stored = json.loads((dirs["results"] / "minilm--val.json").read_text())
    assert stored["threshold_curve"]["thresholds"] == bench.THRESHOLDS
    assert len(stored["threshold_curve"]["oos_recall"]) == len(bench.THRESHOLDS)
    # the model as it was served (trained with 0.3 / 0.1): the ambiguous in-scope turn went to the fallback
    assert stored["served_as_is"]["threshold"] == 0.3
    assert stored["served_as_is"]["in_scope_accuracy"] == pytest.approx(6 / 7)
    assert stored["served_as_is"]["in_scope_to_fallback"] == pytest.approx(1 / 7)
    assert stored["served_as_is"]["oos_recall"] == pytest.approx(1.0)
    assert stored["in_scope_accuracy"] == pytest.approx(1.0)  # at the tuned 0.205 / 0.0
    # the other pipelines' stored results are untouched
    assert json.loads((dirs["results"] / "stock--val.json").read_text()) == stored_result("stock", 0.365)
    # stock has no stored curve: the threshold plot is kept rather than redrawn without it
    assert not (dirs["results"] / "plots" / "threshold.png").exists()
    assert (dirs["results"] / "plots" / "confidence-minilm.png").exists()


def test_a_pipeline_file_or_model_with_other_thresholds_is_flagged(dirs):
    write_pipeline(dirs["pipelines"], "minilm", 0.3, 0.1)  # the defaults, not the tuned values
    rerun_minilm(dirs)

    text = (dirs["results"] / "table.md").read_text()
    minilm = next(row for row in table_rows(dirs["results"]) if row.startswith("| minilm |"))
    assert "| 0.205 / 0.00 ‡ |" in minilm
    assert "‡ minilm: " in text
    assert "says 0.300 / 0.10, tuned 0.205 / 0.00" in text
    assert "trained with 0.300 / 0.10; served as it is it scores in-scope acc 85.7" in text
    assert "‡ stock" not in text and "‡ sparse" not in text


def test_no_flag_when_file_model_and_table_agree(dirs):
    write_pipeline(dirs["pipelines"], "minilm", 0.205, 0.0)
    served_with_tuned = [{**row, "parsed": "b"} if row["gold"] == "b" else row for row in ROWS]
    rerun_minilm(dirs, served_with_tuned, trained_with=(0.205, 0.0))

    assert "‡" not in (dirs["results"] / "table.md").read_text()
    stored = json.loads((dirs["results"] / "minilm--val.json").read_text())
    for key in ("in_scope_accuracy", "oos_recall", "in_scope_to_fallback"):
        assert stored["served_as_is"][key] == pytest.approx(stored[key])


def test_threshold_curve_is_drawn_when_every_result_has_one(dirs):
    for name in ("stock", "sparse", "minilm+oos"):
        path = dirs["results"] / f"{name}--val.json"
        stored = json.loads(path.read_text())
        bench.write_json(path, {**stored, "threshold_curve": bench.threshold_curve(ROWS, 0.0)})
    write_pipeline(dirs["pipelines"], "minilm", 0.205, 0.0)
    rerun_minilm(dirs)
    assert (dirs["results"] / "plots" / "threshold.png").exists()


def test_a_variant_without_its_own_file_uses_the_base_pipeline(dirs):
    assert bench.config_path("minilm+oos") == dirs["pipelines"] / "minilm+oos.yml"
    assert bench.config_path("sparse+oos") == dirs["pipelines"] / "sparse.yml"
    assert bench.file_thresholds("sparse+oos") == {"threshold": 0.335, "ambiguity_threshold": 0.0}


def test_fallback_thresholds_fill_in_rasas_defaults():
    config = {"pipeline": [{"name": "WhitespaceTokenizer"}, {"name": "FallbackClassifier", "threshold": 0.4}]}
    assert bench.fallback_thresholds(config) == {"threshold": 0.4, "ambiguity_threshold": 0.1}
    assert bench.fallback_thresholds({"pipeline": [{"name": "WhitespaceTokenizer"}]}) is None


# -- the committed files ---------------------------------------------------------------------


def committed_results() -> list[dict]:
    return bench.collect(Path(bench.__file__).parent / "results")


def test_the_committed_pipeline_files_carry_the_tuned_thresholds():
    results = committed_results()
    assert {r["pipeline"] for r in results} >= set(bench.DEFAULT_PIPELINES)
    for result in results:
        assert bench.threshold_notes(result) == [], result["pipeline"]


def test_oos_variants_have_their_base_pipelines_components():
    def components(name: str) -> list[dict]:
        config = yaml.safe_load(bench.config_path(name).read_text())
        return [step for step in config["pipeline"] if step["name"] != "FallbackClassifier"]

    for name in bench.DEFAULT_PIPELINES:
        base, with_oos = bench.variant(name)
        if with_oos:
            assert bench.config_path(name).name == f"{name}.yml"
            assert components(name) == components(base)
