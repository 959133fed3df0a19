"""Uncertainty measures: how much a label for this prediction is expected to teach.

Each measure maps a probability dict ``{class: p}`` to a number in ``[0, 1]`` where 1 is the most
uncertain. Normalising all of them to the same range lets one threshold mechanism serve them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping

Proba = Mapping[Hashable, float]
Measure = Callable[[Proba], float]

__all__ = ["Measure", "Proba", "entropy", "least_confidence", "smallest_margin", "MEASURES"]


def _top_two(proba: Proba) -> tuple[float, float]:
    first = second = 0.0
    for p in proba.values():
        if p > first:
            first, second = p, first
        elif p > second:
            second = p
    return first, second


def least_confidence(proba: Proba, n_classes: int = 2) -> float:
    """``1 - max p``, rescaled by ``K / (K - 1)`` so that a uniform prediction scores 1.

    >>> least_confidence({True: .5, False: .5})
    1.0
    >>> least_confidence({True: .9, False: .1})
    0.2
    >>> least_confidence({})  # a model that has seen nothing is maximally uncertain
    1.0
    """
    if not proba:
        return 1.0
    k = max(n_classes, len(proba))
    first, _ = _top_two(proba)
    return round(min(1.0, max(0.0, (1.0 - first) * k / (k - 1))), 12)


def smallest_margin(proba: Proba, n_classes: int = 2) -> float:
    """``1 - (p1 - p2)`` with ``p1``, ``p2`` the two largest probabilities.

    >>> smallest_margin({True: .5, False: .5})
    1.0
    >>> smallest_margin({'a': .7, 'b': .2, 'c': .1})
    0.5
    """
    if not proba:
        return 1.0
    first, second = _top_two(proba)
    return round(min(1.0, max(0.0, 1.0 - (first - second))), 12)


def entropy(proba: Proba, n_classes: int = 2) -> float:
    """Shannon entropy normalised by ``log K`` so that the uniform prediction scores 1.

    >>> entropy({True: .5, False: .5})
    1.0
    >>> entropy({True: 1.0, False: 0.0})
    0.0
    >>> round(entropy({'a': .8, 'b': .1, 'c': .1}), 4)
    0.5817
    """
    if not proba:
        return 1.0
    if len(proba) == 2 and n_classes <= 2:  # the common case, without the generator
        p, q = proba.values()
        h = (-p * math.log(p) if p > 0.0 else 0.0) - (q * math.log(q) if q > 0.0 else 0.0)
        return min(1.0, max(0.0, round(h / _LOG2, 12)))
    k = max(n_classes, len(proba))
    h = -sum(p * math.log(p) for p in proba.values() if p > 0.0)
    return round(min(1.0, max(0.0, h / math.log(k))), 12)


_LOG2 = math.log(2.0)


MEASURES: dict[str, Callable[..., float]] = {
    "least_confidence": least_confidence,
    "margin": smallest_margin,
    "entropy": entropy,
}
