"""Bad input on the real broker: dead-lettered with its reason, counted, and the service goes on.

Bad transactions and bad labels are interleaved with good ones. Each bad one must appear on the
dead-letter topic with the expected reason and its source offset, be counted in
``streamal_dead_letters_total`` and the events/labels counters, and good messages around it must
still be scored or learned. Duplicate labels and labels for unknown ids are counted under their
own outcome and never learned (twice).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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
from kafka import KafkaProducer

from streamal.service import Service

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ONE_MB = 1_000_000
#: (raw bytes, expected reason) for the transactions topic.
BAD_TRANSACTIONS: list[tuple[bytes, str]] = [
    (b"{not json", "not_json"),
    (b"\xff\xfe\x00binary", "not_json"),
    (b"[1, 2, 3]", "not_object"),
    (b'"just a string"', "not_object"),
    (b'{"amount": 12.5}', "missing_id"),
    (b'{"event_id": 1.5, "amount": 12.5}', "bad_type"),
    (b'{"event_id": "nested", "amount": {"value": 12.5}}', "bad_type"),
    (b'{"event_id": "nan", "amount": NaN}', "bad_value"),
    (json.dumps({"event_id": "huge", "pad": "x" * ONE_MB}).encode(), "oversize"),
]


def _label(event_id: str, label: Any = True, **extra: Any) -> bytes:
    return json.dumps(
        {"event_id": event_id, "label": label, "source": "reviewer", **extra}
    ).encode()


#: (raw bytes, expected reason) for the labels topic.
BAD_LABELS: list[tuple[bytes, str]] = [
    (b"label: yes", "not_json"),
    (b"[true]", "not_object"),
    (b'{"label": true, "source": "reviewer"}', "missing_id"),
    (b'{"event_id": ["a"], "label": true}', "bad_type"),
    (b'{"event_id": "x", "label": true, "source": 5}', "bad_type"),
    (_label("x", "maybe"), "unknown_class"),
    (_label("carried", True, event={"event_id": "carried", "amount": [1, 2]}), "bad_type"),
    (_label("x", True, pad="y" * ONE_MB), "oversize"),
]


#: (raw bytes, expected reason) for the reviews topic, which the service itself writes.
BAD_REVIEWS: list[tuple[bytes, str]] = [
    (b"not a review", "not_json"),
    (b'{"event_id": "r1"}', "bad_type"),  # no features or probabilities
    (
        b'{"event_id": "r2", "features": {"amount": "inf"}, "probabilities": {"true": 1.0}}',
        "bad_value",
    ),
    (b'{"event_id": "r3", "features": {}, "probabilities": {"maybe": 1.0}}', "unknown_class"),
]


def _good(i: int) -> bytes:
    return json.dumps({"event_id": f"good-{i}", "amount": 10.0 + i, "online": i % 2 == 0}).encode()


@pytest.fixture
def service(kafka_bootstrap: str, topics: Any) -> Iterator[Service]:
    # A generous budget, so that some of the few good events are sent to review at once.
    settings = service_settings(kafka_bootstrap, topics, budget=0.5)
    with running_service(settings) as svc:
        yield svc


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaProducer]:
    """Allows the 1 MB messages: the broker takes them, the service must reject them."""
    with kafka_producer(kafka_bootstrap, max_request_size=2 * 1024 * 1024) as p:
        yield p


def _send(producer: KafkaProducer, topic: str, value: bytes) -> int:
    """Produce one record and return its offset (once the broker acknowledged it)."""
    return int(producer.send(topic, value=value).get(timeout=20).offset)


def test_bad_transactions_and_labels(
    service: Service, producer: KafkaProducer, kafka_bootstrap: str, topics: Any
) -> None:
    registry = service.metrics.registry
    model = service.learner.model

    # ---- transactions: bad ones between good ones
    expected: dict[tuple[str, int], str] = {}  # (source topic, offset) -> reason
    good_ids = []
    for i, (raw, reason) in enumerate(BAD_TRANSACTIONS):
        _send(producer, topics.transactions, _good(i))
        good_ids.append(f"good-{i}")
        expected[(topics.transactions, _send(producer, topics.transactions, raw))] = reason
    _send(producer, topics.transactions, _good(len(BAD_TRANSACTIONS)))
    good_ids.append(f"good-{len(BAD_TRANSACTIONS)}")

    with TopicReader(kafka_bootstrap, topics.scores) as reader:
        scores = reader.read_json(lambda seen: len(seen) >= len(good_ids), timeout=30)
    assert sorted(s["event_id"] for s in scores) == sorted(good_ids)
    wait_until(
        lambda: (
            metric_sum(registry, "streamal_events_total", outcome="invalid")
            == len(BAD_TRANSACTIONS)
        ),
        timeout=10,
        what="invalid transactions counted",
    )
    assert metric_sum(registry, "streamal_events_total", outcome="scored") == len(good_ids)
    for reason in {r for _, r in BAD_TRANSACTIONS}:
        count = sum(r == reason for _, r in BAD_TRANSACTIONS)
        assert (
            metric_sum(registry, "streamal_dead_letters_total", input="transactions", reason=reason)
            == count
        ), reason

    # ---- labels: one good label to learn, then bad ones, duplicates and orphans
    with TopicReader(kafka_bootstrap, topics.reviews) as reader:
        reviews = reader.read_json(lambda seen: len(seen) >= 2, timeout=10)
    first, second = reviews[0]["event_id"], reviews[1]["event_id"]

    def learned() -> float:
        return metric_sum(registry, "streamal_labels_total", outcome="learned")

    _send(producer, topics.labels, _label(first))
    wait_until(lambda: learned() == 1, timeout=10, what="the first label learned")
    version, n_learned = model.version, model.n_learned
    assert n_learned == 1

    for raw, reason in BAD_LABELS:
        expected[(topics.labels, _send(producer, topics.labels, raw))] = reason

    # A duplicate label is counted as such and not learned again.
    _send(producer, topics.labels, _label(first, False))
    wait_until(
        lambda: metric_sum(registry, "streamal_labels_total", outcome="duplicate") == 1,
        timeout=10,
        what="the duplicate counted",
    )
    assert (model.version, model.n_learned) == (version, n_learned)
    assert learned() == 1

    # A label for an id nobody asked about, without its event: an orphan, not learned.
    _send(producer, topics.labels, _label("nobody-asked"))
    wait_until(
        lambda: metric_sum(registry, "streamal_labels_total", outcome="orphan") == 1,
        timeout=10,
        what="the orphan counted",
    )
    assert (model.version, model.n_learned) == (version, n_learned)

    # A label carrying its event, never requested (a chargeback, say): learned once.
    chargeback = {"event_id": "never-requested", "amount": 999.0, "online": True}
    _send(producer, topics.labels, _label("never-requested", True, event=chargeback))
    wait_until(lambda: learned() == 2, timeout=10, what="the unrequested label learned")
    assert metric_sum(registry, "streamal_label_outcomes_total", lane="unrequested") == 1
    _send(producer, topics.labels, _label("never-requested", True, event=chargeback))
    wait_until(
        lambda: metric_sum(registry, "streamal_labels_total", outcome="duplicate") == 2,
        timeout=10,
        what="the second duplicate counted",
    )
    assert model.n_learned == n_learned + 1

    # Both loops keep going: another requested label is learned, another event scored.
    _send(producer, topics.labels, _label(second, False))
    _send(producer, topics.transactions, _good(99))
    wait_until(lambda: learned() == 3, timeout=10, what="a label after the bad ones")
    wait_until(
        lambda: (
            metric_sum(registry, "streamal_events_total", outcome="scored") == len(good_ids) + 1
        ),
        timeout=10,
        what="an event after the bad ones",
    )
    assert model.n_learned == 3
    assert metric_sum(registry, "streamal_model_updates_total") == 3

    # Bad records on the reviews topic (every replica reads it): skipped and counted, not
    # dead-lettered, and the labels loop that reads them goes on.
    for raw, _ in BAD_REVIEWS:
        _send(producer, topics.reviews, raw)
    wait_until(
        lambda: metric_sum(registry, "streamal_reviews_unreadable_total") == len(BAD_REVIEWS),
        timeout=10,
        what="the unreadable review requests counted",
    )
    for reason in {r for _, r in BAD_REVIEWS}:
        count = sum(r == reason for _, r in BAD_REVIEWS)
        assert metric_sum(registry, "streamal_reviews_unreadable_total", reason=reason) == count
    later = {f"good-{i}" for i in range(100, 110)}
    for i in range(100, 110):
        _send(producer, topics.transactions, _good(i))
    with TopicReader(kafka_bootstrap, topics.reviews) as reader:
        reviews = reader.read_json(
            lambda seen: any(r.get("event_id") in later for r in seen),
            timeout=20,
            skip_invalid=True,
        )
    requested = next(r["event_id"] for r in reviews if r.get("event_id") in later)
    _send(producer, topics.labels, _label(requested))
    wait_until(lambda: learned() == 4, timeout=10, what="a label requested after the bad reviews")

    # Every bad message is on the dead-letter topic with its reason and source offset.
    with TopicReader(kafka_bootstrap, topics.dead_letter) as reader:
        letters = reader.read_json(lambda seen: len(seen) >= len(expected), timeout=10)
        assert not reader.poll(timeout_ms=300), "more dead letters than bad messages"
    found = {(d["source_topic"], d["source_offset"]): d for d in letters}
    assert {k: d["reason"] for k, d in found.items()} == expected
    for letter in letters:
        assert letter["source_partition"] == 0
        assert letter["error"] and letter["at"]
        assert ("raw_text" in letter) != ("raw_hex" in letter)
    oversize = [d for d in letters if d["reason"] == "oversize"]
    assert len(oversize) == 2
    assert all(d["truncated"] and d["size_bytes"] > ONE_MB for d in oversize)
    by_offset = {k[1]: d for k, d in found.items() if k[0] == topics.transactions}
    not_utf8 = next(d for d in by_offset.values() if "raw_hex" in d)
    assert bytes.fromhex(not_utf8["raw_hex"]) == b"\xff\xfe\x00binary"

    # Counted: dead letters by input and reason, invalid events and labels.
    for reason in {r for _, r in BAD_LABELS}:
        count = sum(r == reason for _, r in BAD_LABELS)
        assert (
            metric_sum(registry, "streamal_dead_letters_total", input="labels", reason=reason)
            == count
        ), reason
    assert metric_sum(registry, "streamal_labels_total", outcome="invalid") == len(BAD_LABELS)
    assert metric_sum(registry, "streamal_events_total", outcome="invalid") == len(BAD_TRANSACTIONS)
    assert metric_sum(registry, "streamal_dead_letters_total") == len(expected)
    assert service.alive()


class Exploding:
    """The service's River model, failing on a marked event: a fault deep in scoring or
    learning (a model bug, a numeric error) that no validation can catch beforehand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def predict_proba_one(self, x: dict[str, float]) -> Any:
        if x.get("explode") == 1.0:
            raise FloatingPointError("scoring blew up")
        return self.inner.predict_proba_one(x)

    def learn_one(self, x: dict[str, float], y: Any, **kw: Any) -> None:
        if x.get("explode") == 2.0:
            raise FloatingPointError("learning blew up")
        self.inner.learn_one(x, y, **kw)


