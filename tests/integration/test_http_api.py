"""The HTTP API of a running service on the real broker: probes, metrics and ``/v1``.

The service is started by the test (the app does not manage its lifecycle) and the app is served
by uvicorn on a loopback port, so every request goes through the real HTTP stack.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from helpers import (
    FreshTopics,
    TopicReader,
    http_client,
    kafka_producer,
    metric_sum,
    running_service,
    service_settings,
    wait_until,
)
from prometheus_client import CONTENT_TYPE_LATEST

from streamal.service import Service

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BUDGET = 0.5


@pytest.fixture(scope="module")
def topics() -> FreshTopics:
    """One set of topics for the module's one service (tests stay apart by event ids)."""
    return FreshTopics.new()


@pytest.fixture(scope="module")
def service(kafka_bootstrap: str, topics: FreshTopics) -> Iterator[Service]:
    # A generous budget, so that a handful of events is enough to open review requests. Every
    # test sends its own ten: the variable threshold asks about some of each batch, where the
    # default's head start would spend on the first batches and then pay the advance back.
    settings = service_settings(kafka_bootstrap, topics, budget=BUDGET, strategy="variable")
    with running_service(settings) as svc:
        yield svc


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[httpx.Client]:
    with http_client(service) as c:
        yield c


@pytest.fixture
def open_reviews(service: Service, kafka_bootstrap: str, topics: FreshTopics) -> list[str]:
    """Ids of fresh events the service sent to review (a cold model asks about the first ones)."""
    batch = uuid.uuid4().hex[:8]
    with kafka_producer(kafka_bootstrap) as producer:
        for i in range(10):
            event = {"event_id": f"http-{batch}-{i}", "amount": 20.0 + i, "category": "fuel"}
            producer.send(topics.transactions, value=json.dumps(event).encode())
        producer.flush(timeout=20)

    def ours(seen: list[dict[str, Any]]) -> bool:
        return sum(str(r["event_id"]).startswith(f"http-{batch}-") for r in seen) >= 2

    with TopicReader(kafka_bootstrap, topics.reviews) as reader:
        reviews = reader.read_json(ours, timeout=30)
    ids = [r["event_id"] for r in reviews if r["event_id"].startswith(f"http-{batch}-")]
    wait_until(
        lambda: {i.event_id for i in service.learner.pending.snapshot()} >= set(ids),
        timeout=10,
        what="open reviews",
    )
    return ids


def test_probes(client: httpx.Client) -> None:
    live = client.get("/livez")
    assert live.status_code == 200 and live.json() == {"alive": True}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()
    assert checks["ready"] is True
    for check in ("model_loaded", "labels_positioned", "partitions_assigned", "broker_reachable"):
        assert checks[check] is True, check


def test_metrics_exposition(client: httpx.Client) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST  # Prometheus text format
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    for name in (
        "streamal_events_total",
        "streamal_labels_total",
        "streamal_label_budget_ratio",
        "streamal_label_apply_seconds_bucket",
        "streamal_model_updates_total",
        "streamal_dead_letters_total",
    ):
        assert name in text, name
    assert metric_sum(text, "streamal_label_budget_ratio") == BUDGET


def test_post_label_is_learned(
    client: httpx.Client, service: Service, open_reviews: list[str]
) -> None:
    listed = client.get("/v1/reviews")
    assert listed.status_code == 200
    body = listed.json()
    assert body["open"] >= 2
    items = {item["event_id"]: item for item in body["items"]}
    assert set(open_reviews) <= set(items)
    item = items[open_reviews[0]]
    assert item["reason"] in ("uncertainty", "random", "exploit")
    assert set(item["probabilities"]) == {"false", "true"}
    assert client.get("/v1/reviews", params={"limit": 1}).json()["items"][0]["event_id"]

    learned_before = metric_sum(
        client.get("/metrics").text, "streamal_labels_total", source="reviewer", outcome="learned"
    )
    before = client.get("/v1/model").json()
    assert before["kind"] == "logreg" and before["classes"] == ["false", "true"]
    response = client.post(
        "/v1/labels", json={"event_id": open_reviews[0], "label": True, "source": "reviewer"}
    )
    assert response.status_code == 202, response.text
    written = response.json()
    assert written["status"] == "accepted"
    assert written["topic"] == service.settings.topic_labels
    assert isinstance(written["partition"], int) and isinstance(written["offset"], int)
    wait_until(
        lambda: client.get("/v1/model").json()["labels_learned"] == before["labels_learned"] + 1,
        timeout=10,
        what="the posted label learned",
    )
    after = client.get("/v1/model").json()
    assert after["version"] == before["version"] + 1
    assert open_reviews[0] not in {i["event_id"] for i in client.get("/v1/reviews").json()["items"]}
    text = client.get("/metrics").text
    learned = metric_sum(text, "streamal_labels_total", source="reviewer", outcome="learned")
    assert learned == learned_before + 1


