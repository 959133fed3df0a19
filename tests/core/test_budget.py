"""WindowBudget and FractionBudget: the caps hold whatever the gate wants."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from streamal.core.budget import FractionBudget, WindowBudget


def _drive(budget: WindowBudget, wants: list[bool]) -> list[bool]:
    """Ask only where wanted and allowed, as the gate does; returns the requests made."""
    asked = []
    for want in wants:
        ask = want and budget.allows()
        budget.record(ask)
        asked.append(ask)
    return asked


fractions = st.floats(min_value=0.001, max_value=1.0, allow_nan=False)
windows = st.integers(min_value=1, max_value=60)
wants = st.lists(st.booleans(), max_size=400)


@given(fractions, windows, wants)
def test_no_window_ever_exceeds_the_cap(fraction: float, window: int, want: list[bool]) -> None:
    budget = WindowBudget(fraction, window)
    cap = budget.cap
    assert cap == max(1, math.floor(fraction * window + 1e-9))
    asked = _drive(budget, want)
    for end in range(1, len(asked) + 1):
        assert sum(asked[max(0, end - window) : end]) <= cap
    assert sum(asked) <= cap * math.ceil(len(asked) / window)


@given(fractions, windows, wants)
def test_allows_exactly_when_the_last_window_has_room(
    fraction: float, window: int, want: list[bool]
) -> None:
    """Not only safe but greedy: a wanted request is refused only when the window is full."""
    budget = WindowBudget(fraction, window)
    history: list[bool] = []
    for w in want:
        recent = history[max(0, len(history) - (window - 1)) :] if window > 1 else []
        assert budget.allows() == (sum(recent) + 1 <= budget.cap)
        ask = w and budget.allows()
        budget.record(ask)
        history.append(ask)
        tail = history[-window:]
        assert budget.spend_ratio == pytest.approx(sum(tail) / len(tail))


def test_always_wanting_spends_exactly_the_fraction() -> None:
    budget = WindowBudget(fraction=0.05, window=200)
    asked = _drive(budget, [True] * 2000)
    assert sum(asked) == 100
    # Front-loaded: the whole window's allowance goes first, then nothing until it slides.
    assert asked[:10] == [True] * 10
    assert not any(asked[10:200])
    assert budget.spend_ratio == pytest.approx(0.05)


def test_never_wanting_spends_nothing() -> None:
    budget = WindowBudget(fraction=0.5, window=10)
    assert sum(_drive(budget, [False] * 50)) == 0
    assert budget.spend_ratio == 0.0


def test_spend_ratio_before_any_event_is_zero() -> None:
    assert WindowBudget(0.1, 10).spend_ratio == 0.0


def test_tiny_budget_still_allows_one_per_window() -> None:
    budget = WindowBudget(fraction=0.001, window=100)
    assert budget.cap == 1
    assert sum(_drive(budget, [True] * 1000)) == 10


def test_set_fraction_changes_the_cap_and_keeps_history() -> None:
    budget = WindowBudget(fraction=0.5, window=10)
    assert sum(_drive(budget, [True] * 10)) == 5
    budget.set_fraction(0.1)
    assert budget.fraction == 0.1
    assert budget.cap == 1
    # The window still holds requests: the next one waits until the last 9 events hold none.
    later = _drive(budget, [True] * 20)
    assert [i for i, ask in enumerate(later) if ask] == [4, 14]
    history = [True] * 5 + [False] * 5 + later
    for end, ask in enumerate(history[10:], start=11):
        if ask:  # every window ending at a request made under the new cap respects it
            assert sum(history[end - 10 : end]) <= 1
    budget.set_fraction(1.0)
    assert budget.cap == 10
    assert all(_drive(budget, [True] * 8))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01, math.nan, math.inf])
def test_bad_fraction_raises(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        WindowBudget(fraction, 100)
    budget = WindowBudget(0.1, 100)
    with pytest.raises(ValueError, match="fraction"):
        budget.set_fraction(fraction)
    assert budget.fraction == 0.1


@pytest.mark.parametrize("window", [0, -5])
def test_bad_window_raises(window: int) -> None:
    with pytest.raises(ValueError, match="window"):
        WindowBudget(0.1, window)


# --- FractionBudget: the paced token bucket the gate spends from -------------------------------


@given(
    fraction=fractions,
    window=st.integers(min_value=1, max_value=2000),
    burst_share=st.floats(min_value=0.0, max_value=1.0),
    initial=st.floats(min_value=0.0, max_value=5.0),
    want=st.lists(st.booleans(), max_size=600),
)
def test_the_paced_bucket_never_runs_ahead_of_the_budget(
    fraction: float, window: int, burst_share: float, initial: float, want: list[bool]
) -> None:
    """After any n events at most B·n + initial requests; in any w events, B·w + burst."""
    budget = FractionBudget(fraction, window, burst_share=burst_share, initial=initial)
    asked = _drive(budget, want)
    made = 0
    for n, ask in enumerate(asked, start=1):
        made += ask
        assert made <= fraction * n + min(initial, budget.burst) + 1e-6
    sums = [0]
    for ask in asked:
        sums.append(sums[-1] + ask)
    for w in {1, 7, window}:
        for end in range(w, len(asked) + 1):
            assert sums[end] - sums[end - w] <= fraction * w + budget.burst + 1e-6


@given(fraction=fractions, window=st.integers(min_value=1, max_value=500), n=st.integers(0, 3000))
def test_asking_whenever_allowed_spends_the_whole_budget(
    fraction: float, window: int, n: int
) -> None:
    """Exactly ``floor(B·n)`` once the bucket holds a token and this event's share; a smaller
    bucket (a single token, B·window under 5) loses what overflows as it fills, up to B a
    request."""
    budget = FractionBudget(fraction, window)
    assume(budget.burst >= 1.0 + fraction)
    assert sum(_drive(budget, [True] * n)) == math.floor(fraction * n + 1e-6)


def test_the_bucket_is_at_least_one_token_and_a_new_fraction_keeps_the_savings() -> None:
    budget = FractionBudget(fraction=0.001, window=100)  # 0.02 tokens of burst: one token
    assert budget.burst == 1.0
    budget = FractionBudget(fraction=0.1, window=100, burst=5.0)
    for _ in range(60):  # 6 tokens offered, the bucket holds 5
        budget.record(False)
    budget.set_fraction(0.05)
    assert budget.burst == 5.0
    asked = _drive(budget, [True] * 5)
    assert asked == [True] * 5  # the savings, and this event's share tops up the last one
    with pytest.raises(ValueError, match="budget fraction"):
        budget.set_fraction(0.0)
    with pytest.raises(ValueError, match="budget window"):
        FractionBudget(0.1, window=0)
