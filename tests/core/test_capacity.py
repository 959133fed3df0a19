"""Reviewer capacity (token bucket) and the open-review cap: alone, and in the gate with the budget.

Properties over arbitrary sequences (hypothesis): no interval of time holds more requests than
the bucket's burst plus its refill; the review queue never holds more than the cap; and in the
gate, the budget fraction, the hourly capacity and the queue cap all hold at once, whatever the
scores, the clock and the reviewers do.
"""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spend import max_window

from streamal.core.capacity import BacklogCap, TokenBucket
from streamal.core.evaluator import StreamClock
from streamal.core.policy import BALANCED, STRATEGIES, build_gate, slack


def _most_in_any_interval_allowed(times: list[float], burst: float, per_hour: float) -> bool:
    """Every run of requests ``i..j`` fits in ``burst + refill(t_j - t_i)`` tokens."""
    rate = per_hour / 3600.0
    return all(
        j - i + 1 <= burst + (times[j] - times[i]) * rate + 1e-6
        for i in range(len(times))
        for j in range(i, len(times))
    )


def test_the_burst_then_the_rate() -> None:
    clock = StreamClock()
    bucket = TokenBucket(per_hour=60, burst=3, clock=clock)  # one a minute, three at once
    asked = []
    for _ in range(5):
        ask = bucket.allows()
        bucket.record(ask)
        asked.append(ask)
    assert asked == [True, True, True, False, False]
    clock.now = 59.0
    assert not bucket.allows()
    clock.now = 60.0
    assert bucket.allows()
    bucket.record(True)
    assert not bucket.allows()
    clock.now = 10_000.0  # a long quiet spell refills to the burst, not beyond
    for _ in range(3):
        assert bucket.allows()
        bucket.record(True)
    assert not bucket.allows()


def test_the_default_burst_is_a_minute_of_capacity() -> None:
    assert TokenBucket(per_hour=120).burst == 2.0
    assert TokenBucket(per_hour=10).burst == 1.0  # at least one request


def test_a_clock_that_steps_back_refills_nothing() -> None:
    clock = StreamClock()
    bucket = TokenBucket(per_hour=3600, burst=1, clock=clock)
    clock.now = 100.0
    bucket.record(bucket.allows())
    clock.now = 50.0  # an event from the past (replay, skewed producer)
    assert not bucket.allows()
    clock.now = 100.5
    assert not bucket.allows()  # half a token since t = 100, not 50.5 s worth
    clock.now = 101.0
    assert bucket.allows()


@pytest.mark.parametrize("per_hour", [0.0, -5.0])
def test_a_capacity_must_be_positive(per_hour: float) -> None:
    with pytest.raises(ValueError, match="capacity must be positive"):
        TokenBucket(per_hour)


def test_a_patient_asker_gets_the_whole_capacity() -> None:
    clock = StreamClock()
    bucket = TokenBucket(per_hour=40, clock=clock)
    asked = 0
    for second in range(10 * 3600):  # an event a second for ten hours, every one wanted
        clock.now = float(second)
        ask = bucket.allows()
        bucket.record(ask)
        asked += ask
    assert asked == pytest.approx(10 * 40 + bucket.burst, abs=1)


@given(
    steps=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=300.0), st.booleans()), max_size=250
    ),
    per_hour=st.floats(min_value=1.0, max_value=50_000.0),
    burst=st.one_of(st.none(), st.floats(min_value=1.0, max_value=30.0)),
)
@settings(max_examples=150, deadline=None)
def test_no_interval_holds_more_than_the_burst_plus_the_refill(
    steps: list[tuple[float, bool]], per_hour: float, burst: float | None
) -> None:
    clock = StreamClock()
    bucket = TokenBucket(per_hour, burst, clock=clock)
    times = []
    for dt, want in steps:
        clock.now += dt
        ask = want and bucket.allows()
        bucket.record(ask)
        if ask:
            times.append(clock.now)
    assert _most_in_any_interval_allowed(times, bucket.burst, per_hour)


def test_the_backlog_cap_reads_the_queue_live() -> None:
    queue = [0]
    cap = BacklogCap(2, lambda: queue[0])
    assert cap.allows()
    queue[0] = 2
    assert not cap.allows()
    queue[0] = 1  # a label came back
    assert cap.allows()
    with pytest.raises(ValueError, match="backlog cap"):
        BacklogCap(0, lambda: 0)


@given(
    max_open=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=4)), max_size=400),
)
def test_the_queue_never_holds_more_than_the_cap(
    max_open: int, steps: list[tuple[bool, int]]
) -> None:
    open_reviews = 0
    cap = BacklogCap(max_open, lambda: open_reviews)
    for want, answered in steps:
        open_reviews -= min(open_reviews, answered)
        ask = want and cap.allows()
        cap.record(ask)
        open_reviews += ask
        assert open_reviews <= max_open


@given(
    events=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=1.0),  # the model's fraud probability
            st.floats(min_value=0.0, max_value=30.0),  # seconds since the last event
            st.integers(min_value=0, max_value=2),  # reviews answered meanwhile
        ),
        min_size=1,
        max_size=2500,
    ),
    strategy=st.sampled_from(STRATEGIES),
    budget=st.sampled_from((0.01, 0.05, 0.2)),
    per_hour=st.floats(min_value=10.0, max_value=20_000.0),
    max_open=st.integers(min_value=1, max_value=15),
)
@settings(max_examples=60, deadline=None)
def test_in_the_gate_every_constraint_holds_at_once(
    events: list[tuple[float, float, int]],
    strategy: str,
    budget: float,
    per_hour: float,
    max_open: int,
) -> None:
    clock = StreamClock()
    queue: collections.deque[int] = collections.deque()
    gate = build_gate(
        strategy,
        budget=budget,
        seed=0,
        labels_per_hour=per_hour,
        max_open_reviews=max_open,
        open_reviews=lambda: len(queue),
        clock=clock,
    )
    (bucket,) = [c for c in gate.constraints if isinstance(c, TokenBucket)]
    asks, times = [], []
    for i, (p, dt, answered) in enumerate(events):
        clock.now += dt
        for _ in range(min(answered, len(queue))):
            queue.popleft()  # oldest first, as reviewers work a queue
        decision = gate.decide({False: 1 - p, True: p})
        asks.append(decision.ask)
        if decision.ask:
            queue.append(i)
            times.append(clock.now)
        assert len(queue) <= max_open
    assert _most_in_any_interval_allowed(times, bucket.burst, per_hour)
    credit = slack(budget, 1000) if strategy in BALANCED else 1.0
    assert sum(asks) <= budget * len(asks) + credit + 1e-9
    assert max_window(asks) <= budget * 1000 + max(1.0, 0.25 * budget * 1000)


def test_a_backlog_cap_needs_a_way_to_count_open_reviews() -> None:
    with pytest.raises(ValueError, match="count open reviews"):
        build_gate("balanced", max_open_reviews=10)


def test_the_gate_charges_the_budget_when_it_asks_not_when_the_label_comes() -> None:
    """No label ever comes back: the queue fills to its cap, and then nothing more is asked."""
    queue: list[int] = []
    gate = build_gate(
        "balanced", budget=0.2, seed=1, max_open_reviews=7, open_reviews=lambda: len(queue)
    )
    for i in range(2000):
        if gate.decide({False: 0.5, True: 0.5}).ask:
            queue.append(i)
    assert len(queue) == 7
