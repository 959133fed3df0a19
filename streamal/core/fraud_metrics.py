"""Fraud-team metrics: how many of the cards they review each day are really compromised.

Accuracy says nothing on a stream with 1 % fraud. Fraud teams judge a detector by what their
reviewers find (Le Borgne et al., 2022): each day the ``k`` cards with the highest risk are
reviewed, and **card precision@k** is the share of them that had fraud that day. Cards already
known to be compromised (a fraud label received before the day) are left out, as the team has
blocked them already: for ``memory_days`` after the label, or for good if unset (the handbook's
test week leaves out the frauds known from its training week on: 7 to 13 days of them). Next to
it: the area under the ROC curve and the average precision of the transaction scores, and the
fraud amount on the cards the team reviewed.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from streamal.core.evaluator import average_precision

__all__ = ["DailyCardMetrics", "DayFigures", "auc", "card_precision_at_k"]


def auc(scores: Sequence[float], truth: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count half), by ranks: O(n log n); NaN if a score is NaN
    (it has no rank) or a class is missing.

    >>> auc([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    0.75
    """
    pairs = sorted(zip(scores, truth, strict=True))
    positives = sum(truth)
    negatives = len(pairs) - positives
    if not positives or not negatives or any(math.isnan(s) for s in scores):
        return math.nan
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid_rank = (i + 1 + j) / 2  # average rank of the tied block (1-based)
        rank_sum += mid_rank * sum(1 for _, t in pairs[i:j] if t)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def card_precision_at_k(
    card_scores: dict[Hashable, float],
    fraud_cards: set[Hashable],
    k: int,
    exclude: Iterable[Hashable] = (),
) -> float:
    """Share of the ``k`` riskiest cards (max score of the day) that had fraud that day.

    >>> card_precision_at_k({"a": .9, "b": .8, "c": .1}, {"a", "c"}, k=2)
    0.5
    >>> card_precision_at_k({"a": .9, "b": .8, "c": .1}, {"a", "c"}, k=2, exclude={"a"})
    0.5
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    excluded = set(exclude)
    ranked = sorted(
        (c for c in card_scores if c not in excluded), key=card_scores.__getitem__, reverse=True
    )[:k]
    return sum(1 for c in ranked if c in fraud_cards) / k


@dataclass(slots=True)
class DayFigures:
    """One day's figures."""

    day: str
    transactions: int
    frauds: int
    card_precision_at_k: float
    auc: float
    average_precision: float
    fraud_amount: float
    fraud_amount_caught: float
    labels_requested: int
    labels_learned: int

    def as_dict(self) -> dict[str, Any]:
        return {
            name: (None if isinstance(v, float) and math.isnan(v) else v)
            for name, v in ((f, getattr(self, f)) for f in self.__slots__)
        }


@dataclass
class DailyCardMetrics:
    """Collects scored transactions day by day and closes each day's figures.

    Parameters
    ----------
    k
        Cards the team reviews per day.
    memory_days
        Days after the day a card's fraud label arrived during which the card is left out
        (None: for good). A simulator that keeps its card ids would otherwise, after months,
        leave out most of the cards that get defrauded again.
    exclude_detected
        The day's ``k`` cards that had fraud count as known from the next day on, whether or
        not a label said so: the team reviewed them (the handbook's
        ``remove_detected_compromised_cards``).
    labels_from, detect_from
        First days (ISO) whose received fraud labels, and whose detected cards, make a card
        known (None: every day). The handbook's test week knows the frauds labelled from a
        week before it (its training week's, a chargeback delay later) and the cards detected
        within it.
    """

    k: int = 100
    memory_days: int | None = None
    exclude_detected: bool = True
    labels_from: str | None = None
    detect_from: str | None = None
    days: list[DayFigures] = field(default_factory=list)
    known_compromised: set[Hashable] = field(default_factory=set)
    _known_on: dict[Hashable, int] = field(default_factory=dict)  # card -> day it became known
    _day: str | None = None
    _scores: list[float] = field(default_factory=list)
    _truth: list[bool] = field(default_factory=list)
    _card_max: dict[Hashable, float] = field(default_factory=dict)
    _fraud_cards: set[Hashable] = field(default_factory=set)
    _fraud_amount: dict[Hashable, float] = field(default_factory=dict)
    _requested: int = 0
    _learned: int = 0
    _compromised_today: set[Hashable] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")

    def add(
        self, day: str, card: Hashable, score: float, fraud: bool, amount: float, requested: bool
    ) -> None:
        """One scored transaction (in time order)."""
        if day != self._day:
            self.close()
            self._day = day
        self._scores.append(score)
        self._truth.append(fraud)
        if score > self._card_max.get(card, -math.inf):
            self._card_max[card] = score
        if fraud:
            self._fraud_cards.add(card)
            self._fraud_amount[card] = self._fraud_amount.get(card, 0.0) + amount
        self._requested += requested

    def label_received(self, card: Hashable, fraud: bool) -> None:
        """A label was learned: a fraud makes its card known (excluded from the next days)."""
        self._learned += 1
        if fraud:
            self._compromised_today.add(card)

    def compromised(self, card: Hashable) -> None:
        """A fraud on ``card`` became known, by a label not counted as learned (a duplicate)."""
        self._compromised_today.add(card)

    def close(self) -> None:
        """Finish the current day (called automatically when the day changes)."""
        if self._day is None:
            return
        today = date.fromisoformat(self._day).toordinal()
        if self.memory_days is not None:
            horizon = today - self.memory_days
            for card in [c for c, d in self._known_on.items() if d < horizon]:
                del self._known_on[card]
                self.known_compromised.discard(card)
        reviewed = sorted(
            (c for c in self._card_max if c not in self.known_compromised),
            key=self._card_max.__getitem__,
            reverse=True,
        )[: self.k]
        caught = sum(self._fraud_amount.get(c, 0.0) for c in reviewed)
        self.days.append(
            DayFigures(
                day=self._day,
                transactions=len(self._scores),
                frauds=sum(self._truth),
                card_precision_at_k=card_precision_at_k(
                    self._card_max, self._fraud_cards, self.k, self.known_compromised
                ),
                auc=auc(self._scores, self._truth),
                average_precision=average_precision(self._scores, self._truth),
                fraud_amount=sum(self._fraud_amount.values()),
                fraud_amount_caught=caught,
                labels_requested=self._requested,
                labels_learned=self._learned,
            )
        )
        if self.labels_from is not None and self._day < self.labels_from:
            self._compromised_today = set()
        if self.exclude_detected and (self.detect_from is None or self._day >= self.detect_from):
            # The team reviewed these cards: their frauds are known now.
            self._compromised_today.update(c for c in reviewed if c in self._fraud_cards)
        self.known_compromised |= self._compromised_today
        self._known_on.update(dict.fromkeys(self._compromised_today, today))
        self._compromised_today = set()
        self._day = None
        self._scores, self._truth = [], []
        self._card_max, self._fraud_cards, self._fraud_amount = {}, set(), {}
        self._requested = self._learned = 0
