"""The live ``/metrics`` of a running service: Prometheus' own linter passes on it, and it holds
every metric name the dashboard and the alert rules read.

The service runs against the session's real broker (``kafka_bootstrap``) behind its real HTTP app
on a loopback port, with a few transactions, a bad record and a label through it, so that every
family has samples.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from deploy_support import exposition_names, run_tool, used_metric_names
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from streamal.adapters.http import create_app
from streamal.adapters.metrics import Metrics
from streamal.config import Settings
from streamal.core.messages import ClassSet
from streamal.core.synthetic import drifting_transactions
from streamal.service import Service

Render = Callable[[str], list[dict[str, Any]]]
EVENTS = 300


def lint_metrics(promtool: Path, text: str) -> list[str]:
    """``promtool check metrics`` on an exposition: its complaints (none when it passes)."""
    done = run_tool(promtool, "check", "metrics", stdin=text)
    problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert (done.returncode == 0) == (not problems), (done.returncode, problems)
    return problems


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def _serving(service: Service) -> Iterator[httpx.Client]:
    """The service's real HTTP app under uvicorn on a free loopback port (service started)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(service, manage_lifecycle=False),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="deploy-http", daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started or not thread.is_alive(), 10, "uvicorn to start")
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def live_metrics(kafka_bootstrap: str) -> str:
    """``GET /metrics`` once transactions, a bad record and a label went through the service."""
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_transactions=f"transactions-{suffix}",
        topic_scores=f"scores-{suffix}",
        topic_reviews=f"reviews-{suffix}",
        topic_labels=f"labels-{suffix}",
        topic_dead_letter=f"dead-letter-{suffix}",
        consumer_group=f"g-{suffix}",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        budget=0.05,
    )
    service = Service(settings)
    service.start()
    try:
        assert service.wait_ready(30), service.ready()
        with _serving(service) as client:
            assert client.get("/livez").status_code == 200
            assert client.get("/readyz").status_code == 200
            producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
            try:
                for event, _ in drifting_transactions(EVENTS, seed=7):
                    producer.send(
                        settings.topic_transactions,
                        key=event["event_id"].encode(),
                        value=json.dumps(event).encode(),
                    )
                producer.send(settings.topic_transactions, value=b"not json")
                producer.flush(timeout=30)
            finally:
                producer.close(timeout=10)
            registry = service.metrics.registry

            def sample(name: str, **labels: str) -> float:
                return registry.get_sample_value(name, labels) or 0.0

            _wait(
                lambda: sample("streamal_events_total", outcome="scored") >= EVENTS,
                60,
                "the transactions to be scored",
            )
            open_reviews = client.get("/v1/reviews", params={"limit": 1}).json()["items"]
            assert open_reviews, "a 5 % budget over 300 events requests labels"
            label = {"event_id": open_reviews[0]["event_id"], "label": True, "source": "reviewer"}
            answer = client.post("/v1/labels", json=label)
            assert answer.status_code == 202, answer.text
            _wait(lambda: sample("streamal_model_updates_total") >= 1, 30, "the label learned")
            _wait(
                lambda: b"streamal_consumer_lag{" in generate_latest(registry), 10, "the lag gauge"
            )
            response = client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            return response.text
    finally:
        service.stop()


@pytest.mark.kafka
@pytest.mark.slow
def test_live_metrics_pass_promtool_check_metrics(live_metrics: str, promtool: Path) -> None:
    assert "streamal_events_total" in live_metrics
    assert lint_metrics(promtool, live_metrics) == []


@pytest.mark.kafka
@pytest.mark.slow
def test_dashboard_and_rules_read_only_metrics_the_live_service_exports(
    live_metrics: str, rendered: Render
) -> None:
    exported = exposition_names(live_metrics)
    used = used_metric_names(rendered)
    assert used <= exported, f"not in the live /metrics: {sorted(used - exported)}"


def test_registry_passes_promtool_check_metrics(promtool: Path) -> None:
    """The same check without a broker: the registry as the service builds it."""
    text = generate_latest(Metrics(ClassSet(), ["reviewer", "chargeback"]).registry).decode()
    assert lint_metrics(promtool, text) == []


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (
            lambda r: Gauge("streamal_review_backlog_total", "Open reviews.", registry=r).set(1),
            'non-counter metrics should not have "_total" suffix',
        ),
        (
            lambda r: Histogram("streamal_delay_milliseconds", "Delay.", registry=r).observe(3),
            'use base unit "seconds" instead of "milliseconds"',
        ),
        (
            lambda r: Gauge("streamal_state_kilobytes", "State size.", registry=r).set(1),
            'use base unit "bytes" instead of "kilobytes"',
        ),
    ],
    ids=["gauge-with-_total", "milliseconds", "kilobytes"],
)
def test_a_metric_name_breaking_conventions_fails_the_check(
    promtool: Path, make: Callable[[Any], None], complaint: str
) -> None:
    metrics = Metrics(ClassSet(), ["reviewer"])
    make(metrics.registry)
    problems = lint_metrics(promtool, generate_latest(metrics.registry).decode())
    assert any(complaint in p for p in problems), problems


def test_a_counter_without_total_in_raw_exposition_fails_the_check(promtool: Path) -> None:
    text = "# HELP streamal_events Events.\n# TYPE streamal_events counter\nstreamal_events 3\n"
    problems = lint_metrics(promtool, text)
    assert any('counter metrics should have "_total" suffix' in p for p in problems), problems
    # prometheus_client itself always adds _total to counters: the service cannot make this one.
    registry = CollectorRegistry()
    Counter("streamal_events", "Events.", registry=registry).inc()
    assert "streamal_events_total" in generate_latest(registry).decode()
