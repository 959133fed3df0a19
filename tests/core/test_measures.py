"""Uncertainty measures: hand-computed values and the [0, 1] contract the gate relies on."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamal.core.measures import MEASURES, entropy, least_confidence, smallest_margin

ALL = sorted(MEASURES.items())


@pytest.mark.parametrize(
    ("proba", "expected"),
    [
        ({False: 0.5, True: 0.5}, 1.0),
        ({False: 0.9, True: 0.1}, 0.2),  # (1 - .9) * 2 / 1
        ({False: 0.25, True: 0.75}, 0.5),
        ({"a": 0.6, "b": 0.3, "c": 0.1}, 0.6),  # (1 - .6) * 3 / 2
        ({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, 1.0),
    ],
)
def test_least_confidence_values(proba: dict[object, float], expected: float) -> None:
    assert least_confidence(proba) == pytest.approx(expected, abs=1e-9)


def test_least_confidence_uses_n_classes_when_the_model_knows_fewer() -> None:
    # A model that has seen only one class of three: K = 3 normalises, not the dict's length.
    assert least_confidence({"a": 0.5, "b": 0.5}, n_classes=3) == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("proba", "expected"),
    [
        ({False: 0.5, True: 0.5}, 1.0),
        ({False: 0.9, True: 0.1}, 0.2),  # 1 - (.9 - .1)
        ({False: 0.3, True: 0.7}, 0.6),
        ({"a": 0.6, "b": 0.3, "c": 0.1}, 0.7),  # 1 - (.6 - .3)
        ({"a": 0.1, "b": 0.45, "c": 0.45}, 1.0),  # a tie at the top
    ],
)
def test_smallest_margin_values(proba: dict[object, float], expected: float) -> None:
    assert smallest_margin(proba) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("proba", "expected"),
    [
        ({False: 0.5, True: 0.5}, 1.0),
        # -(.9 log2 .9 + .1 log2 .1)
        ({False: 0.9, True: 0.1}, -(0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))),
        ({False: 0.9, True: 0.1}, 0.4689955935892812),
        # 1.5 bits over log2(3) bits
        ({"a": 0.5, "b": 0.25, "c": 0.25}, 1.5 / math.log2(3)),
        ({"a": 0.8, "b": 0.1, "c": 0.1}, 0.5816719),
    ],
)
def test_entropy_values(proba: dict[object, float], expected: float) -> None:
    assert entropy(proba, n_classes=len(proba)) == pytest.approx(expected, abs=1e-7)


@pytest.mark.parametrize(("name", "measure"), ALL)
def test_empty_prediction_is_maximally_uncertain(name: str, measure: Callable[..., float]) -> None:
    assert measure({}) == 1.0


@pytest.mark.parametrize(("name", "measure"), ALL)
@pytest.mark.parametrize(
    "proba", [{False: 0.0, True: 1.0}, {False: 1.0, True: 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0}]
)
def test_certain_prediction_scores_zero(
    name: str, measure: Callable[..., float], proba: dict
) -> None:
    assert measure(proba, len(proba)) == 0.0


def test_measures_rank_a_sharper_prediction_below_a_flatter_one() -> None:
    flat, sharp = {False: 0.4, True: 0.6}, {False: 0.1, True: 0.9}
    for _, measure in ALL:
        assert measure(sharp) < measure(flat)


def test_registry_names() -> None:
    assert set(MEASURES) == {"least_confidence", "margin", "entropy"}
    assert MEASURES["margin"] is smallest_margin


weights = st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=2, max_size=12).filter(
    lambda w: sum(w) > 0.0
)


def _normalised(w: list[float]) -> dict[int, float]:
    total = sum(w)
    return {i: x / total for i, x in enumerate(w)}


@given(weights)
def test_any_probability_vector_maps_into_unit_interval(w: list[float]) -> None:
    proba = _normalised(w)
    for _, measure in ALL:
        value = measure(proba, len(proba))
        assert 0.0 <= value <= 1.0


@given(st.integers(min_value=2, max_value=64))
def test_uniform_scores_one(k: int) -> None:
    proba = {i: 1.0 / k for i in range(k)}
    for name, measure in ALL:
        assert measure(proba, k) == pytest.approx(1.0, abs=1e-9), name


@given(st.integers(min_value=2, max_value=64), st.data())
def test_one_hot_scores_zero(k: int, data: st.DataObject) -> None:
    hot = data.draw(st.integers(min_value=0, max_value=k - 1))
    proba = {i: float(i == hot) for i in range(k)}
    for name, measure in ALL:
        assert measure(proba, k) == 0.0, name


@given(weights, st.randoms(use_true_random=False))
def test_measures_ignore_class_order(w: list[float], rnd: random.Random) -> None:
    proba = _normalised(w)
    items = list(proba.items())
    rnd.shuffle(items)
    shuffled = dict(items)
    for name, measure in ALL:
        assert measure(shuffled, len(w)) == pytest.approx(measure(proba, len(w)), abs=1e-9), name
