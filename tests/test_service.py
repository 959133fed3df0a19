"""The service without a broker: what it tells the operator about its settings, and what its
housekeeping counts."""

from __future__ import annotations

import json
import threading
import time
from collections import deque

import pytest
from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)
from kafka.future import Future
from prometheus_client import generate_latest

import streamal.service as service_module
from streamal.config import Settings
from streamal.core.messages import InvalidMessage
from streamal.core.pending import PendingItem
from streamal.service import Service


def test_a_budget_window_too_short_for_the_budget_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="streamal"):
        Service(Settings(budget=0.002, budget_window=1000))
    assert "2 labels per window" in caplog.text
    assert "a budget_window of at least 5000 keeps it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="streamal"):
        Service(Settings(budget=0.002, budget_window=5000))
    assert "labels per window" not in caplog.text


@pytest.mark.parametrize("measure", ["vote_entropy", "kl_divergence", "gradient"])
def test_a_measure_that_reads_one_model_is_refused_with_one_model_per_source(
    measure: str,
) -> None:
    model = "arf" if measure != "gradient" else "logreg"
    Service(Settings(model=model, measure=measure))  # one model: fine
    with pytest.raises(ValueError, match="label policy split keeps one model per label source"):
        Service(Settings(model=model, measure=measure, label_policy="split"))


def test_requests_dropped_by_size_or_age_are_counted() -> None:
    """The pending store expires requests older than pending_ttl_seconds and evicts the oldest
    beyond pending_max_items: either way their labels will be orphans, so both count."""
    service = Service(Settings(pending_max_items=3, pending_ttl_seconds=60))
    pending = service.learner.pending
    now = time.time()

    def request(event_id: str, age: float) -> None:
        pending.add(PendingItem(event_id, {}, {}, False, "uncertainty", 1.0, 0, now - age))

    def dropped() -> float:
        text = generate_latest(service.metrics.registry).decode()
        (line,) = [x for x in text.splitlines() if x.startswith("streamal_pending_expired_total")]
        return float(line.split()[-1])

    for event_id, age in (("a0", 3600), ("a1", 3000), ("a2", 0)):
        request(event_id, age)
    service._housekeeping()
    assert dropped() == 2  # a0 and a1, by age
    for i in range(4):
        request(f"b{i}", 0)
    service._housekeeping()
    assert dropped() == 4  # a2 and b0, by size
    assert len(pending) == 3
    service._housekeeping()
    assert dropped() == 4  # each counted once


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"event_id": "x", "amount": [1, 2]}, "bad_type"),
        ({"event_id": "x", "amount": float("inf")}, "bad_value"),
        ({"event_id": "x", "merchant": "m" * 300}, "bad_value"),
    ],
)
def test_an_api_label_whose_event_cannot_be_learned_is_refused_before_it_is_written(
    event: dict[str, object], reason: str
) -> None:
    """The API answers 202 only for a label every replica will learn; one carrying an event
    whose features do not decode would be dead-lettered by each replica instead, so it is
    refused (400) before anything is written. No broker here: nothing may be produced."""
    service = Service(Settings(bootstrap_servers="127.0.0.1:1"))
    with pytest.raises(InvalidMessage) as refused:
        service.submit_label({"event_id": "x", "label": True, "event": event}, timeout=0.1)
    assert refused.value.reason == reason
    assert service._producer is None


@pytest.mark.parametrize(
    "event",
    [
        {"event_id": "x", "card": "c1", "terminal_id": "t1", "amount": "12 EUR"},
        {"event_id": "x", "card": ["c1"], "terminal_id": "t1", "amount": 1.0},
    ],
)
def test_an_api_label_whose_event_fails_the_card_features_is_refused(
    event: dict[str, object],
) -> None:
    """With card features on, learning a carried event also computes its card and terminal
    features, which refuse an amount that is not a number or a card that is a list: such a
    label is refused (400, bad_value) before it is written, not accepted and then dead-lettered
    as processing_error by every replica."""
    service = Service(Settings(bootstrap_servers="127.0.0.1:1", card_field="card"))
    with pytest.raises(InvalidMessage) as refused:
        service.submit_label({"event_id": "x", "label": True, "event": event}, timeout=0.1)
    assert refused.value.reason == "bad_value"
    assert service._producer is None


def test_an_api_label_while_the_broker_does_not_answer_is_refused_at_once() -> None:
    """While the loops know the broker does not answer (``/readyz`` says so), a label post
    gets its 503 at once. Before, it built a producer and waited for the labels topic's
    metadata, holding an HTTP worker thread for up to a minute per post."""
    service = Service(Settings(bootstrap_servers="127.0.0.1:1"))
    assert not service.ready()["broker_reachable"]
    started = time.monotonic()
    with pytest.raises(KafkaError):
        service.submit_label({"event_id": "x", "label": True}, timeout=10)
    assert time.monotonic() - started < 1.0
    assert service._producer is None


class _Producer:
    """A producer without a broker. Records sent to a refused topic (any, when ``topics`` is
    None) fail until ``accept`` is set: by default as when the dead-letter topic refuses writes
    (an ACL missing, say); with ``error``, raised by send() when ``at_send`` (the producer's own
    size check), else as the failed future of the broker's answer. ``sent`` has the topic of
    every record sent, ``written`` the accepted records."""

    def __init__(
        self,
        error: Exception | None = None,
        topics: tuple[str, ...] | None = None,
        at_send: bool = False,
    ) -> None:
        self.error, self.topics, self.at_send = error, topics, at_send
        self.accept = False
        self.sent: list[str] = []
        self.written: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        self.sent.append(topic)
        if self.accept or (self.topics is not None and topic not in self.topics):
            self.written.append((topic, value))
            return Future().success(None)
        error = self.error or TopicAuthorizationFailedError(topic)
        if self.at_send:
            raise error
        return Future().failure(error)

    def flush(self, timeout: float) -> None:
        pass


