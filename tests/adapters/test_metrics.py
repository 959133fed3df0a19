"""Metrics names and labels that dashboards depend on; the dead-letter record's raw payload."""

from __future__ import annotations

import json
import math

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamal.adapters.kafka import dead_letter_record
from streamal.adapters.metrics import Metrics
from streamal.core.fraud_tracker import FraudFigures, FraudTracker
from streamal.core.learner import LabelResult
from streamal.core.messages import ClassSet, Label
from streamal.core.pending import PendingItem

#: The table in DESIGN.md / the README: exposition name, type, label names.
CONTRACT = [
    ("streamal_events_total", "counter", {"outcome"}),
    ("streamal_label_requests_total", "counter", {"reason"}),
    ("streamal_reviews_unreadable_total", "counter", {"reason"}),
    ("streamal_labels_total", "counter", {"source", "outcome"}),
    ("streamal_label_budget_ratio", "gauge", set()),
    ("streamal_label_spend_ratio", "gauge", set()),
    ("streamal_gate_threshold", "gauge", set()),
    ("streamal_gate_rare_class_share", "gauge", set()),
    ("streamal_gate_rare_mode", "gauge", set()),
    ("streamal_review_backlog", "gauge", set()),
    ("streamal_event_processing_seconds", "histogram", set()),
    ("streamal_label_delay_seconds", "histogram", set()),
    ("streamal_label_apply_seconds", "histogram", set()),
    ("streamal_label_outcomes_total", "counter", {"lane", "predicted", "actual"}),
    ("streamal_model_accuracy", "gauge", {"estimator"}),
    ("streamal_model_updates_total", "counter", set()),
    ("streamal_consumer_lag", "gauge", {"topic", "partition"}),
    ("streamal_checkpoint_last_success_timestamp_seconds", "gauge", set()),
    ("streamal_label_source_outcomes_total", "counter", {"source", "predicted", "actual"}),
    ("streamal_model_accuracy_by_source", "gauge", {"source"}),
    ("streamal_fraud_amount_caught_total", "counter", set()),
    ("streamal_fraud_amount_missed_total", "counter", set()),
    ("streamal_fraud_card_precision_at_k", "gauge", {"day"}),
    ("streamal_fraud_reviewed_cards", "gauge", {"day"}),
    ("streamal_fraud_alert_precision", "gauge", set()),
    ("streamal_fraud_card_recall", "gauge", set()),
    ("streamal_fraud_score_auc", "gauge", {"estimator"}),
    ("streamal_fraud_score_average_precision", "gauge", {"estimator"}),
    ("streamal_fraud_window_labels", "gauge", {"estimator"}),
]


def _families(metrics: Metrics) -> dict[str, object]:
    text = generate_latest(metrics.registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name
    }


@pytest.fixture
def metrics() -> Metrics:
    m = Metrics(ClassSet(), ["reviewer", "chargeback"])
    m.set_lag([("transactions", 0, 12)])  # the lag gauge has children only once set
    return m


@pytest.mark.parametrize(("name", "kind", "labels"), CONTRACT, ids=[c[0] for c in CONTRACT])
def test_every_contract_metric_is_exposed(
    metrics: Metrics, name: str, kind: str, labels: set[str]
) -> None:
    families = _families(metrics)
    family_name = name.removesuffix("_total") if kind == "counter" else name
    assert family_name in families, f"{name} missing from /metrics"
    family = families[family_name]
    assert family.type == kind  # type: ignore[attr-defined]
    samples = family.samples  # type: ignore[attr-defined]
    assert samples, f"{name} has no series"
    sample_names = {s.name for s in samples}
    if kind == "counter":
        assert name in sample_names
    elif kind == "histogram":
        assert {f"{name}_bucket", f"{name}_count", f"{name}_sum"} <= sample_names
    else:
        assert sample_names == {name}
    for s in samples:
        assert set(s.labels) - {"le"} == labels, (name, s.labels)


def test_bounded_label_values_are_bound_up_front(metrics: Metrics) -> None:
    events = _samples(metrics, "streamal_events_total")
    assert {dict(k)["outcome"] for k in events} == {"scored", "invalid"}
    requests = _samples(metrics, "streamal_label_requests_total")
    assert {dict(k)["reason"] for k in requests} == {"uncertainty", "random", "exploit"}
    labels = _samples(metrics, "streamal_labels_total")
    assert {dict(k)["source"] for k in labels} == {"reviewer", "chargeback", "other"}
    assert {dict(k)["outcome"] for k in labels} == {"learned", "duplicate", "orphan", "invalid"}
    accuracy = _samples(metrics, "streamal_model_accuracy")
    assert {dict(k)["estimator"] for k in accuracy} == {"labeled", "random_lane"}
    outcomes = _samples(metrics, "streamal_label_outcomes_total")
    assert {dict(k)["predicted"] for k in outcomes} == {"false", "true"}
    assert {"uncertainty", "random", "exploit"} <= {dict(k)["lane"] for k in outcomes}


