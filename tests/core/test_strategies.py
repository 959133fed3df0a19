"""The balanced quantile filter, by hand; the other strategies are covered by the gate contract."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamal.core.budget import FractionBudget
from streamal.core.gate import Gate
from streamal.core.policy import build_gate
from streamal.core.strategies import BalancedQuantile


def _bound(rate: float, window: int = 10, tolerance: float = 2.0) -> BalancedQuantile:
    s = BalancedQuantile(window=window, tolerance=tolerance)
    s.bind(rate, random.Random(0))
    return s


def test_the_bar_is_the_quantile_lowered_by_the_balance_times_the_range() -> None:
    s = _bound(0.2)
    for u in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        s.update(u, asked=False)
    # Balanced: the 0.8 quantile of ten scores is the 9th smallest (index floor(0.8 * 10) = 8).
    assert s.threshold == pytest.approx(0.9)
    assert s.propose(0.89) == (False, 0.0)
    assert s.propose(0.9) == (True, 1.0)
    # One request behind (no request in five events at 0.2): the bar drops by range * 1 / 2.
    for _ in range(5):
        s.settle(False, 0.2)
    assert s.balance == pytest.approx(1.0)
    assert s.threshold == pytest.approx(0.9 - 0.9 * 1.0 / 2.0)
    assert s.propose(0.5)[0]
    # One ahead: it rises by as much.
    s.settle(True, 0.0)
    s.settle(True, 0.0)
    assert s.threshold == pytest.approx(0.9 + 0.9 * 1.0 / 2.0)


def test_a_deficit_is_capped_at_the_tolerance_a_surplus_is_not() -> None:
    s = _bound(0.1, tolerance=3.0)
    for _ in range(1000):  # a long veto: the lane falls behind by 100 requests
        s.settle(False, 0.1)
    assert s.balance == 3.0  # no flood of requests when the veto ends
    for _ in range(10):  # a head start of ten labels, taken at once
        s.settle(True, 0.0)
    assert s.balance == -7.0  # paid back in full


def test_it_waits_for_the_rare_high_score_then_catches_up() -> None:
    """A flat stream with a rare spike: the spikes are asked, the deficit buys the rest."""
    s = _bound(0.05, window=100, tolerance=5.0)
    rng = random.Random(2)
    asked_spikes = asked = 0
    n = 20_000
    for _ in range(n):
        spike = rng.random() < 0.01
        u = 0.9 + 0.1 * rng.random() if spike else 0.1 * rng.random()
        ask, _ = s.propose(u)
        s.update(u, ask)
        s.settle(ask, 0.05)
        asked += ask
        asked_spikes += ask and spike
    assert abs(asked - 0.05 * n) <= 5  # the rate, within the tolerance
    assert asked_spikes >= 0.9 * 0.01 * n  # nearly every spike is among them


@given(
    scores=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=3000),
    rate=st.sampled_from((0.01, 0.05, 0.2)),
)
@settings(max_examples=60, deadline=None)
def test_the_spend_stays_within_the_tolerance_of_the_rate(scores: list[float], rate: float) -> None:
    tolerance = 5.0
    s = _bound(rate, window=100, tolerance=tolerance)
    asked = 0
    for u in scores:
        ask, _ = s.propose(u)
        s.update(u, ask)
        s.settle(ask, rate)
        asked += ask
    # Ahead of the rate by more than the tolerance, the bar is above every recent score but
    # ties: constant scores can run ahead (the range is 0), which the gate's buckets stop.
    if len(set(scores[-100:])) > 1:
        assert asked <= rate * len(scores) + tolerance + 1


def _cold_start_gate(strategy: BalancedQuantile, budget: float = 0.05) -> Gate:
    return Gate(
        FractionBudget(budget, 1000, burst_share=0.25, initial=12.5),
        random_share=0.1,
        strategy=strategy,
        seed=1,
        slack=0.25,
        head_start=12.5,
    )


def _cold_start_asks(gate: Gate, n: int) -> list[bool]:
    rng = random.Random(3)
    asks = []
    for i in range(n):
        p = 0.5 if i < 50 else rng.random()  # a cold model: one score for all, until labels come
        asks.append(gate.decide({True: p, False: 1 - p}).ask)
    return asks


def test_the_head_start_is_taken_at_once_and_repaid() -> None:
    """With a head start the gate buys its first labels at once, and the total is the budget."""
    budget, n = 0.05, 4000
    strategy = BalancedQuantile(window=100, tolerance=12.5, head_start=12.5, repay=500)
    asks = _cold_start_asks(_cold_start_gate(strategy, budget), n)
    assert sum(asks[:20]) >= 12  # its first labels come at once
    assert abs(sum(asks) - budget * n) <= 3  # and the total is the budget's
    assert strategy.advance == 0.0
    # The balance is the budget's pace less the requests; a first event not asked for, while
    # the balance sits at its cap (the head start), loses that event's share.
    assert strategy.balance == pytest.approx(budget * n - sum(asks), abs=0.1)


def test_the_head_start_is_repaid_evenly_not_at_once() -> None:
    """Just after its head start the lane keeps asking, at the rate less the repayment.

    Repaid through the balance instead (a bucket's credit and no head start in the strategy),
    the bar rises above every score and the model, which has just begun to learn, gets nothing.
    """
    repaid = BalancedQuantile(window=100, tolerance=12.5, head_start=12.5, repay=500)
    at_once = BalancedQuantile(window=100, tolerance=12.5)
    evenly = _cold_start_asks(_cold_start_gate(repaid), 1000)
    abruptly = _cold_start_asks(_cold_start_gate(at_once), 1000)
    # Events 50-250: 5 % less 12.5 labels per 500 events is 2.5 %, 5 labels (random lane included).
    assert sum(evenly[50:250]) >= 4
    assert sum(abruptly[50:250]) <= 2
    assert sum(evenly) == pytest.approx(sum(abruptly), abs=3)  # the same budget


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        BalancedQuantile(window=1)
    with pytest.raises(ValueError, match="tolerance"):
        BalancedQuantile(tolerance=0)
    with pytest.raises(ValueError, match="head_start"):
        BalancedQuantile(head_start=-1)
    with pytest.raises(ValueError, match="repay"):
        BalancedQuantile(repay=0)


def test_a_new_budget_scales_the_tolerance() -> None:
    gate = build_gate("balanced", budget=0.05)
    strategy = gate.lanes[-1].strategy
    assert isinstance(strategy, BalancedQuantile)
    assert strategy.tolerance == 12.5  # a quarter window's budget
    gate.set_budget(0.02)
    assert strategy.tolerance == pytest.approx(5.0)
    assert strategy.balance <= strategy.tolerance
