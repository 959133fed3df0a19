"""Accuracy estimates that say how far they can be trusted.

Labels chosen by the gate are the hard cases, so accuracy on them is biased (low). Labels from
the random lane are a uniform sample of the stream, so their accuracy estimates the whole
stream's, with a Wilson score interval for the uncertainty that comes from a small sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Proportion", "wilson_interval"]


def wilson_interval(share: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``share`` observed over ``n`` trials.

    Unlike share ± z·se it stays inside [0, 1] and is sound for a handful of trials. ``n`` may
    be fractional (decayed counts); ``(0, 1)`` before any trial.

    >>> low, high = wilson_interval(0.0, 20)
    >>> low, round(high, 3)
    (0.0, 0.161)
    """
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    denom = 1 + z2 / n
    centre = (share + z2 / (2 * n)) / denom
    half = z * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(slots=True)
class Proportion:
    """Successes out of trials, with a Wilson interval.

    >>> p = Proportion()
    >>> for hit in [True] * 90 + [False] * 10:
    ...     p.update(hit)
    >>> p.value
    0.9
    >>> [round(b, 3) for b in p.interval()]
    [0.826, 0.945]
    """

    hits: int = 0
    total: int = 0

    def update(self, hit: bool) -> None:
        self.hits += hit
        self.total += 1

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else math.nan

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson score interval (95 % by default); ``(0, 1)`` before any trial."""
        return wilson_interval(self.hits / self.total if self.total else 0.0, self.total, z)
