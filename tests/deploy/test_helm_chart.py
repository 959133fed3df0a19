"""The Helm chart, checked offline: lint, Kubernetes schemas, CRD structure, wiring, and refusals.

``helm lint --strict`` runs over the defaults and every ``ci/*-values.yaml``; the rendered core
kinds are validated with ``kubernetes-validate --strict`` against the oldest Kubernetes the chart
supports and the newest the validator knows; the custom resources (ServiceMonitor,
PrometheusRule, ScaledObject) are checked field by field. Negative tests show that a broken
template, an unknown or mistyped value, and contradictory settings each fail.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    CHART,
    NAMESPACE,
    RELEASE,
    ROOT,
    VARIANTS,
    Helm,
    find,
    one,
    run_tool,
    setting_schema,
    values_file,
)

from streamal.config import CONNECTION_SETTINGS, Settings
from streamal.service import Service

Render = Callable[[str], list[dict[str, Any]]]

#: Kinds whose schemas Kubernetes itself owns; everything else must be a known custom resource.
CRD_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}


def _oldest_kubernetes() -> str:
    """The chart's oldest Kubernetes (Chart.yaml: >=1.25), or the validator's oldest above it."""
    try:
        import kubernetes_validate
    except ImportError:  # the validator came from the tool cache: trust its range
        return "1.25.0"
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    known = sorted(
        tuple(int(part) for part in m.groups())
        for p in schemas.iterdir()
        if (m := re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", p.name))
    )
    supported = [v for v in known if v >= (1, 25, 0)] or known
    return ".".join(map(str, supported[0]))


#: The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and the newest known.
KUBERNETES_VERSIONS = [_oldest_kubernetes(), "latest"]
#: Settings the chart wires itself (Kafka connection, HTTP bind, secrets, checkpoint directory).
MANAGED_SETTINGS = CONNECTION_SETTINGS | {
    "http_host",
    "http_port",
    "checkpoint_dir",
    "checkpoint_key",
    "checkpoint_key_file",
    "api_token",
}
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert [c["name"] for c in containers] == ["streamal"]
    return containers[0]


def _settings(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The data of the ConfigMap the container reads its settings from."""
    name = _container(docs)["envFrom"][0]["configMapRef"]["name"]
    data: dict[str, str] = one(docs, "ConfigMap", name)["data"]
    return data


