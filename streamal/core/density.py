"""Density weighting: prefer uncertain events that are also *typical* of the stream.

Plain uncertainty sampling happily spends labels on outliers, which teach the model little about
the bulk of the traffic (Settles & Craven, 2008). Density-weighted uncertainty ``U(x) · p(x)^β``
discounts them.

The density estimate is a diagonal Gaussian over the numeric features with exponential
forgetting: one running mean and variance per feature, ``O(d)`` per event, no tuning beyond the
half-life, and it follows drift. It is not a good density in absolute terms, but weighting needs
only "how typical is this event", and ``exp(-½·mean z²)`` (1 at the centre, falling with the
mean squared z-score) answers that at streaming speed. Richer estimators (k-means or DenStream
micro-clusters) cost more per event and need tuning that a fraud team cannot do for every feed.

A caution for fraud: fraud *is* atypical. Use density weighting for the exploration lane, not for
finding fraud; the exploit lane is there for that.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["DiagonalGaussianDensity", "density_weighted"]


class DiagonalGaussianDensity:
    """Relative density ``exp(-½ · mean_j z_j²)`` in ``(0, 1]`` from running means and variances.

    Parameters
    ----------
    half_life
        Events after which an observation's weight halves (forgetting, to follow drift).

    Examples
    --------
    >>> d = DiagonalGaussianDensity()
    >>> for i in range(1000):
    ...     d.learn_one({"amount": float(i % 10)})
    >>> round(d.density({"amount": 4.5}), 3), round(d.density({"amount": 40.0}), 3)
    (1.0, 0.0)
    """

    def __init__(self, half_life: float = 10_000.0) -> None:
        self.decay = 0.5 ** (1.0 / half_life)
        self._mean: dict[str, float] = {}
        self._var: dict[str, float] = {}
        self._weight: dict[str, float] = {}

    def learn_one(self, x: Mapping[str, float]) -> None:
        decay = self.decay
        for key, value in x.items():
            w = self._weight.get(key, 0.0) * decay + 1.0
            mean = self._mean.get(key, value)
            delta = value - mean
            mean += delta / w
            self._var[key] = (
                self._var.get(key, 0.0) * decay * (w - 1.0) / w + delta * (value - mean) / w
            )
            self._mean[key] = mean
            self._weight[key] = w

    def density(self, x: Mapping[str, float]) -> float:
        total = 0.0
        n = 0
        for key, value in x.items():
            var = self._var.get(key)
            if var is None:
                continue
            n += 1
            if var > 1e-12:
                total += (value - self._mean[key]) ** 2 / var
            elif value != self._mean[key]:
                total += 25.0  # a constant feature took a new value: five standard deviations
        return float(math.exp(-0.5 * total / n)) if n else 1.0


def density_weighted(uncertainty: float, density: float, beta: float = 1.0) -> float:
    """``U(x) · p(x)^β``.

    >>> density_weighted(0.8, 0.25, beta=0.5)
    0.4
    """
    return uncertainty * math.pow(density, beta)
