"""The chart's alerts and recording rules: valid PromQL (promtool check rules), behaviour under
input series (promtool test rules, tests/deploy/rules_test.yaml), complete annotations, and a
runbook entry in the README for every alert."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import CHART, ROOT, Helm, one, promtool_test, rules_spec, run_tool

Render = Callable[[str], list[dict[str, Any]]]

RULE_TESTS = Path(__file__).with_name("rules_test.yaml")
MONITORING = CHART / "ci" / "monitoring-values.yaml"


def _alerts(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for g in spec["groups"] for r in g["rules"] if "alert" in r]


def _check_rules(promtool: Path, spec: dict[str, Any], tmp_path: Path) -> Any:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_tool(promtool, "check", "rules", path)


@pytest.mark.parametrize("variant", ["monitoring", "full-config"])
def test_rendered_rules_pass_promtool_check_rules(
    rendered: Render, promtool: Path, tmp_path: Path, variant: str
) -> None:
    done = _check_rules(promtool, rules_spec(rendered(variant)), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 13 rules found" in done.stdout


@pytest.mark.slow
def test_alert_rules_behave_as_the_rule_tests_expect(
    rendered: Render, promtool: Path, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump(rules_spec(rendered("monitoring")), sort_keys=False)
    )
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    done = run_tool(promtool, "test", "rules", tmp_path / RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_case_that_fires_and_one_that_does_not(rendered: Render) -> None:
    names = {a["alert"] for a in _alerts(rules_spec(rendered("monitoring")))}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t.get("alert_rule_test", [])]
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    silent = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert names == fires, f"alerts without a firing test: {names - fires}"
    assert names <= silent, f"alerts without a silent test: {names - silent}"
    recorded = {
        r["record"]
        for g in rules_spec(rendered("monitoring"))["groups"]
        for r in g["rules"]
        if "record" in r
    }
    exprs = {e["expr"] for t in tests for e in t.get("promql_expr_test", [])}
    assert exprs <= recorded and len(exprs) >= 3


def test_every_alert_says_how_bad_what_and_where_to_read_more(rendered: Render) -> None:
    alerts = _alerts(rules_spec(rendered("monitoring")))
    assert {a["alert"] for a in alerts} == {
        "StreamalBudgetOverspent",
        "StreamalGateClosed",
        "StreamalAccuracyDrop",
        "StreamalNoLabels",
        "StreamalReviewBacklogGrowing",
        "StreamalConsumerLag",
        "StreamalDeadLetters",
        "StreamalReviewsUnreadable",
        "StreamalCheckpointStale",
    }
    readme = (ROOT / "README.md").read_text()
    headings = {
        h.strip().lower() for h in re.findall(r"^#+ (Streamal\w+)\s*$", readme, flags=re.MULTILINE)
    }
    base = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"][
        "runbookBaseUrl"
    ]
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["labels"]["team"] == "fraud-ml"  # additionalAlertLabels
        assert re.fullmatch(r"\d+[smh]", alert["for"]), alert["alert"]
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], alert["alert"]
        anchor = alert["alert"].lower()
        assert notes["runbook_url"] == base + anchor
        assert anchor in headings, f"README has no runbook entry '#### {alert['alert']}'"


def test_a_promql_error_fails_the_rule_check(promtool: Path, tmp_path: Path) -> None:
    spec = {
        "groups": [
            {
                "name": "broken",
                "rules": [
                    {
                        "alert": "Broken",
                        "expr": "sum by (pod) (rate(streamal_events_total[5m]) > 1",
                        "labels": {"severity": "warning"},
                    }
                ],
            }
        ]
    }
    done = _check_rules(promtool, spec, tmp_path)
    assert done.returncode != 0
    assert "unclosed left parenthesis" in done.stdout + done.stderr


def test_a_promql_error_in_the_chart_fails_the_rule_check(
    helm: Helm, chart_copy: Path, promtool: Path, tmp_path: Path
) -> None:
    template = chart_copy / "templates" / "prometheusrule.yaml"
    text = template.read_text()
    end_of_lag_expr = "> {{ .threshold }}\n          for"
    broken = text.replace(end_of_lag_expr, "> " + end_of_lag_expr, 1)
    assert broken != text
    template.write_text(broken)
    done = helm.template(MONITORING, chart=chart_copy)
    assert done.returncode == 0, done.stderr  # helm renders it: only promtool can tell
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    checked = _check_rules(promtool, one(docs, "PrometheusRule")["spec"], tmp_path)
    assert checked.returncode != 0
    assert "parse error" in checked.stdout + checked.stderr


def test_the_stale_checkpoint_alert_is_guarded_only_without_checkpoints(helm: Helm) -> None:
    def expr(*sets: str) -> str:
        docs = helm.render(MONITORING, sets=sets)
        (alert,) = [a for a in _alerts(rules_spec(docs)) if a["alert"] == "StreamalCheckpointStale"]
        return str(alert["expr"])

    assert "> 0" in expr()  # no checkpoints here: never fire on the 0 of "never checkpointed"
    enabled = expr("checkpoint.enabled=true", "checkpoint.key=k")
    assert "> 0" not in enabled  # checkpoints on: "never checkpointed" is stale too


def test_alerts_can_be_turned_off_one_by_one(helm: Helm) -> None:
    docs = helm.render(
        MONITORING,
        sets=(
            "metrics.prometheusRule.alerts.deadLetters.enabled=false",
            "metrics.prometheusRule.alerts.consumerLag.enabled=false",
        ),
    )
    names = {a["alert"] for a in _alerts(rules_spec(docs))}
    assert len(names) == 7
    assert not names & {"StreamalDeadLetters", "StreamalConsumerLag"}


def test_accuracy_rules_follow_the_configured_classes(rendered: Render) -> None:
    """With classes legit,fraud the correct predictions are legit/legit and fraud/fraud."""
    (rule,) = [
        r
        for g in rules_spec(rendered("full-config"))["groups"]
        for r in g["rules"]
        if r.get("record", "").startswith("namespace_job:streamal_unbiased_accuracy")
    ]
    assert 'predicted="legit",actual="legit"' in rule["expr"]
    assert 'predicted="fraud",actual="fraud"' in rule["expr"]
    assert '"true"' not in rule["expr"]


def test_accuracy_drop_fires_with_a_custom_series_selector(
    helm: Helm, promtool: Path, tmp_path: Path
) -> None:
    """metrics.prometheusRule.selector is for scraping another way (README: "e.g. with
    annotations"), where the job is shared and another label tells this release's pods apart.
    The accuracy alert reads recording rules: they must keep the selector's labels, or the
    alert's selector matches no recorded series and the alert can never fire."""
    selector = 'namespace="fraud",job="kubernetes-pods",app_kubernetes_io_instance="streamal"'
    values = tmp_path / "selector-values.yaml"
    values.write_text(yaml.safe_dump({"metrics": {"prometheusRule": {"selector": selector}}}))
    docs = helm.render(MONITORING, values)
    labels = f'{selector},pod="streamal-0",lane="random"'
    # Every 10 minutes 3 correct and 1 wrong random-lane label: accuracy 75 %, 144 in 6 h.
    series = {"true,true": "0+1x48", "false,false": "0+2x48", "true,false": "0+1x48"}
    inputs = [
        {
            "series": "streamal_label_outcomes_total{"
            + f'{labels},predicted="{key.split(",")[0]}",actual="{key.split(",")[1]}"'
            + "}",
            "values": values,
        }
        for key, values in series.items()
    ]
    case = {
        "eval_time": "7h",
        "alertname": "StreamalAccuracyDrop",
        "exp_alerts": [
            {
                "exp_labels": {
                    "severity": "critical",
                    "team": "fraud-ml",
                    "namespace": "fraud",
                    "job": "kubernetes-pods",
                    "app_kubernetes_io_instance": "streamal",
                },
                "exp_annotations": {
                    "summary": "streamal's unbiased accuracy dropped below 0.9",
                    "description": "Accuracy on the random lane's labels (an unbiased estimate "
                    "for the whole stream) is 75% over the last 6h, from at least 50 labels: the "
                    "stream has likely drifted away from what the model knows.",
                    "runbook_url": "https://github.com/streamal/streamal/blob/main/README.md"
                    "#streamalaccuracydrop",
                },
            }
        ],
    }
    test = {"interval": "10m", "input_series": inputs, "alert_rule_test": [case]}
    done = promtool_test(promtool, tmp_path, rules_spec(docs), test)
    assert done.returncode == 0, done.stdout + done.stderr
