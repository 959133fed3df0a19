"""The Grafana dashboard: the panels SREs and the fraud team need, valid PromQL, only metric names
the service exports, and shipped in a ConfigMap that Grafana's sidecar picks up."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    DASHBOARD_FILE,
    dashboard_queries,
    exposition_names,
    one,
    promql_metric_names,
    promtool_test,
    run_tool,
    used_metric_names,
)
from prometheus_client import generate_latest

from streamal.adapters.metrics import Metrics
from streamal.core.messages import ClassSet

Render = Callable[[str], list[dict[str, Any]]]

DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
VARIABLES = {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def test_dashboard_has_the_panels_the_issue_asks_for() -> None:
    titles = {p["title"] for p in PANELS}
    assert {
        "Label spend vs budget",
        "Gate threshold",
        "Gate measure: rarest class among the labels",
        "Review backlog",
        "Label delay (request to label)",
        "Accuracy: unbiased vs labelled",
        "Rare-class recall",
        "Events",
        "Scoring latency",
        "Consumer lag",
        "Dead letters",
    } <= titles
    assert DASHBOARD["uid"] == "streamal" and DASHBOARD["title"] == "streamal"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and panel["description"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_accuracy_panels_read_the_confusion_counters_by_lane() -> None:
    by_title = {p["title"]: [t["expr"] for t in p["targets"]] for p in PANELS}
    unbiased, biased, _gauges = by_title["Accuracy: unbiased vs labelled"]
    assert 'lane=~"random"' in unbiased and "uncertainty" not in unbiased
    assert 'lane=~"uncertainty|random|exploit"' in biased
    for expr in (unbiased, biased):
        assert 'predicted="true",actual="true"' in expr
        assert 'predicted="false",actual="false"' in expr
    recall, _ = by_title["Rare-class recall"]
    assert recall.count('actual="true"') == 2 and 'predicted="true"' in recall
    assert "histogram_quantile" in by_title["Scoring latency"][0]
    assert "streamal_event_processing_seconds_bucket" in by_title["Scoring latency"][0]


def test_every_dashboard_variable_is_defined() -> None:
    assert {"datasource", "namespace", "job", "window"} <= VARIABLES.keys()
    for expr in dashboard_queries():
        for name in re.findall(r"\$(\w+)", expr):
            assert name.startswith("__") or name in VARIABLES, f"${name} in {expr}"


def test_dashboard_queries_are_valid_promql(promtool: Path, tmp_path: Path) -> None:
    """promtool parses each query (Grafana variables replaced by sample values)."""
    rules = []
    for i, expr in enumerate(t["expr"] for p in PANELS for t in p["targets"]):
        promql = expr.replace("$__rate_interval", "5m").replace("$window", "6h")
        promql = re.sub(r"\$\w+", "x", promql)
        rules.append({"record": f"dashboard:query_{i}:check", "expr": promql})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run_tool(promtool, "check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr


def _registry_names() -> set[str]:
    """Sample names of the service's registry, with a lag reported as the events loop does."""
    metrics = Metrics(ClassSet(), ["reviewer"])
    metrics.set_lag([("transactions", 0, 0)])
    return exposition_names(generate_latest(metrics.registry).decode())


def test_queries_use_only_metric_names_the_service_exports(rendered: Render) -> None:
    """Against the registry (the live /metrics check is in test_metrics_exposition.py)."""
    exported = _registry_names()
    used = used_metric_names(rendered)
    assert used, "no metric names found: the extraction is broken"
    assert used <= exported, f"not exported by the service: {sorted(used - exported)}"
    # Every family a panel needs is read somewhere.
    for needed in (
        "streamal_label_spend_ratio",
        "streamal_label_budget_ratio",
        "streamal_gate_threshold",
        "streamal_gate_rare_class_share",
        "streamal_gate_rare_mode",
        "streamal_review_backlog",
        "streamal_label_delay_seconds_bucket",
        "streamal_label_outcomes_total",
        "streamal_events_total",
        "streamal_event_processing_seconds_bucket",
        "streamal_consumer_lag",
        "streamal_dead_letters_total",
        "streamal_reviews_unreadable_total",
        "streamal_checkpoint_last_success_timestamp_seconds",
        "streamal_fraud_card_precision_at_k",
        "streamal_fraud_score_auc",
        "streamal_fraud_score_average_precision",
        "streamal_fraud_alert_precision",
        "streamal_fraud_card_recall",
        "streamal_fraud_amount_caught_total",
        "streamal_label_source_outcomes_total",
    ):
        assert needed in used, needed


