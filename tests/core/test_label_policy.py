"""Labels by source: weights parsed, models kept apart, their probabilities combined by hand."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import pytest
from river import linear_model

from streamal.core.label_policy import SourceSplit, parse_weights


class Fixed:
    """A model that answers one fixed distribution and records what it learned."""

    def __init__(self, proba: dict[Hashable, float]) -> None:
        self.proba = proba
        self.learned: list[tuple[Any, Hashable, float]] = []

    def learn_one(self, x: Mapping[str, float], y: Hashable, w: float = 1.0) -> None:
        self.learned.append((dict(x), y, w))

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[Hashable, float]:
        return dict(self.proba)


def _split(alpha: float = 0.5, **groups: dict[Hashable, float]) -> SourceSplit:
    """A split whose groups are :class:`Fixed` models, already created."""
    split = SourceSplit(lambda: Fixed({}), {"chargeback": "delayed", "audit": "audit"}, alpha=alpha)
    split.models = {name: Fixed(proba) for name, proba in groups.items()}
    return split


def test_parse_weights() -> None:
    assert parse_weights(["chargeback=0.5", " reviewer =2"]) == {"chargeback": 0.5, "reviewer": 2.0}
    assert parse_weights([]) == {}
    for bad in (["chargeback"], ["=1"], ["chargeback="]):
        with pytest.raises(ValueError, match="NAME=WEIGHT"):
            parse_weights(bad)
    with pytest.raises(ValueError):
        parse_weights(["chargeback=lots"])


def test_sources_go_to_their_group_and_the_rest_to_the_default() -> None:
    split = SourceSplit(lambda: Fixed({}), {"chargeback": "delayed"})
    split.learn_one({"x": 1.0}, True, source="chargeback")
    split.learn_one({"x": 2.0}, False, source="reviewer")
    split.learn_one({"x": 3.0}, False, source="anything-else", w=0.5)
    assert sorted(split.models) == ["delayed", "feedback"]
    assert split.models["delayed"].learned == [({"x": 1.0}, True, 1.0)]
    assert split.models["feedback"].learned == [
        ({"x": 2.0}, False, 1.0),
        ({"x": 3.0}, False, 0.5),
    ]


def test_nothing_learned_predicts_nothing() -> None:
    assert SourceSplit(linear_model.LogisticRegression).predict_proba_one({"x": 1.0}) == {}


def test_one_group_answers_alone() -> None:
    assert _split(delayed={True: 0.3, False: 0.7}).predict_proba_one({}) == {True: 0.3, False: 0.7}


@pytest.mark.parametrize(
    ("alpha", "expected_true"),
    [(0.5, 0.5 * 0.8 + 0.5 * 0.2), (0.7, 0.7 * 0.8 + 0.3 * 0.2), (0.0, 0.2), (1.0, 0.8)],
)
def test_feedback_and_delayed_are_mixed_by_alpha(alpha: float, expected_true: float) -> None:
    split = _split(alpha, feedback={True: 0.8, False: 0.2}, delayed={True: 0.2, False: 0.8})
    proba = split.predict_proba_one({})
    assert proba[True] == pytest.approx(expected_true)
    assert proba[True] + proba[False] == pytest.approx(1.0)


def test_the_other_groups_are_averaged_before_the_mix() -> None:
    split = _split(
        0.5,
        feedback={True: 0.9, False: 0.1},
        delayed={True: 0.2, False: 0.8},
        audit={True: 0.4, False: 0.6},
    )
    # others: (0.2 + 0.4) / 2 = 0.3; mixed: 0.5 × 0.9 + 0.5 × 0.3
    assert split.predict_proba_one({})[True] == pytest.approx(0.6)


def test_without_feedback_the_others_average() -> None:
    split = _split(delayed={True: 0.2, False: 0.8}, audit={True: 0.6, False: 0.4})
    assert split.predict_proba_one({}) == pytest.approx({True: 0.4, False: 0.6})


def test_a_class_one_group_has_not_seen_counts_as_zero_there() -> None:
    split = _split(feedback={True: 1.0}, delayed={True: 0.4, False: 0.6})
    assert split.predict_proba_one({}) == pytest.approx({True: 0.7, False: 0.3})


def test_a_group_with_an_empty_answer_is_left_out() -> None:
    split = _split(feedback={}, delayed={True: 0.2, False: 0.8})
    assert split.predict_proba_one({}) == {True: 0.2, False: 0.8}


def test_river_models_learn_apart() -> None:
    split = SourceSplit(linear_model.LogisticRegression, {"chargeback": "delayed"})
    for _ in range(50):
        split.learn_one({"x": 1.0}, True, source="reviewer")
        split.learn_one({"x": 1.0}, False, source="chargeback")
    feedback = split.models["feedback"].predict_proba_one({"x": 1.0})[True]
    delayed = split.models["delayed"].predict_proba_one({"x": 1.0})[True]
    assert feedback > 0.5 > delayed
    assert split.predict_proba_one({"x": 1.0})[True] == pytest.approx((feedback + delayed) / 2)
