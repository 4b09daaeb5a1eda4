"""The CLINC150 benchmark's scoring: FallbackClassifier's rule, tuning under the fallback budget,
AUROC. Pure functions over stored rankings (benchmarks/clinc150/bench.py)."""

from __future__ import annotations

import json

import pytest

from benchmarks.clinc150 import bench


def row(gold: str, *ranking: tuple[str, float]) -> dict:
    return {"gold": gold, "ranking": [list(r) for r in ranking], "parsed": ranking[0][0]}


ROWS = [
    row("balance", ("balance", 0.95), ("transfer", 0.03)),
    row("balance", ("transfer", 0.60), ("balance", 0.30)),  # wrong, fairly confident
    row("transfer", ("transfer", 0.40), ("balance", 0.38)),  # right but ambiguous
    row("transfer", ("transfer", 0.80), ("balance", 0.10)),
    row("oos", ("balance", 0.35), ("transfer", 0.30)),
    row("oos", ("oos", 0.70), ("balance", 0.20)),  # the trained oos intent wins
]


def test_score_applies_threshold_ambiguity_and_the_oos_intent():
    s = bench.score(ROWS, threshold=0.5, ambiguity=0.0)
    # in scope: 1 right+kept, 1 wrong, 1 right but below 0.5 → fallback, 1 right+kept
    assert s["in_scope_accuracy"] == pytest.approx(2 / 4)
    assert s["in_scope_accuracy_no_fallback"] == pytest.approx(3 / 4)
    assert s["in_scope_to_fallback"] == pytest.approx(1 / 4)
    assert s["oos_recall"] == pytest.approx(1.0)  # 0.35 < 0.5, and `oos` predicted
    assert s["oos_precision"] == pytest.approx(2 / 3)

    amb = bench.score(ROWS, threshold=0.0, ambiguity=0.1)
    assert amb["in_scope_to_fallback"] == pytest.approx(1 / 4)  # 0.40 - 0.38 < 0.1
    assert amb["oos_recall"] == pytest.approx(2 / 2)  # 0.35 - 0.30 < 0.1, and oos


def test_tune_respects_the_fallback_budget(monkeypatch):
    monkeypatch.setattr(bench, "FALLBACK_BUDGET", 0.25)
    chosen = bench.tune(ROWS)
    assert chosen["in_scope_to_fallback"] <= 0.25
    assert chosen["oos_recall"] == pytest.approx(1.0)
    monkeypatch.setattr(bench, "FALLBACK_BUDGET", 0.0)
    strict = bench.tune(ROWS)
    assert strict["in_scope_to_fallback"] == 0.0
    # the lowest in-scope confidence is 0.40, the out-of-scope turn's 0.35: a threshold between
    # them catches it without losing an in-scope turn
    assert 0.35 < strict["threshold"] <= 0.40
    assert strict["oos_recall"] == pytest.approx(1.0)


def test_auroc_is_the_rank_statistic():
    assert bench.auroc(ROWS) == pytest.approx(
        # in-scope scores 0.95, 0.60, 0.40, 0.80 vs out-of-scope 0.35 and 0 (oos won)
        1.0
    )
    mixed = [*ROWS, row("oos", ("balance", 0.90), ("transfer", 0.05))]
    # 0.90 beats 0.60, 0.40, 0.80 of the in-scope turns: 3 of 12 pairs lost
    assert bench.auroc(mixed) == pytest.approx(9 / 12)


def test_split_keys_accepts_validation_and_test_files(tmp_path):
    assert bench.split_keys({"val": [], "oos_val": []}) == ("val", "oos_val")
    assert bench.split_keys({"test": [], "oos_test": [], "train": []}) == ("test", "oos_test")
    with pytest.raises(SystemExit):
        bench.split_keys({"train": []})
    path = tmp_path / "held_out.json"
    path.write_text(json.dumps({"test": [["hi", "greet"]], "oos_test": [["x", "oos"]]}))
    assert bench.split_keys(bench.load_clinc(path)) == ("test", "oos_test")
