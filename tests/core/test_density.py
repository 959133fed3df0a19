"""Density weighting: the running diagonal Gaussian by hand, forgetting, and ``U · p^β``."""

from __future__ import annotations

import math

import pytest

from streamal.core.density import DiagonalGaussianDensity, density_weighted
from streamal.core.scorers import DensityScorer

NO_FORGETTING = 1e12  # a half-life of a trillion events: plain running mean and variance


def _fitted(*rows: dict[str, float], half_life: float = NO_FORGETTING) -> DiagonalGaussianDensity:
    d = DiagonalGaussianDensity(half_life)
    for row in rows:
        d.learn_one(row)
    return d


def test_mean_and_variance_by_hand() -> None:
    # a: 1 and 3, mean 2, population variance 1; b: 2 and 2, constant
    d = _fitted({"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0})
    assert d.density({"a": 2.0}) == pytest.approx(1.0)
    assert d.density({"a": 4.0}) == pytest.approx(math.exp(-0.5 * 4))  # z = 2
    assert d.density({"a": 0.5}) == pytest.approx(math.exp(-0.5 * 2.25))  # z = -1.5
    # two features: the mean of z², so the width does not shrink with the dimension
    assert d.density({"a": 4.0, "b": 2.0}) == pytest.approx(math.exp(-0.5 * (4 + 0) / 2))


def test_a_constant_feature_that_moves_counts_as_five_standard_deviations() -> None:
    d = _fitted({"b": 2.0}, {"b": 2.0})
    assert d.density({"b": 2.0}) == 1.0
    assert d.density({"b": 2.5}) == pytest.approx(math.exp(-0.5 * 25))


def test_features_never_seen_are_ignored() -> None:
    d = _fitted({"a": 1.0}, {"a": 3.0})
    assert d.density({"a": 2.0, "new": 1e9}) == pytest.approx(1.0)
    assert d.density({"new": 5.0}) == 1.0  # nothing known: every event is typical
    assert DiagonalGaussianDensity().density({"a": 5.0}) == 1.0


def test_the_density_follows_drift() -> None:
    d = DiagonalGaussianDensity(half_life=50)
    for _ in range(2000):
        d.learn_one({"a": 0.0 + 0.1 * (_ % 3)})
    assert d.density({"a": 10.0}) < 1e-6
    for _ in range(500):  # ten half-lives at the new level
        d.learn_one({"a": 10.0 + 0.1 * (_ % 3)})
    assert d.density({"a": 10.1}) > 0.5
    assert d.density({"a": 0.0}) < 1e-6


def test_without_forgetting_it_does_not_follow() -> None:
    d = DiagonalGaussianDensity(half_life=NO_FORGETTING)
    for _ in range(2000):
        d.learn_one({"a": 0.0 + 0.1 * (_ % 3)})
    for _ in range(500):
        d.learn_one({"a": 10.0 + 0.1 * (_ % 3)})
    assert d.density({"a": 0.0}) > d.density({"a": 10.1})


@pytest.mark.parametrize(
    ("u", "p", "beta", "expected"),
    [(0.8, 0.25, 1.0, 0.2), (0.8, 0.25, 0.5, 0.4), (0.8, 0.25, 0.0, 0.8), (0.6, 1.0, 3.0, 0.6)],
)
def test_density_weighted_by_hand(u: float, p: float, beta: float, expected: float) -> None:
    assert density_weighted(u, p, beta) == pytest.approx(expected)


def test_the_scorer_prefers_a_typical_event_to_an_outlier_of_equal_uncertainty() -> None:
    scorer = DensityScorer(beta=1.0)
    unsure = {True: 0.5, False: 0.5}
    for i in range(500):
        scorer(unsure, {"amount": float(i % 20)})
    typical = scorer(unsure, {"amount": 10.0})
    outlier = scorer(unsure, {"amount": 500.0})
    assert typical > 0.9 and outlier < 1e-6
    assert scorer({True: 0.99, False: 0.01}, {"amount": 10.0}) < typical  # still uncertainty


def test_the_scorer_without_features_is_entropy() -> None:
    assert DensityScorer()({True: 0.5, False: 0.5}, None) == 1.0
