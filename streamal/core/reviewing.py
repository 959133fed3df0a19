"""How a simulated review team answers: capacity, delay and mistakes.

Real analysts are not an oracle: they get through so many cases an hour (the rest are never
looked at), each answer takes a while (minutes to days, skewed: most are quick, a few drag on),
and some answers are wrong. Tests and the demo need those three effects to show what the learner
does with late, missing and noisy labels, so this is the pure policy, on any clock (wall time in
the demo, event time in an offline replay); the Kafka side lives in :mod:`streamal.reviewer`.

* **Capacity:** a token bucket on request times (:class:`~streamal.core.capacity.TokenBucket`,
  as the gate uses), refilled at ``per_hour`` an hour with at most ``burst`` (default one hour's
  worth) banked. A request that finds no token is dropped: an alert nobody has time for is not
  investigated.
* **Delay:** lognormal with the given ``median_delay`` and log-scale spread ``delay_sigma``.
* **Noise:** each answer is flipped with probability ``noise``.

Every request draws its delay and its coin in the same order whether it is accepted or not, so
the same seed and the same request times give the same answers, whatever the capacity.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from streamal.core.capacity import TokenBucket

__all__ = ["Review", "ReviewerModel"]


@dataclass(frozen=True, slots=True)
class Review:
    """An accepted request: when its answer comes and whether the reviewer got it wrong."""

    requested_at: float
    answer_at: float
    flipped: bool

    @property
    def delay(self) -> float:
        """Seconds between the request and the answer."""
        return self.answer_at - self.requested_at

    def label(self, truth: bool) -> bool:
        """The answer the reviewer gives for a case whose true class is ``truth``.

        >>> Review(0.0, 1.0, flipped=True).label(True)
        False
        """
        return truth != self.flipped


class ReviewerModel:
    """A review team: which requests it takes, when it answers, and how often it is wrong.

    Parameters
    ----------
    per_hour
        Cases the team handles an hour; ``None``: unlimited.
    burst
        Cases that can be taken at once after a quiet spell; default one hour's worth.
    median_delay
        Median seconds from request to answer.
    delay_sigma
        Spread of the delay's logarithm (0: every answer takes exactly ``median_delay``).
    noise
        Probability that an answer is wrong.
    seed
        Same seed and request times, same answers.

    Examples
    --------
    >>> team = ReviewerModel(per_hour=2, median_delay=600, delay_sigma=0, seed=1)
    >>> [r if r is None else r.answer_at for r in map(team.review, [0.0, 1.0, 2.0])]
    [600.0, 601.0, None]
    >>> team.review(1800.0).delay  # half an hour later one case more fits
    600.0
    """

    def __init__(
        self,
        per_hour: float | None = None,
        median_delay: float = 3600.0,
        delay_sigma: float = 1.0,
        noise: float = 0.0,
        burst: float | None = None,
        seed: int = 0,
    ) -> None:
        if median_delay < 0 or delay_sigma < 0:
            raise ValueError("median_delay and delay_sigma must be >= 0")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        self.per_hour = per_hour
        self.median_delay = median_delay
        self.delay_sigma = delay_sigma
        self.noise = noise
        self._now = 0.0
        self._bucket = (
            None
            if per_hour is None
            else TokenBucket(
                per_hour, burst if burst is not None else max(1.0, per_hour), self._clock
            )
        )
        self._rng = random.Random(seed)
        #: Requests accepted and dropped so far.
        self.accepted = 0
        self.dropped = 0

    def _clock(self) -> float:
        return self._now

    def review(self, requested_at: float) -> Review | None:
        """The answer to a request made at ``requested_at``, or ``None`` if over capacity."""
        z, coin = self._rng.gauss(0.0, 1.0), self._rng.random()
        self._now = requested_at
        if self._bucket is not None:
            if not self._bucket.allows():
                self.dropped += 1
                return None
            self._bucket.record(True)
        self.accepted += 1
        delay = self.median_delay * math.exp(self.delay_sigma * z)
        return Review(requested_at, requested_at + delay, coin < self.noise)
