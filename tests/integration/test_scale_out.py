"""Acceptance: replicas in one consumer group share the transactions and all learn every label.

Three ``streamal serve`` processes join one consumer group on a 4-partition transactions topic
(reviews and labels keep one partition each: one order of labels for everyone). A producer
streams transactions and a reviewer answers every review request, whichever replica made it.
Then one replica is killed (SIGKILL): its partitions go to the others and nothing is lost. After
the stream, a fourth replica starts with an empty checkpoint directory and catches up by replay.

Checked: every replica scored a share of the transactions; every transaction has a score; every
surviving replica, and the late one, learned every label (including the many requested by other
replicas); they report the same label count and model version; and their models, read back from
the checkpoints they write on SIGTERM, give *identical* probabilities on a probe set, equal to a
fresh model taught each label once in labels-topic order.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from helpers import metric_sum, running_service, service_settings, wait_until
from kafka import KafkaConsumer
from recovery_helpers import (
    Reviewer,
    ServeProcess,
    SteadyProducer,
    load_checkpoint,
    predictions,
    probe_features,
    read_topic,
    replay_reference,
    serve_env,
    terminate,
)

from streamal.adapters.kafka import ensure_topics
from streamal.config import Settings
from streamal.core.synthetic import drifting_transactions

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PARTITIONS = 4
RATE = 300
BUDGET = 0.05
EVENTS = 20_000  # more than the run needs; the producer is stopped


def _metric(replica: ServeProcess, sample: str, **labels: str) -> float:
    return metric_sum(replica.client.get("/metrics").text, sample, **labels)


def _scored(replica: ServeProcess) -> float:
    return _metric(replica, "streamal_events_total", outcome="scored")


def test_replicas_share_transactions_and_all_learn_every_label(
    kafka_bootstrap: str, topics: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    ensure_topics(
        Settings(bootstrap_servers=kafka_bootstrap), [topics.transactions], partitions=PARTITIONS
    )
    stream = list(drifting_transactions(EVENTS, seed=40))
    truth = {event["event_id"]: fraud for event, fraud in stream}
    group = f"g-{uuid.uuid4().hex[:8]}"

    def replica(name: str) -> ServeProcess:
        env = serve_env(kafka_bootstrap, topics, tmp_path / name, group=group, budget=BUDGET)
        return ServeProcess(env, tmp_path / f"{name}.log")

    a, b, c = replica("a"), replica("b"), replica("c")
    late = replica("late")
    replicas = [a, b, c, late]
    producer: SteadyProducer | None = None
    reviewer: Reviewer | None = None
    try:
        for r in (a, b, c):
            r.start()
        for r in (a, b, c):
            r.wait_ready()
        producer = SteadyProducer(
            kafka_bootstrap, topics.transactions, (e for e, _ in stream), RATE
        )
        reviewer = Reviewer(kafka_bootstrap, topics.reviews, topics.labels, truth)
        producer.start()
        reviewer.start()

        # All three share the partitions: each has scored some of the stream.
        wait_until(
            lambda: all(_scored(r) > 0 for r in (a, b, c)),
            timeout=30,
            interval=0.5,
            what="every replica to score a share",
        )
        time.sleep(3.0)
        shares = {name: _scored(r) for name, r in (("a", a), ("b", b), ("c", c))}
        c.kill()  # its partitions go to a and b after the session timeout
        time.sleep(6.0)
        producer.close()
        produced = set(producer.produced)

        def scored_all() -> bool:
            scored = {s.get("event_id") for s in read_topic(kafka_bootstrap, topics.scores)}
            return produced <= scored

        wait_until(scored_all, timeout=60, interval=1.0, what="every transaction scored")

        def learned_all(group: list[ServeProcess]) -> bool:
            assert reviewer is not None
            requested = {r["event_id"] for r in read_topic(kafka_bootstrap, topics.reviews)}
            n = len(reviewer.labelled)
            return requested == set(reviewer.labelled) and all(
                r.get_json("/v1/model")["labels_learned"] >= n for r in group
            )

        wait_until(lambda: learned_all([a, b]), 60, interval=0.5, what="a and b learn every label")

        # A replica started later, with no checkpoint, catches up by replay.
        late.start()
        late_ready = late.wait_ready()
        wait_until(lambda: learned_all([late]), 60, interval=0.5, what="the late one catches up")
        time.sleep(1.0)
        survivors = (("a", a), ("b", b), ("late", late))
        orphans = {n: _metric(r, "streamal_labels_total", outcome="orphan") for n, r in survivors}
        own = {n: _metric(r, "streamal_label_requests_total") for n, r in survivors}
        models = {n: r.get_json("/v1/model") for n, r in survivors}
        codes = [terminate(r, timeout=30)[0] for r in (a, b, late)]
    finally:
        if producer is not None:
            producer.close()
        if reviewer is not None:
            reviewer.close()
        for r in replicas:
            r.close()

    assert reviewer is not None
    labelled = reviewer.labelled
    reviews = read_topic(kafka_bootstrap, topics.reviews)
    labels = read_topic(kafka_bootstrap, topics.labels)
    scores = read_topic(kafka_bootstrap, topics.scores)
    probes = probe_features()
    reference = predictions(replay_reference(labels, reviews), probes)
    learners = {name: load_checkpoint(tmp_path / name)["learner"] for name in ("a", "b", "late")}
    print(
        f"\nscale-out: scored before the kill {shares}; {len(produced)} transactions, "
        f"{len(scores)} score messages, {len(labelled)} labels; learned "
        f"{ {n: m['labels_learned'] for n, m in models.items()} }, requested by each {own}, "
        f"orphans {orphans}; "
        f"late replica ready in {late_ready:.1f} s; total {time.monotonic() - started:.0f} s"
    )
    assert all(share > 0 for share in shares.values())
    assert produced <= {s["event_id"] for s in scores}
    assert len(labelled) == len(set(labelled)) == len(labels) > 50
    for name, model in models.items():
        assert model["labels_learned"] == len(labelled), name
        assert model["version"] == models["a"]["version"], name
        assert orphans[name] == 0, name
        assert own[name] < len(labelled), name  # most labels were for others' requests
    assert codes == [0, 0, 0]
    for name, learner in learners.items():
        assert learner.model.n_learned == len(labelled), name
        assert predictions(learner.model, probes) == reference, name


def test_topics_created_for_replicas_keep_one_partition_of_labels(
    kafka_bootstrap: str, topics: Any
) -> None:
    """topic_partitions is how an operator gets a transactions topic that N replicas can share;
    the labels topic the service creates beside it must still have one partition, or the
    replicas would learn the labels in different orders and their models would drift apart.
    Before, every topic got topic_partitions partitions, labels included."""
    settings = service_settings(kafka_bootstrap, topics, topic_partitions=3)
    with running_service(settings):
        consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
        try:
            assert consumer.partitions_for_topic(topics.transactions) == {0, 1, 2}
            assert consumer.partitions_for_topic(topics.labels) == {0}
        finally:
            consumer.close()