def test_a_fault_while_scoring_or_learning_is_dead_lettered_and_the_stream_goes_on(
    service: Service, producer: KafkaProducer, kafka_bootstrap: str, topics: Any
) -> None:
    registry = service.metrics.registry
    service.learner.model.model = Exploding(service.learner.model.model)

    # Scoring: the faulty event is dead-lettered as processing_error, its neighbours scored.
    _send(producer, topics.transactions, _good(1))
    boom = json.dumps({"event_id": "boom", "amount": 1.0, "explode": 1}).encode()
    boom_offset = _send(producer, topics.transactions, boom)
    _send(producer, topics.transactions, _good(2))
    with TopicReader(kafka_bootstrap, topics.scores) as reader:
        scores = reader.read_json(lambda seen: len(seen) >= 2, timeout=30)
    assert sorted(s["event_id"] for s in scores) == ["good-1", "good-2"]

    # Learning: a label whose carried event breaks the model is dead-lettered; the next one
    # is learned.
    def learned() -> float:
        return metric_sum(registry, "streamal_labels_total", outcome="learned")

    carried = {"event_id": "bad-learn", "amount": 2.0, "explode": 2}
    bad_offset = _send(producer, topics.labels, _label("bad-learn", True, event=carried))
    fine = {"event_id": "fine", "amount": 3.0}
    _send(producer, topics.labels, _label("fine", True, event=fine))
    wait_until(lambda: learned() == 1, timeout=10, what="the label after the fault learned")

    with TopicReader(kafka_bootstrap, topics.dead_letter) as reader:
        letters = reader.read_json(lambda seen: len(seen) >= 2, timeout=10)
    found = {(d["source_topic"], d["source_offset"]): d for d in letters}
    assert found[(topics.transactions, boom_offset)]["reason"] == "processing_error"
    assert found[(topics.labels, bad_offset)]["reason"] == "processing_error"
    assert "FloatingPointError" in found[(topics.labels, bad_offset)]["error"]
    assert metric_sum(registry, "streamal_events_total", outcome="invalid") == 1
    assert metric_sum(registry, "streamal_labels_total", outcome="invalid") == 1
    assert metric_sum(registry, "streamal_dead_letters_total", reason="processing_error") == 2
    assert service.alive()


