"""Learning weights that let a rare class count: the fraud in a 1 %-fraud stream.

An online logistic model learns each label with one gradient step. With 1 % fraud the steps on
legitimate transactions outnumber the fraud steps a hundred to one, so the model learns a new
fraud pattern slowly and predicts fraud rarely. The usual cure in batch learning is class
weights, ``n / (K · n_y)`` for a class with ``n_y`` of ``n`` labels among ``K`` classes
(scikit-learn's ``class_weight="balanced"``). Online, the full weight overshoots: at 1 % fraud
a fraud label weighs 50 and a legitimate one 0.5, one step on a fraud undoes a hundred, and the
model swings. The square root (``power=0.5``) is the compromise that square-root sampling makes
for long-tailed data (Mahajan et al., 2018).

Measured on the benchmark's 1 %-fraud stream (``benchmarks/README.md``, 10 seeds, the weights
given to every method): the default gate's positive-class F1 at B = 5 % rose from 49.8 to 61.0
and its average precision from 46.0 to 62.7; with ``power=1`` F1 fell to 9 and accuracy to 85 %
(3 seeds, the gate of then). It is off unless asked for: where the classes are only mildly
unequal and accuracy is the goal it costs accuracy (Agrawal, 60 / 40: -4 points), and where
every label arrives (the handbook preset's chargebacks) it lowered average precision from 0.674
to 0.603. On the handbook's transactions with only the labels the gate bought, it helped at B =
1 % (``fraud`` with PAL: F1 11.6 -> 14.5) and cost from 5 % on (20 %: 37.8 -> 28.0), so it is
for budgets of about 1 %, and worth measuring on the feed first (``streamal evaluate
--class-balance``).
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["ClassBalance"]


class ClassBalance:
    """Per-class learning weight ``(n / (K · n_y)) ** power`` from the labels learned so far.

    Parameters
    ----------
    power
        0 turns the weighting off (every label weighs 1); 0.5 is the square root of the
        balanced weight; 1 is the full balanced weight.
    max_weight
        Cap on any weight, so that the first label of a class after thousands of the other
        does not take one huge gradient step.

    Examples
    --------
    >>> balance = ClassBalance(power=0.5)
    >>> for _ in range(98):
    ...     balance.learn_one(False)
    >>> balance.learn_one(True)
    >>> balance.learn_one(True)
    >>> round(balance.weight(True), 2), round(balance.weight(False), 2)
    (5.0, 0.71)
    >>> ClassBalance(power=0.0).weight(True)  # off
    1.0
    """

    def __init__(self, power: float = 0.0, max_weight: float = 10.0) -> None:
        if not 0.0 <= power <= 1.0:
            raise ValueError(f"power must be in [0, 1], got {power}")
        if max_weight < 1.0:
            raise ValueError(f"max_weight must be at least 1, got {max_weight}")
        self.power = power
        self.max_weight = max_weight
        #: Labels learned so far, by class (counted whatever the power, so that turning the
        #: weighting on later starts from the real class mix).
        self.counts: dict[Hashable, int] = {}

    def learn_one(self, y: Hashable) -> None:
        """Count one learned label."""
        self.counts[y] = self.counts.get(y, 0) + 1

    def weight(self, y: Hashable) -> float:
        """The learning weight of a label of class ``y`` (1 until two classes have been seen)."""
        n_y = self.counts.get(y, 0)
        if self.power == 0.0 or n_y == 0 or len(self.counts) < 2:
            return 1.0
        balanced = sum(self.counts.values()) / (len(self.counts) * n_y)
        return float(min(self.max_weight, balanced**self.power))  # float ** float is Any to mypy

    def __repr__(self) -> str:
        return f"ClassBalance(power={self.power}, counts={self.counts})"