def _label_record(offset: int, value: bytes) -> ConsumerRecord:
    return ConsumerRecord("labels", 0, -1, offset, 0, 0, None, value, [], None, -1, len(value), -1)


@pytest.mark.parametrize(
    ("value", "source"),
    [
        (b"label: yes", "other"),  # does not decode
        (b'{"event_id": "c1", "label": true, "event": {"amount": [1, 2]}}', "reviewer"),
    ],
)
def test_a_label_is_passed_only_once_its_dead_letter_is_written(value: bytes, source: str) -> None:
    """A bad label is dead-lettered, never silently dropped: while its dead letter is not
    acknowledged, the labels loop must not move past the label (nor checkpoint past it); it
    tries again. Before, the failed future was ignored and the position advanced, so the bad
    label was lost while counted as dead-lettered."""
    service = Service(Settings())
    producer = _Producer()
    service._producer = producer
    waiting = deque([_label_record(7, value)])
    service._learn_waiting(None, waiting, [])
    assert producer.sent == ["dead-letter"]
    assert len(waiting) == 1
    assert service._positions.get("labels", {}).get(0) is None
    producer.accept = True
    service._learn_waiting(None, waiting, [])
    assert producer.sent == ["dead-letter", "dead-letter"]
    assert not waiting
    assert service._positions["labels"][0] == 8
    counted = service.metrics.registry.get_sample_value(
        "streamal_labels_total", {"source": source, "outcome": "invalid"}
    )
    assert counted == 1  # once, not once per attempt


class _Consumer:
    """The events loop's consumer calls after a batch: commit it, or seek back to replay it."""

    def __init__(self) -> None:
        self.committed = 0
        self.seeks: list[tuple[TopicPartition, int]] = []

    def commit(self, timeout_ms: float) -> None:
        self.committed += 1

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def _batch(n: int) -> dict[TopicPartition, list[ConsumerRecord]]:
    records = []
    for i in range(n):
        value = json.dumps({"event_id": f"e{i}", "amount": float(i)}).encode()
        records.append(
            ConsumerRecord(
                "transactions", 0, -1, 100 + i, 0, 0, None, value, [], None, -1, len(value), -1
            )
        )
    return {TopicPartition("transactions", 0): records}


@pytest.mark.parametrize("at_send", [False, True], ids=["by the broker", "by the producer"])
def test_an_output_refused_for_good_dead_letters_its_transaction_and_the_batch_goes_on(
    at_send: bool,
) -> None:
    """A review request larger than the broker accepts is refused at every attempt: replaying
    the batch (right for an outage) would stall the stream for ever. Its transaction is
    dead-lettered (oversize) and the rest of the batch is scored and committed."""
    service = Service(Settings(budget=1.0, strategy="random"))  # every event asks for a review
    producer = _Producer(MessageSizeTooLargeError("too large"), ("reviews",), at_send)
    service._producer = producer
    consumer = _Consumer()
    service._process_batch(consumer, _batch(3))
    assert consumer.committed == 1 and not consumer.seeks
    letters = [json.loads(v) for t, v in producer.written if t == "dead-letter"]
    assert [(d["reason"], d["source_offset"]) for d in letters] == [
        ("oversize", 100),
        ("oversize", 101),
        ("oversize", 102),
    ]
    assert "MessageSizeTooLargeError" in letters[0]["error"]
    sample = service.metrics.registry.get_sample_value
    assert (
        sample("streamal_dead_letters_total", {"input": "transactions", "reason": "oversize"}) == 3
    )
    assert sample("streamal_events_total", {"outcome": "invalid"}) == 3
    assert sample("streamal_events_total", {"outcome": "scored"}) == 0


def test_an_output_refused_for_a_while_replays_the_batch() -> None:
    """An error a retry may cure (a leader moving, an outage) replays the batch, dead-letters
    nothing and commits nothing: no transaction is lost."""
    service = Service(Settings(budget=1.0, strategy="random"))
    producer = _Producer(NotLeaderForPartitionError(), ("reviews",))
    service._producer = producer
    consumer = _Consumer()
    service._process_batch(consumer, _batch(2))
    assert consumer.committed == 0
    assert consumer.seeks == [(TopicPartition("transactions", 0), 100)]
    assert not [t for t, _ in producer.written if t == "dead-letter"]


def test_a_broker_down_at_start_does_not_fail_the_liveness_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the broker down when the pod starts, both loops wait in their clients' bootstrap
    (the events loop behind the labels loop). They are connecting, not stuck: /livez must stay
    200 (a restart would not bring the broker back) while /readyz says not ready. Before, both
    heartbeats went stale after STALL_SECONDS and liveness killed the pod through the outage.

    The client here blocks as kafka-python's does against a broker that does not answer (about
    30 s, then KafkaTimeoutError) but lets go when the test ends, so no thread outlives it."""
    released = threading.Event()

    def bootstrapping(*_: object, **__: object) -> None:
        released.wait(30)
        raise KafkaTimeoutError("Unable to bootstrap")

    monkeypatch.setattr(service_module, "STALL_SECONDS", 1.0)
    monkeypatch.setattr(service_module, "make_consumer", bootstrapping)
    service = Service(Settings(bootstrap_servers="127.0.0.1:1", create_topics=False))
    service.start()
    try:
        time.sleep(2.5)
        assert service.alive()
        assert not service.ready()["ready"]
    finally:
        released.set()
        service.stop(timeout=5.0)
    assert not any(t.is_alive() for t in service._threads)
