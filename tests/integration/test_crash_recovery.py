"""Acceptance: ``kill -9`` at 20 random moments of a run with labels flowing loses nothing.

``streamal serve`` runs as a real process with checkpoints on. A producer streams transactions
at a steady rate and a reviewer answers every distinct review request once, while the test kills
the service with SIGKILL at 20 seeded random moments (some during start-up and replay, most while
it scores and learns) and restarts it each time. At the end:

* every label produced is learned exactly once: the model's label count equals the number of
  distinct labels, and the model is *identical* (same probabilities on a probe set) to a fresh
  model taught each label once in labels-topic order: a label lost, learned twice or learned out
  of order would show;
* every transaction has at least one score message;
* no review request is lost: every event whose last score says ``label_requested`` has a review
  message. (Only the last: a transaction replayed after a kill is decided again, and a score
  acknowledged before the kill may say a request was made whose review message was not, when
  the replay does not ask again. The batch that finally commits wrote both its scores and its
  requests, so the last score of every event tells the truth.)

The time from restart to ``/readyz`` 200 is reported (median and max).
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until
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

from streamal.core.synthetic import drifting_transactions

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILLS = 20
SEED = 20
EARLY = 0.25  # share of kills at a random moment after a restart, ready or not
RATE = 400  # transactions per second
BUDGET = 0.05  # ~20 review requests per second, answered at once
EVENTS = 60_000  # more than the run can use: the producer is stopped after the last restart


def test_sigkill_at_random_moments_loses_nothing(
    kafka_bootstrap: str, topics: Any, tmp_path: Path
) -> None:
    started = time.monotonic()
    rng = random.Random(SEED)
    stream = list(drifting_transactions(EVENTS, seed=SEED))
    truth = {event["event_id"]: fraud for event, fraud in stream}
    env = serve_env(kafka_bootstrap, topics, tmp_path / "state", budget=BUDGET)
    ready_times: list[float] = []
    early_kills = 0
    with ServeProcess(env, tmp_path / "serve.log") as service:
        service.start()
        service.wait_ready()
        producer = SteadyProducer(
            kafka_bootstrap, topics.transactions, (e for e, _ in stream), RATE
        )
        reviewer = Reviewer(kafka_bootstrap, topics.reviews, topics.labels, truth)
        producer.start()
        reviewer.start()
        try:
            for kill in range(KILLS):
                if kill and rng.random() < EARLY:
                    # Any moment means start-up too: restore, catching up, group join.
                    time.sleep(rng.uniform(0.3, 3.5))
                    early_kills += service.status("/readyz") != 200
                else:
                    if kill:  # restarted after the previous kill: time it
                        ready_times.append(service.wait_ready())
                    time.sleep(rng.uniform(0.1, 1.5))
                service.kill()
                service.start()
            ready_times.append(service.wait_ready())
            assert producer.is_alive(), "the stream ran out before the last kill"
            producer.close()  # from here on nothing new arrives: wait for the service to finish
            produced = set(producer.produced)

            def scored_all() -> bool:
                scored = {s.get("event_id") for s in read_topic(kafka_bootstrap, topics.scores)}
                return produced <= scored

            wait_until(scored_all, timeout=60, interval=1.0, what="every transaction scored")

            def learned_all() -> bool:
                requested = {r["event_id"] for r in read_topic(kafka_bootstrap, topics.reviews)}
                labelled = set(reviewer.labelled)
                learned = service.get_json("/v1/model")["labels_learned"]
                return requested == labelled and learned >= len(labelled)

            wait_until(learned_all, timeout=60, interval=0.5, what="every label learned")
            time.sleep(1.0)  # anything learned twice would show up by now
            model = service.get_json("/v1/model")
            code, _ = terminate(service, timeout=30)
            assert code == 0, service.log_tail()
        finally:
            producer.close()
            reviewer.close()

    scores = read_topic(kafka_bootstrap, topics.scores)
    reviews = read_topic(kafka_bootstrap, topics.reviews)
    labels = read_topic(kafka_bootstrap, topics.labels)
    labelled = reviewer.labelled
    state = load_checkpoint(tmp_path / "state")
    learner = state["learner"]
    probes = probe_features()
    reference = replay_reference(labels, reviews)
    score_ids = [s["event_id"] for s in scores]
    last_score = {
        s["event_id"]: s for s in sorted(scores, key=lambda s: (s["_partition"], s["_offset"]))
    }
    requested = {event for event, s in last_score.items() if s["label_requested"]}
    review_ids = {r["event_id"] for r in reviews}

    print(
        f"\ncrash recovery: {KILLS} SIGKILLs ({early_kills} before ready), "
        f"{len(produced)} transactions, {len(score_ids)} score messages "
        f"({len(score_ids) - len(set(score_ids))} duplicates), {len(reviews)} review requests "
        f"({len(review_ids)} distinct), {len(labelled)} labels produced, "
        f"{model['labels_learned']} learned; restart -> ready median "
        f"{statistics.median(ready_times):.2f} s, max {max(ready_times):.2f} s; "
        f"total {time.monotonic() - started:.0f} s"
    )
    # Each label was produced once, for a distinct event.
    assert len(labelled) == len(set(labelled)) == len(labels) > 100
    # 0 lost, 0 learned twice: the count, the version, and the model itself.
    assert model["labels_learned"] == len(labelled)
    assert model["version"] == len(labelled)
    assert learner.model.n_learned == len(labelled)
    assert predictions(learner.model, probes) == predictions(reference, probes)
    # Every transaction scored at least once; no review request lost.
    assert produced <= set(score_ids)
    assert requested <= review_ids
    # The service was killed mid-stream, every time, with labels flowing.
    assert len(ready_times) + early_kills >= KILLS
