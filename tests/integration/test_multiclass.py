"""Three classes through the real broker: scores, review requests and labels by class name.

``STREAMAL_CLASSES`` turns the binary service into a multi-class one. The stream's class is
set by which band of ``x`` an event falls in. The middle band is no linear function of ``x``,
so the model is River's Hoeffding adaptive tree (offline, at this budget, 0.94 accuracy on the
last 1,000 events, where the one-vs-rest logistic model reaches 0.51). The stream is produced
at 1,000 events a second while a reviewer answers each review request from ground truth.

The service must score every event over all three classes, name its predictions by class,
learn every label, count the confusion by class name, beat chance by far on the last events,
and dead-letter a label whose class it does not know.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from helpers import (
    TopicReader,
    kafka_producer,
    metric_sum,
    running_service,
    service_settings,
    wait_until,
)
from recovery_helpers import Reviewer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

CLASSES = ["low", "mid", "high"]
EVENTS = 3000
TAIL = 1000


def _stream(n: int, seed: int) -> list[tuple[dict[str, Any], str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        x = rng.gauss(0.0, 1.0)
        label = "low" if x < -0.5 else "mid" if x < 0.5 else "high"
        out.append(({"event_id": f"m-{i}", "x": x, "noise": rng.gauss(0.0, 1.0)}, label))
    return out


def test_three_classes_end_to_end(kafka_bootstrap: str, topics: Any) -> None:
    stream = _stream(EVENTS, seed=5)
    truth = {event["event_id"]: label for event, label in stream}
    settings = service_settings(kafka_bootstrap, topics, classes=CLASSES, budget=0.1, model="hat")

    with running_service(settings) as service:
        registry = service.metrics.registry
        reviewer = Reviewer(kafka_bootstrap, topics.reviews, topics.labels, truth)
        reviewer.start()
        try:
            with kafka_producer(kafka_bootstrap) as producer:
                for i, (event, _) in enumerate(stream):
                    producer.send(topics.transactions, json.dumps(event).encode())
                    if i % 100 == 99:
                        time.sleep(0.1)  # 1,000 events a second: labels return meanwhile
                # A label for a class the service does not know: dead-lettered, not learned.
                unknown = {"event_id": "m-0", "label": "extreme", "source": "reviewer"}
                producer.send(topics.labels, json.dumps(unknown).encode())
                producer.flush(timeout=30)
            with TopicReader(kafka_bootstrap, topics.scores) as reader:
                scores = reader.read_json(lambda seen: len(seen) >= EVENTS, timeout=60)
            requested = sum(s["label_requested"] for s in scores)
            wait_until(
                lambda: (
                    metric_sum(registry, "streamal_labels_total", outcome="learned") >= requested
                ),
                timeout=30,
                what="every requested label learned",
            )
        finally:
            reviewer.close()
        with TopicReader(kafka_bootstrap, topics.reviews) as reader:
            reviews = reader.read_json(lambda seen: len(seen) >= requested, timeout=20)
        with TopicReader(kafka_bootstrap, topics.dead_letter) as reader:
            (letter,) = reader.read_json(lambda seen: len(seen) >= 1, timeout=20)

    # Every event scored over the three classes, by name.
    by_id = {s["event_id"]: s for s in scores}
    assert set(by_id) == set(truth)
    for s in scores:
        assert set(s["probabilities"]) == set(CLASSES)
        assert sum(s["probabilities"].values()) == pytest.approx(1.0)
    assert 0.9 * 0.1 * EVENTS <= requested <= 1.05 * 0.1 * EVENTS + 13  # + the head start
    assert {r["predicted"] for r in reviews} <= set(CLASSES)

    # Learned, and far above chance (1/3) on the last events.
    tail = stream[-TAIL:]
    predicted = [
        max(CLASSES, key=by_id[e["event_id"]]["probabilities"].__getitem__) for e, _ in tail
    ]
    accuracy = sum(p == t for p, (_, t) in zip(predicted, tail, strict=True)) / TAIL
    print(
        f"\nthree classes: {requested} review requests, last {TAIL} events accuracy {accuracy:.3f}"
    )
    assert accuracy > 0.75, accuracy
    learned = metric_sum(registry, "streamal_labels_total", outcome="learned")
    assert learned == len(reviewer.labelled) == requested
    for actual in CLASSES:  # the confusion counts by class name add up to the labels
        assert metric_sum(registry, "streamal_label_outcomes_total", actual=actual) > 0
    assert metric_sum(registry, "streamal_label_outcomes_total") == learned

    # The unknown class: dead-lettered with its reason, counted, never learned.
    assert letter["reason"] == "unknown_class"
    assert metric_sum(registry, "streamal_labels_total", outcome="invalid") == 1
    assert (
        metric_sum(registry, "streamal_dead_letters_total", input="labels", reason="unknown_class")
        == 1
    )
