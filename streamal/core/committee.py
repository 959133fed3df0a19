"""Query by committee: disagreement among the members of an ensemble as informativeness.

Where the members of an ensemble (River's ARF, bagging, …) disagree, the version space is still
wide, and a label narrows it most (Seung et al., 1992). Two classic ways to measure it:

* **vote entropy** (Dagan & Engelson, 1995): entropy of the members' hard votes;
* **mean KL divergence from the consensus** (McCallum & Nigam, 1998): how far each member's
  distribution is from the committee's mean, averaged; soft, so it also sees "agree on the class
  but not on the confidence".

Both are scaled to ``[0, 1]`` like the other measures.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

from river import base

from streamal.core.measures import Proba

__all__ = ["committee_probas", "kl_to_consensus", "vote_entropy"]


def committee_probas(model: Any, x: dict[str, float]) -> list[dict[Hashable, float]]:
    """Each member's class probabilities, for a River ensemble (or a pipeline ending in one).

    Raises ``TypeError`` for a model that is not a committee. An ensemble that has no members
    yet (River's ARF grows its trees on the first label) is an empty committee: the measures
    score it as knowing nothing.

    >>> from river import forest
    >>> committee_probas(forest.ARFClassifier(n_models=3), {"a": 1.0})
    []
    """
    if hasattr(model, "steps"):  # a pipeline: transform, then ask the final step's members
        *transformers, last = list(model.steps.values())
        for step in transformers:
            x = step.transform_one(x)
        model = last
    if not isinstance(model, base.Ensemble):
        kind = type(model).__name__
        raise TypeError(f"query by committee needs an ensemble model (e.g. arf); got {kind}")
    return [member.predict_proba_one(x) for member in model]


def vote_entropy(members: Sequence[Proba], n_classes: int = 2) -> float:
    """Entropy of the members' votes, normalised by ``log min(K, members)``.

    >>> vote_entropy([{0: .9, 1: .1}, {0: .2, 1: .8}])  # one vote each way
    1.0
    >>> vote_entropy([{0: .9, 1: .1}, {0: .6, 1: .4}])  # unanimous
    0.0
    """
    votes: dict[Hashable, int] = {}
    for proba in members:
        if proba:
            winner = max(proba, key=proba.__getitem__)
            votes[winner] = votes.get(winner, 0) + 1
    total = sum(votes.values())
    bound = min(max(n_classes, 2), total)
    if total == 0 or bound < 2:
        return 1.0 if total == 0 else 0.0
    h = -sum(v / total * math.log(v / total) for v in votes.values())
    return round(min(1.0, max(0.0, h / math.log(bound))), 12) + 0.0


def kl_to_consensus(members: Sequence[Proba], n_classes: int = 2) -> float:
    """Mean KL divergence of each member from the consensus, mapped to ``[0, 1)`` as ``1 - e^-KL``.

    KL is unbounded, so it is squashed monotonically: thresholds and quantiles are unaffected, and
    the value stays comparable with the other measures.

    >>> kl_to_consensus([{0: .5, 1: .5}, {0: .5, 1: .5}])
    0.0
    >>> round(kl_to_consensus([{0: .9, 1: .1}, {0: .1, 1: .9}]), 4)
    0.3079
    """
    members = [m for m in members if m]
    if not members:
        return 1.0
    classes = {c for m in members for c in m}
    consensus = {c: sum(m.get(c, 0.0) for m in members) / len(members) for c in classes}
    eps = 1e-12
    kl = 0.0
    for m in members:
        kl += sum(p * math.log(p / max(consensus[c], eps)) for c, p in m.items() if p > 0.0)
    return round(1.0 - math.exp(-kl / len(members)), 12)
