"""The unbiased accuracy estimate: its interval must cover the truth as often as it claims."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from river.datasets import synth

from streamal.core.estimate import Proportion, wilson_interval
from streamal.core.evaluator import prequential
from streamal.core.learner import ActiveLearner
from streamal.core.model import OnlineModel, make_model
from streamal.core.policy import build_gate
from streamal.core.synthetic import drifting_transactions

Stream = Callable[[int], Iterator[tuple[dict[str, Any], bool]]]


def _sea(seed: int) -> Iterator[tuple[dict[str, Any], bool]]:
    drifting = synth.ConceptDriftStream(
        synth.SEA(variant=0, seed=seed),
        synth.SEA(variant=2, seed=seed),
        position=5000,
        width=500,
        seed=seed,
    )
    for x, y in drifting.take(10_000):
        yield {str(k): v for k, v in x.items()}, bool(y)


def _transactions(seed: int) -> Iterator[tuple[dict[str, Any], bool]]:
    return drifting_transactions(10_000, fraud_rate=0.05, seed=seed)


def test_wilson_interval_by_hand() -> None:
    p = Proportion(hits=8, total=10)
    low, high = p.interval()
    # Wilson, z = 1.96: centre (0.8 + 0.19208) / 1.38416, half-width 0.26655 / 1.38416
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert Proportion().interval() == (0.0, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [_sea, _transactions], ids=["sea-drift", "transactions"])
def test_random_lane_interval_covers_whole_stream_accuracy(stream: Stream) -> None:
    covered = 0
    for seed in range(20):
        model = OnlineModel(make_model("logreg"), [False, True])
        # The default strategy (19/20 and 20/20 measured; `variable` 20/20 and 20/20).
        gate = build_gate("balanced", budget=0.1, seed=seed, random_share=0.2)
        report = prequential(stream(seed), ActiveLearner(model, gate), label_delay=20)
        low, high = report.unbiased.interval()
        assert report.unbiased.total >= 100  # ~0.1 x 0.2 x 10,000 random-lane labels
        covered += low <= report.total.accuracy <= high
    assert covered >= 18, f"the 95 % interval covered the truth in only {covered} of 20 seeds"


def test_wilson_interval_of_a_share_by_hand() -> None:
    # share 0 over n trials: the upper end is z² / (n + z²).
    low, high = wilson_interval(0.0, 16)
    assert low == 0.0
    assert high == pytest.approx(1.96**2 / (16 + 1.96**2))
    # share 1/2 over 100: centre 1/2, half-width z·sqrt(1/400 + z²/40000) / (1 + z²/100).
    low, high = wilson_interval(0.5, 100)
    half = 1.96 * math.sqrt(0.25 / 100 + 1.96**2 / 40_000) / (1 + 1.96**2 / 100)
    assert (low, high) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half))
    assert wilson_interval(0.3, 0) == (0.0, 1.0)


@given(st.floats(0.0, 1.0), st.floats(0.5, 1e6))
def test_wilson_interval_holds_the_share_inside_the_unit_interval(share: float, n: float) -> None:
    low, high = wilson_interval(share, n)
    assert 0.0 <= low <= share + 1e-9
    assert share - 1e-9 <= high <= 1.0