def test_null_records_are_bad_input_not_a_stuck_loop(
    service: Service, producer: KafkaProducer, kafka_bootstrap: str, topics: Any
) -> None:
    """A record with a null value (a tombstone, or an upstream that sent only a key) on any
    input topic is bad input like any other. Before, decoding it raised TypeError: on the
    labels or reviews topic that failed the labels loop, which restarted at the same record
    and failed again, so no label was ever learned after it, on any replica."""
    registry = service.metrics.registry

    def learned() -> float:
        return metric_sum(registry, "streamal_labels_total", outcome="learned")

    tombstone_offsets = {
        topic: int(producer.send(topic, key=b"k", value=None).get(timeout=20).offset)
        for topic in (topics.transactions, topics.labels, topics.reviews)
    }
    _send(producer, topics.transactions, _good(1))
    fine = {"event_id": "fine", "amount": 3.0}
    _send(producer, topics.labels, _label("fine", True, event=fine))
    wait_until(lambda: learned() == 1, timeout=15, what="the label after the null record")
    with TopicReader(kafka_bootstrap, topics.scores) as reader:
        scores = reader.read_json(lambda seen: len(seen) >= 1, timeout=30)
    assert [s["event_id"] for s in scores] == ["good-1"]
    with TopicReader(kafka_bootstrap, topics.dead_letter) as reader:
        letters = reader.read_json(lambda seen: len(seen) >= 2, timeout=10)
    found = {(d["source_topic"], d["source_offset"]): d for d in letters}
    for topic in (topics.transactions, topics.labels):
        letter = found[(topic, tombstone_offsets[topic])]
        assert letter["reason"] == "not_json" and letter["size_bytes"] == 0
    assert metric_sum(registry, "streamal_events_total", outcome="invalid") == 1
    assert metric_sum(registry, "streamal_labels_total", outcome="invalid") == 1
    assert metric_sum(registry, "streamal_reviews_unreadable_total", reason="not_json") == 1
    assert service.alive()


def test_a_review_request_that_fails_to_decode_in_any_way_is_skipped(
    service: Service, producer: KafkaProducer, kafka_bootstrap: str, topics: Any
) -> None:
    """Any record on the reviews topic that does not decode is skipped and counted, whatever
    the error. Before, a model_version of 1e400 (JSON's infinity) raised OverflowError, which
    no one caught: the labels loop failed at that record again and again, and no label was
    learned after it on any replica."""
    registry = service.metrics.registry
    review = {
        "event_id": "r-inf",
        "features": {"amount": 1.0},
        "probabilities": {"false": 0.5, "true": 0.5},
        "predicted": "true",
    }
    _send(producer, topics.reviews, json.dumps(review).encode()[:-1] + b', "model_version": 1e400}')
    fine = {"event_id": "fine", "amount": 3.0}
    _send(producer, topics.labels, _label("fine", True, event=fine))
    wait_until(
        lambda: metric_sum(registry, "streamal_labels_total", outcome="learned") == 1,
        timeout=15,
        what="the label after the review request",
    )
    assert metric_sum(registry, "streamal_reviews_unreadable_total") == 1
    assert metric_sum(registry, "streamal_reviews_unreadable_total", reason="processing_error") == 1
    assert service.alive()
