"""Expected model change: the gradient length by hand, through a scaler, and refused elsewhere."""

from __future__ import annotations

import math
from typing import Any

import pytest
from river import linear_model, preprocessing

from streamal.core.model import make_model
from streamal.core.model_change import expected_gradient_length, input_norm
from streamal.core.scorers import GradientScorer


def _egl(p: float, norm: float) -> float:
    """``2 p (1 - p) ‖[x̃, 1]‖``, squashed to ``[0, 1)``."""
    return 1.0 - math.exp(-2.0 * p * (1.0 - p) * norm)


@pytest.mark.parametrize(
    ("x", "p", "norm"),
    [
        ({"a": 3.0, "b": 4.0}, 0.5, math.sqrt(26.0)),  # 1 + 9 + 16
        ({"a": 3.0, "b": 4.0}, 0.1, math.sqrt(26.0)),
        ({}, 0.5, 1.0),  # the intercept alone
        ({"a": -2.0}, 0.3, math.sqrt(5.0)),
    ],
)
def test_gradient_length_by_hand(x: dict[str, float], p: float, norm: float) -> None:
    model = linear_model.LogisticRegression()
    assert input_norm(model, x) == pytest.approx(norm)
    assert expected_gradient_length(model, x, p) == pytest.approx(_egl(p, norm))


def test_a_sure_model_expects_no_change() -> None:
    model = linear_model.LogisticRegression()
    assert expected_gradient_length(model, {"a": 100.0}, 0.0) == 0.0
    assert expected_gradient_length(model, {"a": 100.0}, 1.0) == 0.0


def test_the_norm_is_of_the_scaled_features() -> None:
    """What the weights see: a = 0 and 2 give mean 1 and variance 1, so a = 3 is x̃ = 2."""
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    model.learn_one({"a": 0.0}, False)
    model.learn_one({"a": 2.0}, True)
    assert input_norm(model, {"a": 3.0}) == pytest.approx(math.sqrt(1 + 2.0**2))
    assert expected_gradient_length(model, {"a": 3.0}, 0.5) == pytest.approx(
        _egl(0.5, math.sqrt(5.0))
    )


def test_larger_and_less_certain_events_score_higher() -> None:
    model = linear_model.LogisticRegression()
    small, large = {"a": 1.0}, {"a": 10.0}
    assert expected_gradient_length(model, large, 0.5) > expected_gradient_length(model, small, 0.5)
    assert expected_gradient_length(model, small, 0.5) > expected_gradient_length(model, small, 0.9)


@pytest.mark.parametrize("kind", ["hat", "arf", "gnb"])
def test_models_that_are_not_linear_get_a_clear_error(kind: str) -> None:
    model: Any = make_model(kind, n_classes=2, seed=1)
    with pytest.raises(TypeError, match="binary linear models"):
        expected_gradient_length(model, {"a": 1.0}, 0.5)
    with pytest.raises(TypeError, match="binary linear models"):
        GradientScorer(model)


@pytest.mark.parametrize("kind", ["logreg", "logreg-slow"])
def test_the_service_models_are_linear(kind: str) -> None:
    scorer = GradientScorer(make_model(kind, n_classes=2, seed=1), positive=True)
    assert scorer({True: 0.5, False: 0.5}, {"a": 1.0}) > scorer(
        {True: 0.99, False: 0.01}, {"a": 1.0}
    )


def test_a_multi_class_logistic_model_is_refused_too() -> None:
    """One-vs-rest has a gradient per class; the measure is defined for the binary case."""
    with pytest.raises(TypeError, match="binary linear models.*OneVsRestClassifier"):
        GradientScorer(make_model("logreg", n_classes=3, seed=1))
