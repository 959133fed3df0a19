"""What the deployment checks share: paths, the chart's variants, helm and tool runners."""

from __future__ import annotations

import json
import re
import subprocess
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from annotated_types import Ge, Gt, Le, Lt
from deploy_tools import ToolError, ensure, env_for
from prometheus_client.parser import text_string_to_metric_families

from streamal.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "streamal"
#: Values variants rendered and checked besides the defaults (helm's own `ci/` convention).
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VARIANTS = ["default", *(p.name.removesuffix("-values.yaml") for p in CI_VALUES)]
#: Release name and namespace used for renders (the rule tests expect these in their series).
RELEASE = "streamal"
NAMESPACE = "fraud"
DASHBOARD_FILE = CHART / "dashboards" / "streamal.json"


def values_file(variant: str) -> Path | None:
    """The ci/ values file of a variant (None for the chart's defaults)."""
    return None if variant == "default" else CHART / "ci" / f"{variant}-values.yaml"


def tool(name: str) -> Path:
    """A tool's path, installed on first use; a tool that cannot be had fails the test."""
    try:
        return ensure(name)
    except ToolError as exc:  # a missing tool fails the checks; it never skips them
        pytest.fail(f"cannot install {name}: {exc}")


def run_tool(
    binary: Path, *args: str | Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a tool; the result carries its exit code and output (never raises on failure)."""
    return subprocess.run(
        [str(binary), *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env_for(binary),
    )


def promtool_test(
    promtool: Path, folder: Path, rules: dict[str, Any], test: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of one test group (``interval``, ``input_series`` and the cases)
    against ``rules``, both written to ``folder`` first, evaluated every minute."""
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    path = folder / "promtool_test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_tool(promtool, "test", "rules", path)


class Helm:
    """``helm lint`` and ``helm template`` on the chart (or a copy of it)."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return run_tool(self.binary, *args)

    def lint(
        self, *values: Path, chart: Path = CHART, sets: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        args: list[str | Path] = ["lint", "--strict", chart]
        for path in values:
            args += ["-f", path]
        for item in sets:
            args += ["--set", item]
        return self.run(*args)

    def template(
        self, *values: Path, chart: Path = CHART, sets: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        args: list[str | Path] = ["template", RELEASE, chart, "--namespace", NAMESPACE]
        for path in values:
            args += ["-f", path]
        for item in sets:
            args += ["--set", item]
        return self.run(*args)

    def render(self, *values: Path, sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """The rendered manifests (the test fails with helm's message if rendering fails)."""
        done = self.template(*values, sets=sets)
        assert done.returncode == 0, done.stderr
        return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """The manifests of one kind (and name)."""
    return [
        d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def rules_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``spec`` of the rendered PrometheusRule: a Prometheus rule file as it is."""
    spec: dict[str, Any] = one(docs, "PrometheusRule")["spec"]
    return spec


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.$:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "group_left", "group_right"}
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][\w:]*)?")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana ``label_values`` query) reads.

    Strings, label matchers, ranges and grouping label lists are dropped first, so label names
    and values, durations and Grafana variables are never taken for metric names.

    >>> sorted(promql_metric_names(
    ...     'sum by (le) (rate(a_bucket{job="$job",x=~"y|z"}[$__rate_interval])) / on (pod) '
    ...     'ignoring (q) group_left (r) b_total offset 1h > 1e-9 and ns:rec:rate5m'))
    ['a_bucket', 'b_total', 'ns:rec:rate5m']
    >>> sorted(promql_metric_names('time() - max(c{k="v"} > 0)'))
    ['c']
    >>> sorted(promql_metric_names('label_values(d_total{namespace="$namespace"}, job)'))
    ['d_total']
    """
    found = _LABEL_VALUES.findall(expr)
    if found:
        return {name for name in found if name}
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _LABEL_LISTS.sub("", text)
    return {n for n in _NAME.findall(text) if n.lower() not in _KEYWORDS}


def exposition_names(text: str) -> set[str]:
    """The sample names of a Prometheus text exposition (``x_total``, ``h_bucket``, ...)."""
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard, its variables' queries included."""
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return exprs


def rule_queries(spec: dict[str, Any]) -> tuple[list[str], set[str]]:
    """The expressions of a rule file and the names its recording rules define."""
    rules = [r for g in spec["groups"] for r in g["rules"]]
    return [r["expr"] for r in rules], {r["record"] for r in rules if "record" in r}


def used_metric_names(rendered: Callable[[str], list[dict[str, Any]]]) -> set[str]:
    """Metric names read by the dashboard and the rules (recorded series excluded)."""
    exprs, recorded = rule_queries(rules_spec(rendered("monitoring")))
    names: set[str] = set()
    for expr in [*dashboard_queries(), *exprs]:
        names |= promql_metric_names(expr)
    return names - recorded


#: What the service checks of a list beyond its item type, when it starts.
LIST_CHECKS: dict[str, dict[str, Any]] = {
    # parse_weights: NAME=WEIGHT, the weight a float
    "source_weights": {
        "items": {
            "type": "string",
            "minLength": 1,
            "pattern": r"^[^=,]+=\s*[-+]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][-+]?[0-9]+)?\s*$",
        }
    },
}


def setting_schema(name: str) -> dict[str, Any]:
    """The values.schema.json property of ``config.<name>``, derived from the service setting.

    Nullable (null keeps the service's default); the type, choices and bounds of the setting.

    >>> setting_schema("budget")["type"], setting_schema("budget")["exclusiveMinimum"]
    (['number', 'null'], 0.0)
    >>> setting_schema("model")["enum"]
    ['logreg', 'hat', 'arf', 'gnb', 'logreg-slow', None]
    """
    field = Settings.model_fields[name]
    annotation: Any = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    schema: dict[str, Any]
    if origin is typing.Literal:
        schema = {"type": "string", "enum": [*args, None]}
    elif origin is list:
        item = {"type": "integer", "minimum": 1} if args == (int,) else {"type": "string"}
        if item["type"] == "string":
            # The list reaches the service comma-separated: an item holding a comma would
            # arrive as two.
            item |= {"minLength": 1, "pattern": "^[^,]+$"}
        schema = {"type": "array", "items": item}
        schema |= LIST_CHECKS.get(name, {})
    else:
        kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
        schema = {"type": kinds[annotation]}
        if annotation is str:
            schema["minLength"] = 1
    bounds = {Ge: ("minimum", "ge"), Gt: ("exclusiveMinimum", "gt")}
    bounds |= {Le: ("maximum", "le"), Lt: ("exclusiveMaximum", "lt")}
    for constraint in field.metadata:
        for kind, (key, attribute) in bounds.items():
            if isinstance(constraint, kind):
                schema[key] = getattr(constraint, attribute)
    schema["type"] = [schema["type"], "null"]
    schema["description"] = f"STREAMAL_{name.upper()}: {field.description}"
    return schema