def test_unknown_label_sources_are_counted_as_other(metrics: Metrics) -> None:
    assert metrics.source("reviewer") == "reviewer"
    assert metrics.source("chargeback") == "chargeback"
    assert metrics.source("mallory-123") == "other"
    metrics.count_label("mallory-123", "learned")
    metrics.count_label("eve", "learned")
    metrics.count_label("reviewer", "duplicate")
    labels = _samples(metrics, "streamal_labels_total")
    assert labels[(("outcome", "learned"), ("source", "other"))] == 2.0
    assert labels[(("outcome", "duplicate"), ("source", "reviewer"))] == 1.0
    assert labels[(("outcome", "learned"), ("source", "reviewer"))] == 0.0
    sources = {dict(k)["source"] for k in labels}
    assert "mallory-123" not in sources and "eve" not in sources


def test_outcome_counts_use_class_names(metrics: Metrics) -> None:
    metrics.count_outcome("random", True, False)
    metrics.count_outcome("random", True, False)
    metrics.count_outcome("nonsense-lane", True, True)  # ignored, never a new series
    outcomes = _samples(metrics, "streamal_label_outcomes_total")
    key = (("actual", "false"), ("lane", "random"), ("predicted", "true"))
    assert outcomes[key] == 2.0
    assert sum(outcomes.values()) == 2.0
    assert "nonsense-lane" not in {dict(k)["lane"] for k in outcomes}


def test_multiclass_outcomes() -> None:
    m = Metrics(ClassSet(["a", "b", "c"]), [])
    m.count_outcome("uncertainty", "a", "c")
    outcomes = _samples(m, "streamal_label_outcomes_total")
    assert {dict(k)["actual"] for k in outcomes} == {"a", "b", "c"}
    assert outcomes[(("actual", "c"), ("lane", "uncertainty"), ("predicted", "a"))] == 1.0
    assert {dict(k)["source"] for k in _samples(m, "streamal_labels_total")} == {"other"}


DAY = 1_522_540_800.0  # 2018-04-01 00:00 UTC


def _learn(
    m: Metrics,
    card: str,
    fraud: bool,
    lane: str,
    score: float | None,
    source: str = "reviewer",
    predicted: bool | None = None,
    amount: float = 10.0,
) -> None:
    """A learned label as the service reports it: with its open request unless unrequested."""
    event = {"card": card, "t": DAY, "amt": amount}
    eid = f"{card}-{lane}-{score}-{fraud}"
    predicted = (score or 0.0) >= 0.5 if predicted is None else predicted
    item = None
    if score is not None:
        proba = {True: score, False: 1 - score}
        item = PendingItem(eid, {}, proba, predicted, lane, 1.0, 0, DAY + 60, event)
    label = Label(eid, fraud, source, event=None if item else event)
    m.count_learned(label, LabelResult("learned", lane, predicted, fraud, 1.0), item)


def test_learned_labels_feed_source_accuracy_and_fraud_figures() -> None:
    m = Metrics(
        ClassSet(),
        ["reviewer", "chargeback"],
        fraud=FraudTracker(k=2, card_field="card", amount_field="amt", time_field="t"),
    )
    _learn(m, "a", True, "exploit", 0.9, amount=100.0)
    _learn(m, "b", False, "exploit", 0.8)
    _learn(m, "c", True, "random", 0.3, amount=5.0)
    _learn(m, "d", False, "random", 0.1)
    _learn(m, "e", True, "unrequested", None, "chargeback", predicted=False, amount=40.0)
    _learn(m, "f", True, "uncertainty", 0.6, "mallory", predicted=True)
    outcomes = _samples(m, "streamal_label_source_outcomes_total")
    reviewer_hits = outcomes[(("actual", "true"), ("predicted", "true"), ("source", "reviewer"))]
    assert reviewer_hits == 1.0
    assert outcomes[(("actual", "true"), ("predicted", "false"), ("source", "chargeback"))] == 1.0
    assert outcomes[(("actual", "true"), ("predicted", "true"), ("source", "other"))] == 1.0
    assert sum(outcomes.values()) == 6.0
    accuracy = _samples(m, "streamal_model_accuracy_by_source")
    assert accuracy[(("source", "reviewer"),)] == 0.5  # a, d right; b, c wrong
    assert accuracy[(("source", "chargeback"),)] == 0.0
    assert accuracy[(("source", "other"),)] == 1.0
    assert _samples(m, "streamal_fraud_amount_caught_total") == {(): 115.0}
    assert _samples(m, "streamal_fraud_amount_missed_total") == {(): 40.0}
    assert _samples(m, "streamal_fraud_alert_precision") == {(): 0.5}
    assert _samples(m, "streamal_fraud_card_recall") == {(): 0.75}  # e was missed
    # The day's 2 riskiest labelled cards: a (fraud) and b.
    precision = _samples(m, "streamal_fraud_card_precision_at_k")
    assert precision[(("day", "current"),)] == 0.5
    assert math.isnan(precision[(("day", "previous"),)])
    assert _samples(m, "streamal_fraud_reviewed_cards")[(("day", "current"),)] == 5.0
    auc = _samples(m, "streamal_fraud_score_auc")
    assert auc[(("estimator", "labeled"),)] == pytest.approx(4 / 6)  # c and f rank below b
    assert auc[(("estimator", "random_lane"),)] == 1.0
    assert _samples(m, "streamal_fraud_window_labels") == {
        (("estimator", "labeled"),): 5.0,
        (("estimator", "random_lane"),): 2.0,
    }
    assert "k=2" in generate_latest(m.registry).decode()


