"""The service without a broker: what it tells the operator about its settings, and what its
housekeeping counts."""

from __future__ import annotations

import time

import pytest
from prometheus_client import generate_latest

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
