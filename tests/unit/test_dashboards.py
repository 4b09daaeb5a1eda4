"""The Grafana provisioning lints: the dashboard loads, its panel ids are unique (nested rows too),
every data source it names is the provisioned one, and every metric (and label) its PromQL names
is one the code registers. The same check covers the alert rules (ops/prometheus/alerts.yml), so
a renamed metric breaks this test instead of a dashboard going blank or an alert never firing.

The registered names come from the metric classes themselves, each instantiated with a fresh
``CollectorRegistry``: counters show as ``<name>_total``, histograms as ``_bucket``/``_sum``/``_count``,
plus the KPI gauges (``KPI_GAUGE_PREFIX + key``) and the process exporter's families.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from tandem.analytics.metrics import (
    KPI_GAUGE_PREFIX,
    KPI_GAUGES,
    SESSIONS_BY_STATUS_GAUGE,
    ConsumerMetrics,
    ToolMetrics,
)
from tandem.gateway.metrics import GatewayMetrics
from tandem.llm.metrics import FallbackMetrics
from tandem.process_exporter import METRIC_NAMES as PROCESS_METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "ops/grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERTS = ROOT / "ops/prometheus/alerts.yml"
# Labels every scraped series has, or that a histogram's buckets have.
TARGET_LABELS = frozenset({"job", "instance"})
# Series Prometheus makes itself (not registered by our code).
PROMETHEUS_OWN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"})

# --- What the code registers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    """Series names the code exposes, each with its label names."""

    labels: dict[str, frozenset[str]]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.labels)


def _series(name: str, kind: str, labels: frozenset[str]) -> Iterator[tuple[str, frozenset[str]]]:
    if kind == "counter":
        base = name.removesuffix("_total")
        yield f"{base}_total", labels
        yield f"{base}_created", labels
    elif kind == "histogram":
        yield f"{name}_bucket", labels | {"le"}
        yield f"{name}_sum", labels
        yield f"{name}_count", labels
        yield f"{name}_created", labels
    else:
        yield name, labels


def registered_metrics() -> Registered:
    """Instantiate every metric class of the code in fresh registries and read back what they hold."""
    labels: dict[str, frozenset[str]] = {}
    holders: list[object] = [
        GatewayMetrics(),
        FallbackMetrics(CollectorRegistry()),
        ToolMetrics(CollectorRegistry()),
        ConsumerMetrics(CollectorRegistry()),
    ]
    for holder in holders:
        for metric in vars(holder).values():
            if isinstance(metric, MetricWrapperBase):
                # The client library keeps a family's name without ``_total`` and its label names here.
                for name, names in _series(metric._name, metric._type, frozenset(metric._labelnames)):
                    labels[name] = names
    for key in KPI_GAUGES:
        labels[KPI_GAUGE_PREFIX + key] = frozenset({"channel"})
    labels[SESSIONS_BY_STATUS_GAUGE] = frozenset({"status", "channel"})
    for name in PROCESS_METRIC_NAMES:
        labels[name] = frozenset({"process"})
    return Registered(labels)


# --- What PromQL names ---------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_TOKEN = re.compile(r"\$\{?\w+\}?|\d[\w.]*|[A-Za-z_:][A-Za-z0-9_:]*")
_SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^{}]*\})")
_LABEL_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)")
KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "atan2",
        "inf",
        "nan",
        # Aggregations may be written without parentheses right after them (`sum by (le) (...)`).
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
    }
)


def _blank_strings(expr: str) -> str:
    return _STRING.sub('""', expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: not functions, keywords, label names, strings,
    numbers, durations or Grafana variables."""
    text = _blank_strings(expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token[0] in "$0123456789" or token.lower() in KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        names.add(token)
    return names


def label_uses(expr: str) -> list[tuple[str | None, str]]:
    """(metric or None, label) for every label a matcher or a grouping names."""
    text = _blank_strings(expr)
    uses: list[tuple[str | None, str]] = []
    for selector in _SELECTOR.finditer(text):
        for matcher in _LABEL_MATCHER.finditer(selector.group(2)):
            uses.append((selector.group(1), matcher.group(1)))
    for grouping in _GROUPING.finditer(text):
        uses.extend((None, label.strip()) for label in grouping.group(2).split(",") if label.strip())
    return uses


def unknown_names(expr: str, registered: Registered) -> list[str]:
    """What ``expr`` names that the code does not register: metrics, and labels those metrics lack."""
    problems = []
    names = metric_names(expr)
    for name in sorted(names - registered.names - PROMETHEUS_OWN):
        problems.append(f"metric {name}")
    known = set(TARGET_LABELS)
    for name in names & registered.names:
        known |= registered.labels[name]
    for metric, label in label_uses(expr):
        if label == "__name__" or (metric is not None and metric not in registered.names):
            continue  # an unknown metric is reported once, above
        own = registered.labels[metric] | TARGET_LABELS if metric is not None else known
        if label not in own:
            problems.append(f"label {label} of {metric or 'the expression'}")
    return problems


# --- What the files hold ---------------------------------------------------------------------------


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, the ones nested in (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def datasource_uids(node: Any) -> Iterator[str]:
    """Every ``datasource.uid`` anywhere in a dashboard (panels, targets, variables)."""
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            yield str(source["uid"])
        elif isinstance(source, str):
            yield source  # the old style: a name or a uid
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in walk_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"panel {panel['id']} {panel.get('title')!r}", target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and query:
            # label_values(metric, label): Grafana's, not PromQL; check it as the selector it is.
            found = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", query)
            expr = f"count by ({found.group(2)}) ({found.group(1)})" if found else query
            yield f"variable {variable['name']}", expr


def alert_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]


@pytest.fixture(scope="module")
def registered() -> Registered:
    return registered_metrics()


@pytest.fixture(scope="module")
def provisioned_uids() -> set[str]:
    sources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    return {source["uid"] for source in sources}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


# --- Tests -------------------------------------------------------------------------------------------


def test_there_is_a_dashboard_and_the_provider_serves_its_directory() -> None:
    assert DASHBOARDS, "no dashboard in ops/grafana/dashboards"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/tandem.yml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_loads_with_unique_panel_ids_and_a_uid(path: Path) -> None:
    dashboard = load(path)
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["panels"], list)
    panels = list(walk_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert all(isinstance(i, int) for i in ids)
    for panel in panels:
        assert panel.get("title"), panel["id"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel.get("targets"), f"panel {panel['id']} {panel['title']!r} has no query"
    # The collapsed row's panels are nested in it, as Grafana stores them.
    assert any(panel["type"] == "row" and panel["collapsed"] and panel["panels"] for panel in dashboard["panels"])


def test_the_dashboard_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_data_source_is_the_provisioned_one(path: Path, provisioned_uids: set[str]) -> None:
    used = set(datasource_uids(load(path))) - {"-- Grafana --"}  # the built-in annotations
    assert used, "the dashboard names no data source"
    assert used <= provisioned_uids, used - provisioned_uids


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_metric_and_label_of_the_dashboard_is_registered(path: Path, registered: Registered) -> None:
    problems = [
        f"{where}: {problem}"
        for where, expr in dashboard_expressions(load(path))
        for problem in unknown_names(expr, registered)
    ]
    assert not problems, problems


def test_every_metric_and_label_of_the_alert_rules_is_registered(registered: Registered) -> None:
    problems = [
        f"{where}: {problem}" for where, expr in alert_expressions() for problem in unknown_names(expr, registered)
    ]
    assert not problems, problems


def test_the_dashboard_covers_each_area(registered: Registered) -> None:
    """Traffic, outcomes, fallback, handoffs, CSAT, LLM, tools, processes, intent confidence."""
    used = {name for path in DASHBOARDS for _, expr in dashboard_expressions(load(path)) for name in metric_names(expr)}
    for name in (
        "tandem_gateway_requests_total",
        "tandem_gateway_turn_seconds_bucket",
        "tandem_task_outcomes_total",
        "tandem_kpi_task_success_rate",
        "tandem_kpi_containment_rate",
        "tandem_fallback_turns_total",
        "tandem_handoffs_total",
        "tandem_kpi_csat_mean",
        "tandem_llm_tokens_total",
        "tandem_llm_cost_total",
        "tandem_llm_cache_total",
        "tandem_tool_errors_total",
        "tandem_tool_latency_seconds_bucket",
        "tandem_process_resident_memory_bytes",
        "tandem_process_cpu_seconds_total",
        "tandem_intent_confidence_bucket",
    ):
        assert name in used, name
    heatmaps = [p for path in DASHBOARDS for p in walk_panels(load(path)["panels"]) if p["type"] == "heatmap"]
    assert any("tandem_intent_confidence_bucket" in t["expr"] for p in heatmaps for t in p["targets"])


# --- The checker itself can fail ----------------------------------------------------------------------


def test_the_registered_names_come_from_the_code(registered: Registered) -> None:
    assert "tandem_gateway_turn_seconds_bucket" in registered.names
    assert "tandem_gateway_turn_seconds" not in registered.names  # a histogram is queried by its parts
    assert "tandem_tool_calls_total" in registered.names and "tandem_tool_calls" not in registered.names
    assert registered.labels["tandem_gateway_requests_total"] == {"route", "method", "status"}
    assert registered.labels["tandem_tool_latency_seconds_bucket"] == {"tool", "le"}
    assert registered.labels["tandem_kpi_task_success_rate"] == {"channel"}
    assert registered.labels["tandem_process_up"] == {"process"}
    assert len([n for n in registered.names if n.startswith(KPI_GAUGE_PREFIX)]) == len(KPI_GAUGES)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.95, sum by (le) (rate(tandem_gateway_turn_seconds_bucket{job="gateway"}[5m])))',
            {"tandem_gateway_turn_seconds_bucket"},
        ),
        (
            'sum(rate(tandem_llm_cache_total{result="hit"}[$__rate_interval])) / sum(rate(tandem_llm_cache_total[1h]))',
            {"tandem_llm_cache_total"},
        ),
        ("a_total / on (tool) group_left (x) b_total > bool 0.5 unless c offset 5m", {"a_total", "b_total", "c"}),
        ('label_replace(up, "dst", "rate(x_total[5m])", "src", "(.*)") or vector(0)', {"up"}),
        ("count without (instance, job) (foo:bar_ratio) and inf > nan", {"foo:bar_ratio"}),
        ('max_over_time(m{channel="$channel"}[1h:5m])', {"m"}),
        ("sum(x) by (le)", {"x"}),
    ],
)
def test_the_extractor_finds_only_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_misspelled_metric_is_caught(registered: Registered) -> None:
    assert unknown_names("sum(rate(tandem_tool_calls_total[5m]))", registered) == []
    assert unknown_names("sum(rate(tandem_tool_call_total[5m]))", registered) == ["metric tandem_tool_call_total"]
    # A histogram by its family name, a counter without _total: never a series.
    assert unknown_names("rate(tandem_gateway_turn_seconds[5m])", registered) == ["metric tandem_gateway_turn_seconds"]
    assert unknown_names("rate(tandem_handoffs[5m])", registered) == ["metric tandem_handoffs"]


def test_a_label_the_metric_lacks_is_caught(registered: Registered) -> None:
    assert unknown_names('tandem_kpi_csat_mean{channel="all"}', registered) == []
    # The gateway's turn histogram has no route label (only its request histogram does).
    assert unknown_names(
        'histogram_quantile(0.95, sum by (le, route) (rate(tandem_gateway_turn_seconds_bucket{route="/x"}[5m])))',
        registered,
    ) == ["label route of tandem_gateway_turn_seconds_bucket", "label route of the expression"]
    assert unknown_names("sum by (stage) (rate(tandem_handoffs_total[5m]))", registered) == [
        "label stage of the expression"
    ]


def test_an_unprovisioned_data_source_is_caught(provisioned_uids: set[str]) -> None:
    dashboard = {"panels": [{"id": 1, "type": "row", "panels": [{"id": 2, "datasource": {"uid": "elsewhere"}}]}]}
    assert set(datasource_uids(dashboard)) - provisioned_uids == {"elsewhere"}
    assert [p["id"] for p in walk_panels(dashboard["panels"])] == [1, 2]