class _CountingTracker(FraudTracker):
    computed = 0

    def figures(self) -> FraudFigures:
        figures = super().figures()
        if figures is not self._last:
            self.computed += 1
        self._last = figures
        return figures

    _last: FraudFigures | None = None


def test_fraud_gauges_are_computed_at_scrape_time_and_only_after_new_labels() -> None:
    tracker = _CountingTracker()
    m = Metrics(ClassSet(), ["reviewer"], fraud=tracker)
    assert tracker.computed == 0, "registering the collector must not compute"
    generate_latest(m.registry)
    generate_latest(m.registry)
    assert tracker.computed == 1
    _learn(m, "a", True, "random", 0.9)
    _learn(m, "b", True, "random", 0.8)
    assert tracker.computed == 1, "labels alone do not rank the window"
    generate_latest(m.registry)
    assert tracker.computed == 2


def test_lag_and_gauges(metrics: Metrics) -> None:
    metrics.set_lag([("transactions", 0, 5), ("transactions", 1, 7)])
    metrics.threshold.set(0.25)
    lag = _samples(metrics, "streamal_consumer_lag")
    assert lag == {
        (("partition", "0"), ("topic", "transactions")): 5.0,
        (("partition", "1"), ("topic", "transactions")): 7.0,
    }
    assert _samples(metrics, "streamal_gate_threshold") == {(): 0.25}


def test_registries_are_separate() -> None:
    first, second = Metrics(ClassSet(), []), Metrics(ClassSet(), [])
    first.events_scored.inc()
    assert _samples(second, "streamal_events_total")[(("outcome", "scored"),)] == 0.0
    assert _samples(first, "streamal_events_total")[(("outcome", "scored"),)] == 1.0


# --- dead-letter records -----------------------------------------------------------------------


def _record(raw: bytes | None, max_raw_bytes: int = 4096) -> dict[str, object]:
    body = dead_letter_record(
        raw, "not_json", "bad", "transactions", 2, 41, 1522540831.5, max_raw_bytes
    )
    parsed = json.loads(body)
    assert isinstance(parsed, dict)
    return parsed


def test_dead_letter_record_fields() -> None:
    rec = _record(b'{"event_id": ')
    assert rec == {
        "schema_version": 1,
        "reason": "not_json",
        "error": "bad",
        "source_topic": "transactions",
        "source_partition": 2,
        "source_offset": 41,
        "size_bytes": 13,
        "truncated": False,
        "at": "2018-04-01T00:00:31.500Z",
        "raw_text": '{"event_id": ',
    }


def test_dead_letter_truncates_oversize_input() -> None:
    raw = b"x" * 1_000_000
    body = dead_letter_record(raw, "oversize", "too big", "t", 0, 0, 0.0, max_raw_bytes=4096)
    assert len(body) < 5000
    rec = json.loads(body)
    assert rec["truncated"] is True and rec["size_bytes"] == 1_000_000
    assert rec["raw_text"] == "x" * 4096


def test_dead_letter_encodes_non_utf8_as_hex() -> None:
    raw = b"\xff\xfe\x00garbage\x80"
    rec = _record(raw)
    assert "raw_text" not in rec
    assert rec["raw_hex"] == raw.hex()
    assert bytes.fromhex(str(rec["raw_hex"])) == raw
    clipped = _record(b"\xff" * 100, max_raw_bytes=10)
    assert clipped["raw_hex"] == "ff" * 10 and clipped["truncated"] is True


def test_dead_letter_keeps_text_when_the_clip_splits_a_character() -> None:
    raw = "€".encode() * 100  # three bytes each: a 10-byte clip ends inside the fourth
    rec = _record(raw, max_raw_bytes=10)
    assert rec["truncated"] is True
    assert rec["raw_text"] == "€€€"
    # A message that really ends with half a character is invalid, and shown as such.
    assert "raw_hex" in _record("€".encode()[:2])


def test_dead_letter_without_a_value() -> None:
    rec = _record(None)
    assert (rec["raw_text"], rec["size_bytes"], rec["truncated"]) == ("", 0, False)


def test_lag_of_partitions_that_moved_away_is_removed() -> None:
    from prometheus_client import generate_latest

    metrics = Metrics(ClassSet(), ["reviewer"])
    metrics.set_lag([("tx", 0, 5), ("tx", 1, 7)])
    metrics.set_lag([("tx", 1, 2)])  # partition 0 went to another replica
    text = generate_latest(metrics.registry).decode()
    assert 'streamal_consumer_lag{partition="1",topic="tx"} 2.0' in text
    assert 'partition="0"' not in text
