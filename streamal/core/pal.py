"""Probabilistic active learning (PAL): the expected gain in accuracy from labelling near ``x``.

Uncertainty sampling asks "is the model unsure here?"; PAL (Krempl, Kottke & Lemaire, 2015;
multi-class McPAL, Kottke et al., 2016; for streams, Kottke et al., 2015) also asks "how much do
we *know* here?". It looks at the label statistics around the candidate: ``n``, a kernel count of
the labelled events near it, split by the model's class probabilities into counts ``k``. The true
posterior is unknown, so it is integrated out under a Dirichlet with those counts. The utility is
the expected drop in misclassification cost when ``m`` more labels arrive at that spot, best
over ``m = 1 … m_max``, per label. Where no labels are near (``n ≈ 0``), one label teaches a lot
whatever the model believes: that is how PAL finds the rare class of an imbalanced stream, which
entropy on a confident model never does. Where many labels agree, it stops asking.

Both halves are cheap: the gain is closed form (Dirichlet moments, no integration; a handful of
products for two classes), and the kernel count is one BLAS matrix-vector product over a ring
buffer of the last ``window`` labelled events (about 20 µs an event in the service, with the
Kafka client's threads about). The kernel's bandwidth follows the "mean" criterion of
Chaudhuri et al. (2017), as scikit-activeml's Parzen window does, in standardised units.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from streamal.core.measures import Proba

__all__ = ["LabelFrequency", "PALScorer", "expected_cost_reduction"]


def _rising(a: float, n: int) -> float:
    """Rising factorial ``a (a+1) … (a+n-1)``."""
    out = 1.0
    for i in range(n):
        out *= a + i
    return out


def _moment(alpha: Sequence[float], powers: Sequence[int]) -> float:
    """``E[Π p_c^{n_c}]`` for ``p ~ Dirichlet(alpha)``."""
    top = 1.0
    for a, n in zip(alpha, powers, strict=True):
        if n:
            top *= _rising(a, n)
    return top / _rising(sum(alpha), sum(powers))


def _labellings(n_classes: int, m: int) -> list[tuple[tuple[int, ...], float]]:
    """Every count vector of ``m`` hypothetical labels, with its multinomial coefficient."""
    out = []
    for combo in itertools.combinations_with_replacement(range(n_classes), m):
        counts = tuple(combo.count(c) for c in range(n_classes))
        coef = math.factorial(m) / math.prod(math.factorial(c) for c in counts)
        out.append((counts, coef))
    return out


_LABELLINGS: dict[tuple[int, int], list[tuple[tuple[int, ...], float]]] = {}


def expected_cost_reduction(counts: Sequence[float], prior: float = 1e-3, m_max: int = 2) -> float:
    """PAL's utility: the expected misclassification-cost drop per label, best over ``m``.

    ``counts`` are the label counts near the candidate, one per class. Decisions follow the
    counts (the majority class; ties go to the first class); the unknown true posterior is
    ``Dirichlet(counts + prior)``.

    >>> round(expected_cost_reduction([0.0, 0.0]), 3)  # nothing known: one label decides
    0.499
    >>> round(expected_cost_reduction([10.0, 10.0]), 3)  # well known and balanced: little
    0.024
    >>> expected_cost_reduction([30.0, 0.0]) < 0.001  # well known and certain: nothing
    True
    """
    k = len(counts)
    if k == 2:
        return _binary_gain(counts[0], counts[1], prior, m_max)
    alpha = [c + prior for c in counts]
    costs = []
    for m in range(m_max + 1):
        labellings = _LABELLINGS.get((k, m))
        if labellings is None:
            labellings = _LABELLINGS[(k, m)] = _labellings(k, m)
        total = 0.0
        for extra, coef in labellings:
            after = [c + e for c, e in zip(counts, extra, strict=True)]
            decision = after.index(max(after))
            powers = list(extra)
            for y in range(k):  # cost 1 for every true class other than the decision
                if y == decision:
                    continue
                powers[y] += 1
                total += coef * _moment(alpha, powers)
                powers[y] -= 1
        costs.append(total)
    return max(0.0, max((costs[0] - costs[m]) / m for m in range(1, m_max + 1)))


def _binary_gain(c0: float, c1: float, prior: float, m_max: int) -> float:
    """:func:`expected_cost_reduction` for two classes, unrolled (the hot path)."""
    if m_max == 2:
        return _binary_gain_2(c0, c1, prior)
    a0, a1 = c0 + prior, c1 + prior
    s = a0 + a1
    r0, r1, rs = [1.0], [1.0], [1.0]
    for i in range(m_max + 1):
        r0.append(r0[-1] * (a0 + i))
        r1.append(r1[-1] * (a1 + i))
        rs.append(rs[-1] * (s + i))
    best = 0.0
    cost0 = 0.0
    for m in range(m_max + 1):
        total = 0.0
        for j in range(m + 1):  # j of the m hypothetical labels are class 1
            coef = math.comb(m, j)
            if c0 + m - j >= c1 + j:  # decide class 0: costs when the truth is 1
                total += coef * r0[m - j] * r1[j + 1]
            else:
                total += coef * r0[m - j + 1] * r1[j]
        total /= rs[m + 1]
        if m == 0:
            cost0 = total
        else:
            best = max(best, (cost0 - total) / m)
    return best


def _binary_gain_2(c0: float, c1: float, prior: float) -> float:
    """:func:`_binary_gain` at ``m_max = 2`` written out: under 1 µs an event, against ~7 looped.

    ``r0[i]``, ``r1[i]``, ``rs[i]`` are the rising factorials of ``a0``, ``a1`` and their sum;
    the cost of ``m`` more labels sums over ``j`` of them being class 1 (binomial weights).
    """
    a0, a1 = c0 + prior, c1 + prior
    s = a0 + a1
    r01, r11, rs1 = a0, a1, s
    r02, r12, rs2 = r01 * (a0 + 1), r11 * (a1 + 1), rs1 * (s + 1)
    r03, r13, rs3 = r02 * (a0 + 2), r12 * (a1 + 2), rs2 * (s + 2)
    # Decide class 0 when its count is at least class 1's: the cost is then the truth being 1.
    cost0 = (r11 if c0 >= c1 else r01) / rs1
    cost1 = (r01 * r11 if c0 + 1 >= c1 else r02) + (r12 if c0 >= c1 + 1 else r01 * r11)
    cost2 = (
        (r02 * r11 if c0 + 2 >= c1 else r03)
        + 2 * (r01 * r12 if c0 + 1 >= c1 + 1 else r02 * r11)  # as the counts after: ties, 0
        + (r13 if c0 >= c1 + 2 else r01 * r12)
    )
    return max(0.0, cost0 - cost1 / rs2, (cost0 - cost2 / rs3) / 2)


class LabelFrequency:
    """Kernel count of recently labelled events near ``x`` (a Parzen window).

    Distances are in standard deviations of the whole stream (running, with forgetting), so
    that features with large units do not swamp the kernel. A feature missing from an event is
    0, as for one-hot categories. The labelled events are kept raw and scaled at query time, so
    the count follows the stream's scale as it drifts.

    Parameters
    ----------
    window
        Labelled events kept (a ring buffer): older labels stop counting, which lets PAL ask
        again where the concept may have moved.
    half_life
        Events after which an event's weight in the running scale halves.

    Examples
    --------
    >>> freq = LabelFrequency()
    >>> for i in range(100):
    ...     _ = freq.observe({"a": float(i % 10)})
    >>> freq.count({"a": 3.0})
    0.0
    >>> for v in (2.0, 3.0, 3.0, 3.0, 4.0):
    ...     freq.learn_one({"a": v})
    >>> freq.count({"a": 3.0}) > 2.0, freq.count({"a": 9.0}) < 0.01
    (True, True)
    """

    def __init__(self, window: int = 500, half_life: float = 10_000.0) -> None:
        self.window = window
        self.decay = 0.5 ** (1.0 / half_life)
        self.keys: dict[str, int] = {}
        self._weight = 0.0
        self._mean = np.zeros(0)
        self._var = np.zeros(0)
        self._data = np.zeros((window, 0))
        self._centre = np.zeros(0)
        self._design = np.zeros((window, 0))  # see _rebuild and count
        self._sums = np.zeros(0)  # column sums of the design's first _n rows
        self._n = 0
        self._next = 0
        self._gamma = 1.0
        self._since_centre = 0

    def _vector(self, x: Mapping[str, float], grow: bool) -> np.ndarray:
        keys = self.keys
        if grow and not x.keys() <= keys.keys():
            for k in x:
                keys.setdefault(k, len(keys))
            extra = len(keys) - len(self._mean)
            self._mean = np.concatenate([self._mean, np.zeros(extra)])
            self._var = np.concatenate([self._var, np.zeros(extra)])
            self._data = np.hstack([self._data, np.zeros((self.window, extra))])
            self._rebuild()
        # ``keys`` maps each feature to its column in insertion order; a missing one is 0.
        get = x.get
        return np.array([get(k, 0.0) for k in keys], dtype=float)

    def observe(self, x: Mapping[str, float]) -> np.ndarray:
        """Take an event into the running scale; returns its vector."""
        v = self._vector(x, grow=True)
        w = self._weight * self.decay + 1.0
        step = (v - self._mean) / w
        self._mean += step
        # West's weighted update: the old sum of squares decays once (w - 1 = old weight ×
        # decay), the new event adds with weight 1. In place: the arrays are short, so numpy's
        # per-call cost is what counts.
        self._var *= (w - 1.0) / w
        self._var += step * (v - self._mean)
        self._weight = w
        return v

    def learn_one(self, x: Mapping[str, float]) -> None:
        """A labelled event: it counts near itself from now on."""
        v = self._vector(x, grow=True)
        i = self._next
        if self._n == self.window:  # the ring is full: the oldest label leaves
            self._sums -= self._design[i]
        u = v - self._centre
        row = np.concatenate((u * u, u))
        self._data[i] = v
        self._design[i] = row
        self._sums += row
        self._next = (i + 1) % self.window
        self._n = min(self._n + 1, self.window)
        self._since_centre += 1
        scale_sq = self._scale_sq()
        # Re-centre once the mean has moved a standard deviation away from the centre (or a
        # window's worth of labels on: the running sums' rounding does not build up).
        moved = float(np.max((self._mean - self._centre) ** 2 / scale_sq, initial=0.0))
        if moved > 1.0 or self._since_centre >= self.window:
            self._rebuild()
        n = self._n
        if n > 1:
            d = len(u)
            spread = self._sums[:d] / n - (self._sums[d:] / n) ** 2  # per-feature variance
            variance = float((np.maximum(spread, 0.0) / scale_sq).sum())
            if variance > 0:  # the "mean" bandwidth criterion (Chaudhuri et al., 2017)
                self._gamma = (n - 1) * math.log((n - 1) / 2e-12) / (4 * n * variance)

    def _rebuild(self) -> None:
        """Rows ``[(x - c)², x - c]`` of the labelled events, ``c`` the running mean now.

        Centred, the terms of the expanded distance in :meth:`count` stay of the order of the
        scale, so they do not cancel (raw, a timestamp's square would swamp the rest). The
        column sums give the labelled events' variance for the bandwidth. A new label adds its
        row (:meth:`learn_one`); this whole rebuild runs only when the centre moves.
        """
        self._centre = self._mean.copy()
        centred = self._data - self._centre
        self._design = np.hstack([centred * centred, centred])
        self._sums = self._design[: self._n].sum(axis=0)
        self._since_centre = 0

    def _scale_sq(self) -> np.ndarray:
        return np.maximum(self._var, 1e-12)

    def count(self, x: Mapping[str, float], v: np.ndarray | None = None) -> float:
        """Kernel count of labelled events near ``x`` (``v``: its vector, if already made)."""
        if not self._n:
            return 0.0
        if v is None:
            v = self._vector(x, grow=False)
        # The scaled squared distance to each labelled event, Σ (x - v)² / s², expanded
        # around the centre c (x' = x - c, v' = v - c) as Σ x'²/s² - 2 Σ x'·v'/s² + Σ v'²/s²:
        # one matrix-vector product over the rows [x'², x']. Why: numpy's element-wise calls on
        # the whole buffer release the GIL (a BLAS product and calls on short arrays do not),
        # and in the service, with the Kafka client's threads waiting, each release is a
        # hand-over and back (bench, --measure pal: 59 µs per count with three of them, 18
        # with none).
        inv = 1.0 / self._scale_sq()
        u = v - self._centre
        iu = inv * u
        exponent = self._design[: self._n] @ np.concatenate((inv, -2.0 * iu))
        exponent += float(u @ iu)
        exponent *= -self._gamma
        np.minimum(exponent, 0.0, out=exponent)  # d² >= 0: rounding must not count above 1
        return float(np.exp(exponent, out=exponent).sum())

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_sums" not in state:  # a checkpoint from before the design rows
            self._rebuild()


class PALScorer:
    """PAL utility of an event: :func:`expected_cost_reduction` of its label statistics.

    The label counts near ``x`` are the kernel count of labelled events split by the model's
    class probabilities (as scikit-activeml does with an RBF Parzen window), so PAL needs no
    second classifier. The gate feeds it every learned label (``learn_one``).

    Parameters
    ----------
    window
        Labelled events the kernel count looks at.
    prior
        Dirichlet prior per class: small, so that a few labels already say a lot.
    m_max
        Most hypothetical labels looked ahead (2, as in the papers' experiments).

    Examples
    --------
    >>> scorer = PALScorer()
    >>> for i in range(200):
    ...     _ = scorer({True: .5, False: .5}, {"a": float(i % 10)})
    >>> fresh = scorer({True: .9, False: .1}, {"a": 3.0})
    >>> for _ in range(20):
    ...     scorer.learn_one({"a": 3.0}, True)
    >>> scorer({True: .9, False: .1}, {"a": 3.0}) < fresh  # labelled around here already
    True
    """

    name = "pal"

    def __init__(self, window: int = 500, prior: float = 1e-3, m_max: int = 2) -> None:
        self.prior = prior
        self.m_max = m_max
        self.frequency = LabelFrequency(window)

    def __call__(self, proba: Proba, x: Mapping[str, float] | None) -> float:
        n = 0.0
        if x:
            n = self.frequency.count(x, self.frequency.observe(x))
        counts = [n * p for p in proba.values()]
        return expected_cost_reduction(counts, self.prior, self.m_max)

    def observe(self, x: Mapping[str, float] | None) -> None:
        """Take an event into the running scale without scoring it (a scorer that uses PAL
        only part of the time keeps its scale current)."""
        if x:
            self.frequency.observe(x)

    def learn_one(self, x: Mapping[str, float], y: Hashable) -> None:
        if x:
            self.frequency.learn_one(x)