def test_fraud_metrics_follow_the_labels(
    client: httpx.Client, service: Service, open_reviews: list[str]
) -> None:
    """Labels by source reach the per-source and fraud metrics of the live ``/metrics``.

    Events here have no card field (each is its own card) and no time (their day is the request
    day); amounts are 20 + their index.
    """
    caught, missed = open_reviews[0], f"cb-{uuid.uuid4().hex[:8]}"
    before = client.get("/metrics").text

    def value(text: str, name: str, **labels: str) -> float:
        return metric_sum(text, name, **labels)

    cards_before = value(before, "streamal_fraud_reviewed_cards", day="current")
    cp_before = value(before, "streamal_fraud_card_precision_at_k", day="current")
    labels = [
        {"event_id": caught, "label": True, "source": "reviewer"},
        {"event_id": open_reviews[1], "label": False, "source": "chargeback"},
        {
            "event_id": missed,
            "label": True,
            "source": "chargeback",
            "event": {"event_id": missed, "amount": 55.0, "category": "fuel"},
        },
    ]
    for body in labels:
        assert client.post("/v1/labels", json=body).status_code == 202
    wait_until(
        lambda: (
            value(client.get("/metrics").text, "streamal_labels_total", source="chargeback")
            == value(before, "streamal_labels_total", source="chargeback") + 2
        ),
        timeout=15,
        what="the chargebacks learned",
    )
    after = client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("streamal_fraud_amount_caught_total") == 20.0 + int(caught.rsplit("-", 1)[1])
    assert delta("streamal_fraud_amount_missed_total") == 55.0
    assert delta("streamal_label_source_outcomes_total", source="reviewer", actual="true") == 1
    assert delta("streamal_label_source_outcomes_total", source="chargeback", actual="true") == 1
    assert delta("streamal_label_source_outcomes_total", source="chargeback", actual="false") == 1
    assert delta("streamal_label_source_outcomes_total", source="other") == 0
    chargeback_accuracy = value(after, "streamal_model_accuracy_by_source", source="chargeback")
    assert 0.0 <= chargeback_accuracy <= 1.0
    # Two more labelled requests ranked (the chargeback carrying its event was never requested).
    assert delta("streamal_fraud_window_labels", estimator="labeled") == 2
    if value(after, "streamal_fraud_reviewed_cards", day="current") == cards_before + 2:
        frauds_before = cp_before * cards_before if cards_before else 0.0
        expected = (frauds_before + 1) / (cards_before + 2)  # fewer than k=100 cards: over cards
        cp = value(after, "streamal_fraud_card_precision_at_k", day="current")
        assert cp == pytest.approx(expected)
    else:  # the UTC day turned between the two scrapes
        assert value(after, "streamal_fraud_reviewed_cards", day="previous") >= cards_before
    # Both classes are labelled now, so the ranking figures are defined.
    for name, labels in (
        ("streamal_fraud_card_recall", {}),
        ("streamal_fraud_score_auc", {"estimator": "labeled"}),
        ("streamal_fraud_score_average_precision", {"estimator": "labeled"}),
    ):
        assert 0.0 <= value(after, name, **labels) <= 1.0, name
    assert value(after, "streamal_fraud_card_recall") < 1.0  # the chargeback was a miss


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 422, "invalid request body"),
        (b"[1, 2]", 422, "invalid request body"),
        (b'{"label": true}', 422, "invalid request body"),
        (b'{"event_id": "e1"}', 422, "invalid request body"),
        (b'{"event_id": ["e1"], "label": true}', 422, "invalid request body"),
        (b'{"event_id": "e1", "label": [true]}', 422, "invalid request body"),
        (b'{"event_id": true, "label": true}', 422, "invalid request body"),
        (b'{"event_id": "e1", "label": 1.0}', 422, "invalid request body"),
        (b'{"event_id": "e1", "label": true, "event": "not an object"}', 422, "invalid"),
        (b'{"event_id": "e1", "label": true, "source": ""}', 422, "invalid request body"),
        (b'{"event_id": "e1", "label": "maybe"}', 400, "unknown_class"),
        (b'{"event_id": "e1", "label": 2}', 400, "unknown_class"),
        (b'{"event_id": "", "label": true}', 400, "bad_type"),
        (
            json.dumps(
                {"event_id": "e1", "label": True, "event": {"pad": "x" * 1_000_000}}
            ).encode(),
            400,
            "oversize",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "missing-id",
        "missing-label",
        "id-wrong-type",
        "label-wrong-type",
        "id-bool",
        "label-float",
        "event-wrong-type",
        "empty-source",
        "unknown-class",
        "unknown-class-int",
        "empty-id",
        "huge-body",
    ],
)
def test_post_bad_label_is_a_4xx(
    client: httpx.Client, service: Service, body: bytes, status: int, error: str
) -> None:
    learned = service.learner.model.n_learned
    invalid = metric_sum(service.metrics.registry, "streamal_labels_total", outcome="invalid")
    response = client.post("/v1/labels", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert error in answer["error"]
    assert answer["detail"]
    assert service.learner.model.n_learned == learned
    after = metric_sum(service.metrics.registry, "streamal_labels_total", outcome="invalid")
    assert after == invalid + 1  # counted, like a label refused on the labels topic


def test_budget_get_and_put(client: httpx.Client, service: Service) -> None:
    budget = client.get("/v1/budget")
    assert budget.status_code == 200
    assert budget.json()["fraction"] == BUDGET
    assert budget.json()["window"] == service.settings.budget_window
    try:
        _change_budget(client, service)
    finally:
        client.put("/v1/budget", json={"fraction": BUDGET})


def _change_budget(client: httpx.Client, service: Service) -> None:
    changed = client.put("/v1/budget", json={"fraction": 0.05})
    assert changed.status_code == 200 and changed.json()["fraction"] == 0.05
    assert service.learner.gate.budget.fraction == 0.05
    assert client.get("/v1/budget").json()["fraction"] == 0.05
    assert metric_sum(client.get("/metrics").text, "streamal_label_budget_ratio") == 0.05

    for bad in (2, -1, 0, "lots", True, "0.5"):
        response = client.put("/v1/budget", json={"fraction": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"] == "invalid request body"
    assert client.put("/v1/budget", json={}).status_code == 422
    assert service.learner.gate.budget.fraction == 0.05
