"""The alert rules, checked and unit-tested by promtool itself (`promtool check rules`, `promtool
test rules ops/prometheus/alerts_test.yml`), both Prometheus configurations checked by `promtool
check config`, and every metric the rules name registered by the code.

promtool comes from Debian's ``prometheus`` package (scripts/ensure_promtool.sh installs it;
PROMTOOL overrides the path). Without it the promtool tests skip, saying how to get it, except in
CI (CI=true), where they fail: a skipped check there would pass for a checked one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit import test_dashboards as lint

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "ops/prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"
CONFIGS = (PROMETHEUS / "prometheus.yml", PROMETHEUS / "prometheus.local.yml")
# The seed KPIs' alerts and the components' (README: Analytics).
EXPECTED_ALERTS = {
    "TaskSuccessRateLow",
    "TurnLatencyP95High",
    "ToolCallSuccessRateLow",
    "TurnErrorRateHigh",
    "GatewayUpstreamErrorRateHigh",
    "AnswerCacheHitRateLow",
    "CsatLow",
    "RasaReplicaDown",
    "RasaAllReplicasDown",
    "AnalyticsConsumerNotConsuming",
    "WatchedProcessDown",
}


def promtool() -> str:
    """The promtool to run, or a skip (a failure in CI) that says how to install it."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if path and os.access(path, os.X_OK):
        return path
    reason = "promtool is not installed: run scripts/ensure_promtool.sh (Debian's prometheus), or set PROMTOOL"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: this check must run)")
    pytest.skip(reason)


def run(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    result = run("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = run("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The same tests against rules that never fire must fail: they test firing, not only silence."""
    silent = yaml.safe_load(ALERTS.read_text())
    for group in silent["groups"]:
        for rule in group["rules"]:
            rule["expr"] = "vector(1) == 0"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(silent))
    shutil.copy(ALERTS_TEST, tmp_path / "alerts_test.yml")
    result = run("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    # Every alert has a test that expects it to fire.
    for name in EXPECTED_ALERTS:
        assert f"alertname: {name}," in result.stdout + result.stderr, name


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_promtool_checks_the_prometheus_configurations(config: Path, tmp_path: Path) -> None:
    """With its token files in place (promtool checks that they exist), each configuration loads."""
    text = config.read_text()
    parsed = yaml.safe_load(text)
    for job in parsed["scrape_configs"]:
        token = job["authorization"]["credentials_file"]
        name = Path(token).name
        (tmp_path / "secrets").mkdir(exist_ok=True)
        (tmp_path / "secrets" / name).write_text("t" * 32)
        text = text.replace(token, str(tmp_path / "secrets" / name))
    (tmp_path / config.name).write_text(text)
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    result = run("check", "config", config.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_of_the_issue_exists_with_a_for_and_a_severity() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) == EXPECTED_ALERTS
    for name, rule in by_name.items():
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_seed_kpi_thresholds() -> None:
    exprs = {rule["alert"]: " ".join(rule["expr"].split()) for rule in rules()}
    assert 'tandem_kpi_task_success_rate{channel="all"} < 0.95' in exprs["TaskSuccessRateLow"]
    assert (
        "histogram_quantile(0.95, sum by (le) (rate(tandem_gateway_turn_seconds_bucket" in exprs["TurnLatencyP95High"]
    )
    assert exprs["TurnLatencyP95High"].split(" and ")[0].endswith("> 5")
    assert "> 0.02" in exprs["ToolCallSuccessRateLow"]
    assert "tandem_kpi_error_rate" in exprs["TurnErrorRateHigh"] and "> 0.01" in exprs["TurnErrorRateHigh"]
    assert "> 0.01" in exprs["GatewayUpstreamErrorRateHigh"]
    # The label value the fallback chain uses for a cache hit (tandem/services/fallback/chain.py).
    chain = (ROOT / "tandem/services/fallback/chain.py").read_text()
    assert 'labels(result="hit" if reply else "miss")' in chain
    assert 'tandem_llm_cache_total{result="hit"}' in exprs["AnswerCacheHitRateLow"]
    assert "< 0.8" in exprs["AnswerCacheHitRateLow"]
    assert 'tandem_kpi_csat_mean{channel="all"} < 4' in exprs["CsatLow"]


def test_every_ratio_is_guarded_against_low_traffic() -> None:
    """A ratio alert needs a minimum of traffic (`and on`); alerts_test.yml shows each guard matters."""
    for rule in rules():
        if rule["alert"] in ("RasaReplicaDown", "RasaAllReplicasDown", "WatchedProcessDown"):
            continue
        assert " and on " in " ".join(rule["expr"].split()) or " unless on " in " ".join(rule["expr"].split()), rule[
            "alert"
        ]


def test_every_metric_of_the_alert_rules_is_registered_by_the_code() -> None:
    registered = lint.registered_metrics()
    problems = [
        f"{rule['alert']}: {problem}" for rule in rules() for problem in lint.unknown_names(rule["expr"], registered)
    ]
    assert not problems, problems
    used = {name for rule in rules() for name in lint.metric_names(rule["expr"])}
    assert {"tandem_gateway_rasa_replica_up", "tandem_tool_errors_total", "tandem_analytics_events_total"} <= used


def test_the_unit_tests_only_feed_registered_series() -> None:
    """alerts_test.yml's input series are the code's names too, or a test could pass on a typo."""
    registered = lint.registered_metrics()
    tests = yaml.safe_load(ALERTS_TEST.read_text())["tests"]
    for test in tests:
        for series in test["input_series"]:
            problems = lint.unknown_names(series["series"], registered)
            assert not problems, (test["name"], problems)


def test_ensure_promtool_script_is_modelled_on_ensure_chromium() -> None:
    script = (ROOT / "scripts/ensure_promtool.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert "PROMTOOL:-" in script and "apt-get install" in script and "prometheus" in script
    assert os.access(ROOT / "scripts/ensure_promtool.sh", os.X_OK)