def test_an_unknown_metric_name_in_a_query_is_caught() -> None:
    names = promql_metric_names('sum(rate(streamal_event_total{outcome="scored"}[5m]))')
    assert names == {"streamal_event_total"} and not names <= _registry_names()


@pytest.mark.parametrize("variant", ["monitoring"])
def test_dashboard_ships_in_a_configmap_for_the_grafana_sidecar(
    rendered: Render, variant: str
) -> None:
    docs = rendered(variant)
    configmap = one(docs, "ConfigMap", "streamal-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Fraud"}
    assert json.loads(configmap["data"]["streamal.json"]) == DASHBOARD
    assert not [d for d in rendered("default") if d["metadata"]["name"] == "streamal-dashboard"], (
        "the dashboard is off by default"
    )


def _query(title: str, legend: str) -> str:
    """A panel's query, with the dashboard's variables set (rate interval 5m)."""
    (panel,) = [p for p in PANELS if p["title"] == title]
    (target,) = [t for t in panel["targets"] if t["legendFormat"] == legend]
    expr: str = target["expr"]
    for variable, value in (
        ("$namespace", "fraud"),
        ("$job", "streamal-headless"),
        ("$__rate_interval", "5m"),
        ("$window", "5m"),
    ):
        expr = expr.replace(variable, value)
    return expr


#: Panels of counts that every replica makes alike: each replica reads the whole labels and
#: reviews topics, so it counts every label, and expires every open request, as the others do.
SHARED_COUNTS = {
    "labels-received": (
        "Labels received",
        "{{source}} {{outcome}}",
        "streamal_labels_total",
        {"source": "reviewer", "outcome": "learned"},
    ),
    "requests-expired": ("Review backlog", "expired", "streamal_pending_expired_total", {}),
}


@pytest.mark.parametrize(
    ("title", "legend", "metric", "labels"), SHARED_COUNTS.values(), ids=SHARED_COUNTS.keys()
)
def test_counts_every_replica_makes_are_not_multiplied_by_the_replicas(
    promtool: Path, tmp_path: Path, title: str, legend: str, metric: str, labels: dict[str, str]
) -> None:
    """Three replicas each count the same 60 labels (or expired requests) a minute: the panel
    shows what happened once (1 a second, or 300 in 5 minutes), not three times that."""
    expr = _query(title, legend)
    common = {"namespace": "fraud", "job": "streamal-headless", **labels}
    inputs = [
        {
            "series": metric
            + "{"
            + ",".join(f'{k}="{v}"' for k, v in {**common, "pod": f"streamal-{i}"}.items())
            + "}",
            "values": "0+60x60",
        }
        for i in range(3)
    ]
    grouped = re.match(r"\s*\w+(?: by \(([^)]*)\))?", expr)
    assert grouped is not None
    kept = [n.strip() for n in (grouped.group(1) or "").split(",") if n.strip()]
    expected = "{" + ",".join(f'{n}="{labels[n]}"' for n in kept) + "}"
    spec = {"groups": [{"name": "panel", "rules": [{"record": "panel", "expr": expr}]}]}
    case = {
        "expr": "panel",
        "eval_time": "50m",
        "exp_samples": [{"labels": "panel" + expected, "value": 1 if "rate(" in expr else 300}],
    }
    test = {"interval": "1m", "input_series": inputs, "promql_expr_test": [case]}
    done = promtool_test(promtool, tmp_path, spec, test)
    assert done.returncode == 0, f"{expr}\n{done.stdout}{done.stderr}"
