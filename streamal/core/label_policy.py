"""How labels from different sources are learned: pooled, weighted, or kept apart.

Fraud labels come in two kinds: investigators' feedback on the cases the gate sent them (same
day, chosen by the model, so biased towards hard and risky cases) and chargebacks (weeks later,
every fraud the card holders noticed). Dal Pozzolo et al. (2017, "Credit card fraud detection: a
realistic modeling and a novel learning strategy") found that learning the two apart, one model
on feedback and one on delayed labels, and averaging their probabilities, beats pooling them
into one model. Both are offered here, plus per-source weights for the pooled model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

__all__ = ["SourceSplit", "parse_weights"]


def parse_weights(items: list[str]) -> dict[str, float]:
    """``["chargeback=0.5", "reviewer=1"]`` -> ``{"chargeback": 0.5, "reviewer": 1.0}``.

    >>> parse_weights(["chargeback=0.5"])
    {'chargeback': 0.5}
    """
    weights = {}
    for item in items:
        name, _, value = item.partition("=")
        if not name or not value:
            raise ValueError(f"source weight {item!r} is not NAME=WEIGHT")
        weights[name.strip()] = float(value)
    return weights


class SourceSplit:
    """One River model per group of label sources; predictions average the groups' models.

    Parameters
    ----------
    factory
        Builds a fresh model for a group.
    groups
        Label source -> group; sources not listed go to ``default``.
    default
        Group of unlisted sources.
    alpha
        Weight of the ``feedback`` group's probabilities against the others' mean (0.5: equal).

    Examples
    --------
    >>> from river import linear_model
    >>> split = SourceSplit(linear_model.LogisticRegression, {"chargeback": "delayed"})
    >>> split.learn_one({"x": 1.0}, True, source="reviewer")
    >>> split.learn_one({"x": 1.0}, False, source="chargeback")
    >>> sorted(split.models)
    ['delayed', 'feedback']
    """

    def __init__(
        self,
        factory: Callable[[], Any],
        groups: Mapping[str, str] | None = None,
        default: str = "feedback",
        alpha: float = 0.5,
    ) -> None:
        self.factory = factory
        self.groups = dict(groups or {"chargeback": "delayed", "no_chargeback": "delayed"})
        self.default = default
        self.alpha = alpha
        self.models: dict[str, Any] = {}

    def learn_one(
        self, x: Mapping[str, float], y: Hashable, source: str = "reviewer", w: float = 1.0
    ) -> None:
        group = self.groups.get(source, self.default)
        model = self.models.get(group)
        if model is None:
            model = self.models[group] = self.factory()
        if w == 1.0:
            model.learn_one(x, y)
        else:
            model.learn_one(x, y, w=w)

    def predict_proba_one(self, x: Mapping[str, float]) -> dict[Hashable, float]:
        answers = {g: m.predict_proba_one(x) for g, m in self.models.items()}
        answers = {g: p for g, p in answers.items() if p}
        if not answers:
            return {}
        if len(answers) == 1:
            return dict(next(iter(answers.values())))
        feedback = answers.pop(self.default, None)
        classes = {c for p in answers.values() for c in p} | set(feedback or {})
        others = {c: sum(p.get(c, 0.0) for p in answers.values()) / len(answers) for c in classes}
        if feedback is None:
            return others
        a = self.alpha
        return {c: a * feedback.get(c, 0.0) + (1 - a) * others[c] for c in classes}
