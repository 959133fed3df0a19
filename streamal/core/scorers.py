"""Scorers: the informativeness of one event, as small objects the gate calls per event.

They are classes rather than closures so that a gate, with the state its scorers keep (the
density estimate), can be checkpointed with the model it refers to.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from streamal.core.committee import committee_probas, kl_to_consensus, vote_entropy
from streamal.core.density import DiagonalGaussianDensity, density_weighted
from streamal.core.measures import MEASURES, Proba, entropy
from streamal.core.model_change import check_linear, expected_gradient_length

__all__ = [
    "CommitteeScorer",
    "DensityScorer",
    "GradientScorer",
    "MeasureScorer",
    "RiskScorer",
]

Features = Mapping[str, float] | None


class MeasureScorer:
    """An uncertainty measure of the class probabilities (entropy, margin, least confidence).

    >>> MeasureScorer("entropy")({True: .5, False: .5}, None)
    1.0
    """

    def __init__(self, name: str, n_classes: int = 2) -> None:
        if name not in MEASURES:
            raise ValueError(f"unknown measure {name!r}; choose one of {sorted(MEASURES)}")
        self.name = name
        self.n_classes = n_classes
        self._measure = MEASURES[name]

    def __call__(self, proba: Proba, x: Features) -> float:
        return self._measure(proba, self.n_classes)


class RiskScorer:
    """The probability of the positive class: what the exploit lane ranks.

    >>> RiskScorer(True)({True: .8, False: .2}, None)
    0.8
    """

    name = "risk"

    def __init__(self, positive: Hashable = True) -> None:
        self.positive = positive

    def __call__(self, proba: Proba, x: Features) -> float:
        return proba.get(self.positive, 0.0)


class CommitteeScorer:
    """Disagreement among an ensemble's members: vote entropy or mean KL from the consensus."""

    def __init__(self, model: Any, name: str = "vote_entropy", n_classes: int = 2) -> None:
        committee_probas(model, {})  # raises TypeError for a model that is no committee
        self.model = model
        self.name = name
        self.n_classes = n_classes
        self._disagreement = vote_entropy if name == "vote_entropy" else kl_to_consensus

    def __call__(self, proba: Proba, x: Features) -> float:
        return self._disagreement(committee_probas(self.model, dict(x or {})), self.n_classes)


class DensityScorer:
    """Entropy weighted by how typical the event is (:mod:`streamal.core.density`)."""

    name = "density"

    def __init__(self, n_classes: int = 2, beta: float = 1.0) -> None:
        self.n_classes = n_classes
        self.beta = beta
        self.density = DiagonalGaussianDensity()

    def __call__(self, proba: Proba, x: Features) -> float:
        if not x:
            return entropy(proba, self.n_classes)
        weight = self.density.density(x)
        self.density.learn_one(x)
        return density_weighted(entropy(proba, self.n_classes), weight, self.beta)


class GradientScorer:
    """Expected model change (gradient length) of a logistic regression."""

    name = "gradient"

    def __init__(self, model: Any, positive: Hashable = True) -> None:
        check_linear(model)
        self.model = model
        self.positive = positive

    def __call__(self, proba: Proba, x: Features) -> float:
        return expected_gradient_length(self.model, x or {}, proba.get(self.positive, 0.0))