def _env_refs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Environment variables set from Secrets: name -> secretKeyRef."""
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in _container(docs).get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


# ------------------------------------------------------------------------------ lint and schemas


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict_passes(helm: Helm, variant: str) -> None:
    path = values_file(variant)
    done = helm.lint(*([path] if path else []))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_rendered_core_kinds_pass_kubernetes_validate_strict(
    rendered: Render, kubernetes_validate: Path, tmp_path: Path, version: str
) -> None:
    files = []
    for variant in VARIANTS:
        core = [d for d in rendered(variant) if (d["apiVersion"], d["kind"]) not in CRD_KINDS]
        path = tmp_path / f"{variant}.yaml"
        path.write_text(yaml.safe_dump_all(core))
        files.append(path)
    args: list[str | Path] = ["--strict", "--no-warn", *files]
    if version != "latest":
        args = ["--kubernetes-version", version, *args]
    done = run_tool(kubernetes_validate, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {d["kind"] for v in VARIANTS for d in rendered(v)}
    expected_core = {
        "StatefulSet",
        "Service",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    }
    assert expected_core <= kinds, f"a variant should render each core kind; got {kinds}"


@pytest.mark.slow
def test_kubernetes_validate_rejects_a_misspelled_field(
    rendered: Render, kubernetes_validate: Path, tmp_path: Path
) -> None:
    statefulset = copy.deepcopy(one(rendered("default"), "StatefulSet"))
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolicyy"] = container.pop("imagePullPolicy")
    path = tmp_path / "statefulset.yaml"
    path.write_text(yaml.safe_dump(statefulset))
    done = run_tool(kubernetes_validate, "--strict", "--no-warn", path)
    assert done.returncode != 0
    assert "imagePullPolicyy" in done.stdout + done.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_kind_is_core_or_a_known_custom_resource(rendered: Render, variant: str) -> None:
    for doc in rendered(variant):
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        if "." in group and not group.endswith(".k8s.io"):
            assert (doc["apiVersion"], doc["kind"]) in CRD_KINDS, doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "streamal"
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_service_monitor_scrapes_the_metrics_port_of_the_headless_service(rendered: Render) -> None:
    docs = rendered("monitoring")
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    selected = [
        s
        for s in find(docs, "Service")
        if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert [s["metadata"]["name"] for s in selected] == [f"{RELEASE}-headless"]
    service = selected[0]["spec"]
    assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
    ports = {p["name"]: p for p in service["ports"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert ports["metrics"]["targetPort"] == "http"
    assert {"interval", "scrapeTimeout"} <= endpoint.keys()
    # The rules select the job the ServiceMonitor produces: the scraped service's name.
    rule = one(docs, "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all(f'job="{RELEASE}-headless"' in e for e in exprs)
    assert all(f'namespace="{NAMESPACE}"' in e for e in exprs)


def test_prometheus_rule_is_structurally_valid(rendered: Render) -> None:
    rule = one(rendered("monitoring"), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    groups = rule["spec"]["groups"]
    assert [g["name"] for g in groups] == ["streamal.recording", "streamal.alerts"]
    for group in groups:
        assert group["rules"], group["name"]
        for item in group["rules"]:
            assert ("record" in item) != ("alert" in item), item
            assert isinstance(item["expr"], str) and item["expr"].strip()
            allowed = {"record", "expr", "labels"} if "record" in item else None
            if allowed:
                assert set(item) <= allowed
            else:
                assert set(item) <= {"alert", "expr", "for", "labels", "annotations"}


def test_scaled_object_scales_the_statefulset_on_the_transactions_lag(rendered: Render) -> None:
    docs = rendered("keda")
    scaled = one(docs, "ScaledObject")
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    statefulset = one(docs, "StatefulSet")
    assert target == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": statefulset["metadata"]["name"],
    }
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] == 6
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    config = _settings(docs)
    assert meta["bootstrapServers"] == config["STREAMAL_BOOTSTRAP_SERVERS"]
    assert meta["consumerGroup"] == config["STREAMAL_CONSUMER_GROUP"] == "fraud-scoring"
    assert meta["topic"] == config["STREAMAL_TOPIC_TRANSACTIONS"] == "payments"
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata are strings"
    assert meta["lagThreshold"] == "5000"
    assert trigger["authenticationRef"] == {"name": "streamal-kafka-auth"}
    # The autoscaler owns the replica count: the StatefulSet must not fight it.
    assert "replicas" not in statefulset["spec"]
    assert not find(docs, "HorizontalPodAutoscaler")
    # With the defaults the consumer group and topic are the service's own defaults.
    default_keda = rendered("default")
    assert not find(default_keda, "ScaledObject")


def test_keda_counts_the_lag_of_a_new_consumer_group_as_the_service_reads_it(
    rendered: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For partitions the group has no offset on yet (a new consumer group), KEDA's lag follows
    its offsetResetPolicy: `latest` counts ~nothing, `earliest` the whole partition. The
    service's consumer starts such partitions from its own auto_offset_reset, so the backlog
    it has to read is what KEDA must see, or it never scales out for it."""
    import streamal.adapters.kafka as kafka_adapter

    seen: dict[str, Any] = {}
    monkeypatch.setattr(kafka_adapter, "KafkaConsumer", lambda **config: seen.update(config))
    kafka_adapter.make_consumer(Settings(bootstrap_servers="kafka:9092"), group_id="streamal")
    (trigger,) = one(rendered("keda"), "ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["offsetResetPolicy"] == seen["auto_offset_reset"]


def test_large_numbers_from_a_values_file_keep_integer_form(helm: Helm, tmp_path: Path) -> None:
    """YAML numbers reach templates as floats: 1000000 must not become 1e+06."""
    path = tmp_path / "big-values.yaml"
    path.write_text(
        "autoscaling: {keda: {enabled: true, lagThreshold: 1000000}}\n"
        "config: {pending_max_items: 2000000, budget_window: 1500000}\n"
    )
    docs = helm.render(path)
    (trigger,) = one(docs, "ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["lagThreshold"] == "1000000"
    config = _settings(docs)
    assert config["STREAMAL_PENDING_MAX_ITEMS"] == "2000000"
    assert config["STREAMAL_BUDGET_WINDOW"] == "1500000"


def test_hpa_scales_the_statefulset(rendered: Render) -> None:
    docs = rendered("hpa")
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert "replicas" not in one(docs, "StatefulSet")["spec"]
    assert not find(docs, "ScaledObject")
    assert one(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


# ------------------------------------------------------------------------------ the pod


def test_pod_is_locked_down_and_probed(rendered: Render) -> None:
    docs = rendered("default")
    statefulset = one(docs, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False
    container = _container(docs)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    # The one writable place: /tmp on an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    # Probes on the service's own endpoints, on the named port.
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert paths == {
        "startupProbe": "/livez",
        "livenessProbe": "/livez",
        "readinessProbe": "/readyz",
    }
    assert {container[p]["httpGet"]["port"] for p in paths} == {"http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    # Settings only through the environment: the ConfigMap, bound to all interfaces.
    assert container["envFrom"][0]["configMapRef"]["name"] == RELEASE
    config = _settings(docs)
    assert config["STREAMAL_HTTP_HOST"] == "0.0.0.0"
    assert config["STREAMAL_HTTP_PORT"] == "8000"
    assert "args" not in container and "command" not in container  # the image's entrypoint
    # A StatefulSet governed by the headless service; replicas in parallel.
    assert statefulset["spec"]["serviceName"] == f"{RELEASE}-headless"
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    assert statefulset["spec"]["replicas"] == 1
    annotations = statefulset["spec"]["template"]["metadata"]["annotations"]
    assert {"checksum/config", "checksum/secret"} <= annotations.keys()
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    # Defaults create no Secret, no checkpoint volume, and no monitoring objects.
    assert not find(docs, "Secret")
    assert "volumeClaimTemplates" not in statefulset["spec"]
    for kind in ("ServiceMonitor", "PrometheusRule", "ScaledObject", "HorizontalPodAutoscaler"):
        assert not find(docs, kind)


def test_chart_secret_holds_the_token_key_and_password(rendered: Render) -> None:
    docs = rendered("chart-secret")
    secret = one(docs, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "api-token": "not-a-real-token",
        "checkpoint-key": "not-a-real-checkpoint-key",
        "sasl-password": "not-a-real-password",
    }
    refs = _env_refs(docs)
    assert refs == {
        "STREAMAL_API_TOKEN": {"name": RELEASE, "key": "api-token"},
        "STREAMAL_CHECKPOINT_KEY": {"name": RELEASE, "key": "checkpoint-key"},
        "STREAMAL_SASL_PASSWORD": {"name": RELEASE, "key": "sasl-password"},
    }
    config = _settings(docs)
    assert config["STREAMAL_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert config["STREAMAL_SASL_USERNAME"] == "streamal"
    assert "STREAMAL_SASL_PASSWORD" not in config, "a secret must never land in the ConfigMap"
    # Checkpoints without persistence: an emptyDir at the configured directory.
    container = _container(docs)
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["checkpoints"] == config["STREAMAL_CHECKPOINT_DIR"]
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    assert {"name": "checkpoints", "emptyDir": {}} in pod["volumes"]
    assert container["image"] == (
        "registry.example.com/fraud/streamal@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert one(docs, "Secret")["metadata"]["annotations"] == {"owner": "fraud-ml@example.com"}
    assert one(docs, "StatefulSet")["metadata"]["labels"]["team"] == "fraud-ml"


def test_existing_secrets_strimzi_tls_and_a_checkpoint_volume_per_replica(rendered: Render) -> None:
    docs = rendered("existing-secret")
    assert not find(docs, "Secret"), "with existingSecret the chart creates no Secret"
    assert _env_refs(docs) == {
        "STREAMAL_API_TOKEN": {
            "name": "streamal-credentials",
            "key": "api-token",
            "optional": True,
        },
        "STREAMAL_CHECKPOINT_KEY": {"name": "streamal-credentials", "key": "checkpoint-key"},
        "STREAMAL_SASL_PASSWORD": {"name": "streamal", "key": "password"},
    }
    config = _settings(docs)
    assert config["STREAMAL_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["STREAMAL_SASL_MECHANISM"] == "SCRAM-SHA-512"
    container = _container(docs)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    ca_dir = mounts["kafka-ca"]["mountPath"]
    assert mounts["kafka-ca"]["readOnly"] is True
    assert config["STREAMAL_SSL_CAFILE"] == f"{ca_dir}/ca.crt"
    statefulset = one(docs, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    (ca,) = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
    assert ca["secret"]["secretName"] == "fraud-cluster-ca-cert"
    # One claim per replica, mounted where the service writes its checkpoints.
    assert statefulset["spec"]["replicas"] == 3
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "checkpoints"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert mounts["checkpoints"]["mountPath"] == config["STREAMAL_CHECKPOINT_DIR"]
    assert "checkpoints" not in {v["name"] for v in pod["volumes"]}
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"


@pytest.mark.parametrize(
    "sets",
    [
        ("fullnameOverride=fraud-review-active-learning-production-eu-west-1-primary",),
        ("nameOverride=streamal-active-learning",),
    ],
    ids=["long-fullname", "long-release-and-name"],
)
def test_long_names_still_give_the_statefulset_pods(helm: Helm, sets: tuple[str, ...]) -> None:
    """The StatefulSet controller labels each pod controller-revision-hash=<name>-<10 chars>,
    a label value of at most 63 characters: a StatefulSet named longer than 52 characters gets
    no pod at all ("must be no more than 63 characters"). helm accepts release names of up to
    53 characters, and the full name appends the chart's name to the release's."""
    release = "fraud-review-active-learning-production-eu-west1"  # 48 characters
    args = ["template", release, str(CHART), "-n", NAMESPACE]
    for item in sets:
        args += ["--set", item]
    done = helm.run(*args)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    name = one(docs, "StatefulSet")["metadata"]["name"]
    assert len(f"{name}-0123456789") <= 63, f"{name!r}: its pods cannot get their revision label"
    for doc in docs:
        assert len(doc["metadata"]["name"]) <= 63, doc["metadata"]["name"]


def test_network_policy_opens_the_http_port_dns_and_kafka_only(rendered: Render) -> None:
    policy = one(rendered("networkpolicy"), "NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert len(ingress["from"]) == 2
    dns, kafka = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert kafka["ports"] == [{"port": 9093, "protocol": "TCP"}]
    assert kafka["to"][0]["podSelector"]["matchLabels"] == {"strimzi.io/kind": "Kafka"}


def test_the_readme_examples_install(helm: Helm, tmp_path: Path) -> None:
    """Every values example of the README's "Deploy on Kubernetes" section lints and renders."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploy on Kubernetes") : readme.index("## Development")]
    examples = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert len(examples) >= 2
    for i, example in enumerate(examples):
        path = tmp_path / f"readme-{i}.yaml"
        path.write_text(example)
        for done in (helm.lint(path), helm.template(path)):
            assert done.returncode == 0, f"README example {i}: {done.stdout}{done.stderr}"


# ------------------------------------------------------------------------------ settings


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_configuration_is_read_by_the_service(
    rendered: Render, variant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ConfigMap (and the secrets' names) are exactly what Settings accepts."""
    docs = rendered(variant)
    for name in list(os.environ):
        if name.startswith("STREAMAL_"):
            monkeypatch.delenv(name)
    config = _settings(docs)
    for name, value in config.items():
        assert name.startswith("STREAMAL_"), name
        assert name.removeprefix("STREAMAL_").lower() in Settings.model_fields, name
        monkeypatch.setenv(name, value)
    for name in _env_refs(docs):
        assert name.removeprefix("STREAMAL_").lower() in Settings.model_fields, name
        monkeypatch.setenv(name, "from-a-secret")
    settings = Settings()
    assert settings.http_host == "0.0.0.0"
    if variant == "full-config":
        # Whole numbers stay integers (not 1e+06), lists stay lists, fractions stay exact.
        assert settings.pending_max_items == 1_000_000
        assert settings.pending_ttl_seconds == 2_592_000
        assert settings.classes == ["legit", "fraud"]
        assert settings.features == ["amount_eur", "mcc", "country", "card_age_days"]
        assert settings.feature_windows_days == [1, 14] and settings.card_field == "card_id"
        assert settings.budget == 0.005 and settings.labels_per_hour == 120.5
        assert settings.emit_scores is False and settings.create_topics is False
        assert settings.strategy == "fraud" and settings.model == "hat"
        path = values_file(variant)
        assert path is not None
        given = yaml.safe_load(path.read_text())["config"]
        assert set(given) == set(VALUES["config"]), "this variant gives every setting"
        assert settings.label_policy == "split" and settings.source_weights == ["chargeback=0.5"]
        assert settings.class_balance == 0.5
        assert set(config) == {"STREAMAL_" + k.upper() for k in given} | {
            "STREAMAL_BOOTSTRAP_SERVERS",
            "STREAMAL_SECURITY_PROTOCOL",
            "STREAMAL_HTTP_HOST",
            "STREAMAL_HTTP_PORT",
        }


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_configuration_starts_the_service(
    rendered: Render, variant: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Parsing is not enough: the service also refuses settings that do not fit together
    (a model that cannot learn weighted labels, a measure the model lacks, ...) and exits at
    start. Every values file the chart ships must give settings the service starts with."""
    docs = rendered(variant)
    for name in list(os.environ):
        if name.startswith("STREAMAL_"):
            monkeypatch.delenv(name)
    for name, value in _settings(docs).items():
        monkeypatch.setenv(name, value)
    for name in _env_refs(docs):
        monkeypatch.setenv(name, "from-a-secret")
    if "STREAMAL_CHECKPOINT_DIR" in os.environ:  # the pod's volume; here, a scratch directory
        monkeypatch.setenv("STREAMAL_CHECKPOINT_DIR", str(tmp_path))
    Service(Settings())  # builds the learner and the gate; raises on settings it refuses


@pytest.mark.parametrize(
    "mechanism",
    [
        m
        for m in SCHEMA["properties"]["kafka"]["properties"]["sasl"]["properties"]["mechanism"][
            "enum"
        ]
        if m
    ],
)
def test_every_sasl_mechanism_the_schema_accepts_can_log_in(mechanism: str) -> None:
    """The service hands the Kafka client a user name and a password and nothing else (see
    Settings.kafka_client_config): a mechanism that needs more (a token provider, Kerberos)
    fails at the first connection, after `helm install` said yes."""
    from kafka import KafkaConsumer
    from kafka.net.sasl import get_sasl_mechanism

    settings = Settings(
        bootstrap_servers="kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username="streamal",
        sasl_password="not-a-real-password",
    )
    config = {**KafkaConsumer.DEFAULT_CONFIG, **settings.kafka_client_config()}
    get_sasl_mechanism(mechanism)(host="kafka", **config)  # what the client does on connect


def test_values_config_holds_every_service_setting_with_its_type() -> None:
    """`config` holds every service setting the chart does not wire itself, and nothing else,
    each typed in the schema as the service types it (so `helm install` refuses what the
    service would refuse)."""
    in_values = set(VALUES["config"])
    properties = SCHEMA["properties"]["config"]["properties"]
    assert in_values == set(properties), "values.yaml and values.schema.json disagree"
    unknown = in_values - set(Settings.model_fields)
    assert not unknown, f"not service settings (renamed or removed?): {sorted(unknown)}"
    assert not in_values & MANAGED_SETTINGS, "the chart sets these from its own values"
    assert all(v is None for v in VALUES["config"].values()), "null: the service's own default"
    missing = sorted(set(Settings.model_fields) - in_values - MANAGED_SETTINGS)
    snippet = {name: setting_schema(name) for name in missing}
    assert not missing, (
        f"settings the chart cannot set: {missing}: add each to `config` in "
        "helm/streamal/values.yaml (as null) and to config.properties in "
        f"values.schema.json:\n{json.dumps(snippet, indent=2)}"
    )
    for name in sorted(in_values):
        expected = setting_schema(name)
        assert properties[name] == expected, f"{name}: schema should be {json.dumps(expected)}"


def test_schema_rejects_unknown_keys_everywhere() -> None:
    """Every object of the schema that lists properties closes itself to others."""

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
            for key, child in node.items():
                walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{where}[{i}]")

    walk(SCHEMA, "$")
    assert SCHEMA["additionalProperties"] is False


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("nosuchkey=1",), "Additional property nosuchkey is not allowed"),
        (("image.tga=latest",), "image: Additional property tga is not allowed"),
        (
            ("metrics.prometheusRule.alerts.accuracyDrop.treshold=0.8",),
            "accuracyDrop: Additional property treshold is not allowed",
        ),
    ],
    ids=["top-level", "nested", "alert-threshold-typo"],
)
def test_an_unknown_values_key_fails(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    for done in (helm.template(sets=sets), helm.lint(sets=sets)):
        assert done.returncode != 0
        assert message in (done.stdout + done.stderr)


@pytest.mark.parametrize(
    "sets",
    [
        ("replicaCount=three",),
        ("config.budget=lots",),
        ("config.strategy=smartest",),
        ("kafka.securityProtocol=TLS",),
        ("kafka.sasl.mechanism=OAUTHBEARER",),  # needs a token provider the service lacks
        ("metrics.prometheusRule.alerts.deadLetters.for=soon",),
        ("containerPort=70000",),
    ],
)
def test_a_wrong_type_or_value_fails(helm: Helm, sets: tuple[str, ...]) -> None:
    done = helm.template(sets=sets)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("autoscaling.hpa.enabled=true", "autoscaling.keda.enabled=true"),
            "autoscaling",
        ),
        (("checkpoint.enabled=true",), "checkpoint.enabled needs checkpoint.key or existingSecret"),
        (
            ("kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN"),
            "needs kafka.sasl.mechanism and kafka.sasl.username",
        ),
        (
            (
                "kafka.securityProtocol=SASL_SSL",
                "kafka.sasl.mechanism=PLAIN",
                "kafka.sasl.username=u",
            ),
            "SASL needs a password",
        ),
        (("config.shutdown_grace_seconds=40",), "must exceed config.shutdown_grace_seconds"),
        (("pdb.minAvailable=1",), "pdb: set minAvailable or maxUnavailable, not both"),
        # With existingSecret the chart creates no Secret: a secret value given as well would be
        # dropped without a word (an API token that protects nothing, a key that signs nothing).
        (
            ("existingSecret=creds", "auth.apiToken=not-a-real-token"),
            "auth.apiToken is not used with existingSecret",
        ),
        (
            ("existingSecret=creds", "checkpoint.enabled=true", "checkpoint.key=k"),
            "checkpoint.key is not used with existingSecret",
        ),
        (
            (
                "existingSecret=creds",
                "kafka.securityProtocol=SASL_SSL",
                "kafka.sasl.mechanism=PLAIN",
                "kafka.sasl.username=u",
                "kafka.sasl.password=p",
            ),
            "kafka.sasl.password is not used with existingSecret",
        ),
        # A healthy service checkpoints once an hour: its last checkpoint is older than 15
        # minutes for most of every hour, and the critical alert would fire for ever.
        (
            (
                "checkpoint.enabled=true",
                "checkpoint.key=k",
                "config.checkpoint_interval_seconds=3600",
                "metrics.prometheusRule.enabled=true",
            ),
            "checkpointStale.maxAgeSeconds (900) must exceed config.checkpoint_interval_seconds",
        ),
        # KEDA reads the lag from the brokers itself: behind SASL or TLS it needs credentials,
        # or the ScaledObject never gets a metric and the StatefulSet stays at one replica.
        (
            (
                "autoscaling.keda.enabled=true",
                "kafka.securityProtocol=SASL_SSL",
                "kafka.sasl.mechanism=SCRAM-SHA-512",
                "kafka.sasl.username=u",
                "kafka.sasl.passwordSecret.name=u",
            ),
            "autoscaling.keda.authenticationRef",
        ),
        (
            ("autoscaling.keda.enabled=true", "kafka.securityProtocol=SSL"),
            "autoscaling.keda.authenticationRef",
        ),
        # Prometheus refuses a scrape timeout above the interval (and the Prometheus Operator
        # drops such a ServiceMonitor): nothing is scraped, and every alert is silent.
        (
            ("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval=5s"),
            "metrics.serviceMonitor.scrapeTimeout (10s) must not exceed",
        ),
        (
            (
                "metrics.serviceMonitor.enabled=true",
                "metrics.serviceMonitor.interval=1m",
                "metrics.serviceMonitor.scrapeTimeout=1m30s",
            ),
            "metrics.serviceMonitor.scrapeTimeout (1m30s) must not exceed",
        ),
    ],
    ids=[
        "hpa-and-keda",
        "unsigned-checkpoints",
        "sasl-user",
        "sasl-password",
        "grace",
        "pdb",
        "token-beside-existing-secret",
        "key-beside-existing-secret",
        "password-beside-existing-secret",
        "checkpoint-interval-beyond-stale-age",
        "keda-without-sasl-credentials",
        "keda-without-tls-settings",
        "scrape-timeout-above-interval",
        "scrape-timeout-above-interval-compound",
    ],
)
def test_contradictory_settings_fail(helm: Helm, sets: tuple[str, ...], message: str) -> None:
    done = helm.template(sets=sets)
    assert done.returncode != 0
    assert message in done.stderr, done.stderr


#: Settings each valid alone that the service refuses together when it starts (it exits 2 and
#: the pod crash-loops), or refuses alone though their type fits, and neighbours it accepts.
COMBINATIONS = {
    "arf-weighted": ({"model": "arf", "class_balance": 0.5}, False),
    "gnb-source-weights": ({"model": "gnb", "source_weights": ["chargeback=0.5"]}, False),
    "gnb-weight-one": ({"model": "gnb", "source_weights": ["chargeback=1"]}, True),
    "gnb-weight-one-spaced": ({"model": "gnb", "source_weights": ["chargeback = 1.0 "]}, True),
    "hat-weighted": ({"model": "hat", "source_weights": ["chargeback=0.5"]}, True),
    "committee-without-ensemble": ({"measure": "vote_entropy"}, False),
    "kl-on-hat": ({"model": "hat", "measure": "kl_divergence"}, False),
    "committee-on-arf": ({"model": "arf", "measure": "vote_entropy"}, True),
    "gradient-on-a-tree": ({"model": "hat", "measure": "gradient"}, False),
    "gradient-on-logreg-slow": ({"model": "logreg-slow", "measure": "gradient"}, True),
    "split-with-model-measure": ({"label_policy": "split", "measure": "gradient"}, False),
    "split-with-entropy": ({"label_policy": "split", "measure": "entropy"}, True),
    "alerts-without-card": ({"alert_cards_per_day": 50}, False),
    "alerts-with-card": ({"alert_cards_per_day": 50, "card_field": "card_id"}, True),
    "shares-above-one": ({"random_share": 0.8, "exploit_share": 0.5}, False),
    "random-share-over-fraud-exploit": ({"strategy": "fraud", "random_share": 0.8}, False),
    "random-share-with-own-exploit": ({"strategy": "balanced", "random_share": 0.8}, True),
    "alert-lane-replaces-exploit": (
        {"alert_cards_per_day": 9, "card_field": "c", "random_share": 0.8, "exploit_share": 0.5},
        True,
    ),
    "one-class": ({"classes": ["fraud"]}, False),
    "same-class-twice": ({"classes": ["fraud", "fraud"]}, False),
    "source-weight-without-value": ({"source_weights": ["chargeback"]}, False),
    "no-classes-is-binary": ({"classes": []}, True),
}


@pytest.mark.parametrize(("config", "starts"), COMBINATIONS.values(), ids=COMBINATIONS.keys())
def test_settings_the_service_refuses_at_start_fail_the_install(
    helm: Helm, tmp_path: Path, config: dict[str, Any], starts: bool
) -> None:
    """`helm install` refuses exactly what the service would refuse at start (the oracle is the
    service itself), and accepts the neighbouring combinations it starts with."""
    try:
        Service(Settings(bootstrap_servers="kafka:9092", **config))
    except (ValueError, TypeError):
        started = False
    else:
        started = True
    assert started is starts, f"the service {'starts' if started else 'refuses'}: fix the case"
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"config": config}))
    done = helm.template(path)
    if starts:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0, "the chart renders settings the service refuses at start"
        assert "config" in done.stderr or "classes" in done.stderr, done.stderr


def test_a_broken_template_fails_lint_and_template(helm: Helm, chart_copy: Path) -> None:
    service = chart_copy / "templates" / "service.yaml"
    # An unknown function: a parse error of the template itself.
    service.write_text(service.read_text() + "\n{{ .Values.service.port | nosuchfunction }}\n")
    for done in (helm.lint(chart=chart_copy), helm.template(chart=chart_copy)):
        assert done.returncode != 0
        assert 'function "nosuchfunction" not defined' in done.stderr + done.stdout


def test_a_template_rendering_invalid_yaml_fails(helm: Helm, chart_copy: Path) -> None:
    pdb = chart_copy / "templates" / "pdb.yaml"
    # A mis-indented key: the template renders, but not to YAML.
    pdb.write_text(pdb.read_text().replace("  selector:", "selector:\n   - broken: [", 1))
    for done in (helm.lint(chart=chart_copy), helm.template(chart=chart_copy)):
        assert done.returncode != 0
        assert "pdb.yaml" in done.stderr + done.stdout


def test_a_schema_hole_would_be_caught(helm: Helm, chart_copy: Path) -> None:
    """A value added to values.yaml but not to the schema fails lint (additionalProperties)."""
    values = chart_copy / "values.yaml"
    values.write_text(values.read_text() + "\nundocumented: true\n")
    done = helm.lint(chart=chart_copy)
    assert done.returncode != 0
    assert "undocumented" in done.stdout + done.stderr
