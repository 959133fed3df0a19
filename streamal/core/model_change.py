"""Expected model change: how far a label would move the model, as the expected gradient length.

For a logistic regression with weights ``w`` on (scaled) features ``x̃`` plus an intercept, the
log-loss gradient for label ``y`` is ``(p - y) · [x̃, 1]``. Its expected norm under the model's own
belief ``p`` is ``2 p (1 - p) · ‖[x̃, 1]‖`` (Settles, Craven & Ray, 2008): large where the model is
unsure *and* the event is far from the origin, i.e. where a label would move the weights most.
The value is mapped to ``[0, 1)`` as ``1 - e^-g``, monotone, so thresholds behave as for the
other measures.

It is defined for binary linear models only; anything else gets a clear ``TypeError``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from river import linear_model

__all__ = ["expected_gradient_length", "check_linear", "input_norm"]


def _split(model: Any) -> tuple[list[Any], Any]:
    if hasattr(model, "steps"):
        *transformers, last = list(model.steps.values())
        return transformers, last
    return [], model


def check_linear(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is a binary logistic regression (maybe scaled)."""
    _, last = _split(model)
    if not isinstance(last, linear_model.LogisticRegression):
        raise TypeError(
            "expected model change (gradient length) is defined for binary linear models "
            f"(logreg); got {type(last).__name__}"
        )


def expected_gradient_length(model: Any, x: Mapping[str, float], p_positive: float) -> float:
    """``1 - exp(-2 p (1-p) ‖[x̃, 1]‖)`` for a (scaled) logistic regression.

    >>> from river import linear_model
    >>> model = linear_model.LogisticRegression()
    >>> round(expected_gradient_length(model, {"a": 3.0, "b": 4.0}, .5), 4)
    0.9219
    """
    norm = input_norm(model, x)
    return 1.0 - math.exp(-2.0 * p_positive * (1.0 - p_positive) * norm)


def input_norm(model: Any, x: Mapping[str, float]) -> float:
    """``‖[x̃, 1]‖``: the length of what the weights see, the gradient's size for a sure error.

    >>> from river import linear_model
    >>> round(input_norm(linear_model.LogisticRegression(), {"a": 3.0, "b": 4.0}) ** 2, 9)
    26.0
    """
    check_linear(model)
    transformers, _ = _split(model)
    xt: Mapping[str, float] = x
    for step in transformers:
        xt = step.transform_one(xt)
    return math.sqrt(1.0 + sum(v * v for v in xt.values()))
