"""The fraud team's figures of a card stream: card precision@k, fraud recall, AUC and AP by day.

The live run and the offline replays compute them alike, so that their tables compare.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streamal.core.evaluator import Report, average_precision
from streamal.core.fraud_metrics import auc, card_precision_at_k
from streamal.core.learner import LabelResult, Scored
from streamal.core.messages import Label
from streamal.demo.options import CARD, RECENT_DAYS, StreamInfo

__all__ = ["CardDays", "CardRun", "DayResult", "OfflineCards"]


class DayResult(NamedTuple):
    """One simulated day as the fraud team sees it."""

    day: int
    transactions: int
    frauds: int
    #: Cards with fraud that day.
    fraud_cards: int
    #: Of those, the cards not known to be compromised before the day (this run's labels).
    new_fraud_cards: int
    #: Card precision@k: share of the k riskiest cards (known ones left out) that had fraud.
    precision: float
    #: Share of the day's ``new_fraud_cards`` among those k (the fraud the team gets to see).
    recall: float
    requested: int
    #: The best card precision@k any ranking could reach that day.
    best: float


@dataclass(slots=True)
class _Day:
    transactions: int = 0
    frauds: int = 0
    requested: int = 0
    card_max: dict[Hashable, float] = field(default_factory=dict)
    fraud_cards: set[Hashable] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)
    truths: list[bool] = field(default_factory=list)


class CardDays:
    """Card precision@k, fraud recall among the reviewed cards, AUC and AP, by simulated day.

    The definitions are those of ``streamal evaluate``'s card report
    (:class:`~streamal.core.fraud_metrics.DailyCardMetrics`, as the handbook's test week): each
    day the team reviews the ``k`` cards with the highest score that day, leaving out cards known
    to be compromised: a chargeback said so on an earlier day, or the card was among an earlier
    day's ``k`` and had fraud that day (the team reviewed it). Unlike it, scores may come in any
    order (the live scores topic may have several partitions), and it is thread-safe: the live
    display reads while the reader thread writes.

    >>> days = CardDays(k=1)
    >>> days.add(0, "a", 0.9, fraud=True, requested=True)
    >>> days.add(0, "b", 0.2, fraud=False, requested=False)
    >>> days.label("a", fraud=True, day=0, chargeback=False)  # a review: not known by it
    >>> days.add(1, "a", 0.8, fraud=True, requested=False)  # but reviewed on day 0: known
    >>> days.add(1, "b", 0.1, fraud=True, requested=False)
    >>> [(r.precision, r.recall) for r in days.results()]
    [(1.0, 1.0), (1.0, 1.0)]
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self._days: dict[int, _Day] = {}
        self._known: dict[Hashable, int] = {}  # card -> day its first chargeback fraud arrived
        self._lock = threading.Lock()

    def add(self, day: int, card: Hashable, score: float, fraud: bool, requested: bool) -> None:
        """One scored transaction of ``day``."""
        with self._lock:
            d = self._days.get(day)
            if d is None:
                d = self._days[day] = _Day()
            d.transactions += 1
            d.requested += requested
            if score > d.card_max.get(card, -1.0):
                d.card_max[card] = score
            if fraud:
                d.frauds += 1
                d.fraud_cards.add(card)
            d.scores.append(score)
            d.truths.append(fraud)

    def label(self, card: Hashable, fraud: bool, day: int, chargeback: bool = True) -> None:
        """A label arrived while ``day`` was being scored: a chargeback's fraud makes the card
        known from the next day on (a reviewer's fraud does not: the team's own review is the
        day's top ``k``, as in the handbook)."""
        if fraud and chargeback and card is not None:
            with self._lock:
                self._known[card] = min(day, self._known.get(card, day))

    def results(self) -> list[DayResult]:
        """Every day's figures, in order: a day's reviewed cards are known on the next days."""
        with self._lock:
            days = [(day, self._days[day]) for day in sorted(self._days)]
            labelled = dict(self._known)
            figures = [
                (day, dict(d.card_max), set(d.fraud_cards), d.transactions, d.frauds, d.requested)
                for day, d in days
            ]
        k = self.k
        detected: dict[Hashable, int] = {}  # card -> day the team's review found its fraud
        out = []
        for day, cards, fraud_cards, transactions, frauds, requested in figures:
            known = {c for c, at in labelled.items() if at < day}
            known.update(c for c, at in detected.items() if at < day)
            precision = card_precision_at_k(cards, fraud_cards, k, known)
            reviewed = sorted(
                (c for c in cards if c not in known), key=cards.__getitem__, reverse=True
            )[:k]
            eligible = fraud_cards - known
            found = eligible.intersection(reviewed)
            for card in found:
                detected.setdefault(card, day)
            recall = len(found) / len(eligible) if eligible else math.nan
            best = min(k, len(eligible)) / k
            out.append(
                DayResult(
                    day,
                    transactions,
                    frauds,
                    len(fraud_cards),
                    len(eligible),
                    precision,
                    recall,
                    requested,
                    best,
                )
            )
        return out

    def ranking(self, first_day: int) -> tuple[float, float]:
        """AUC and average precision of the transaction scores from ``first_day`` on."""
        with self._lock:
            chosen = [d for day, d in self._days.items() if day >= first_day]
            scores = [s for d in chosen for s in d.scores]
            truths = [t for d in chosen for t in d.truths]
        if not scores:
            return math.nan, math.nan
        return auc(scores, truths), average_precision(scores, truths)


@dataclass
class CardRun:
    """One run's fraud figures, live or offline, for the summary and the plot."""

    report: Report
    days: list[DayResult]
    auc: float
    average_precision: float
    learned: dict[str, int]
    by_reason: dict[str, int]

    @classmethod
    def of(
        cls,
        report: Report,
        cards: CardDays,
        learned: dict[str, int],
        by_reason: dict[str, int],
    ) -> CardRun:
        days = cards.results()
        first = days[-1].day - RECENT_DAYS + 1 if days else 0
        roc, ap = cards.ranking(first)
        return cls(report, days, roc, ap, learned, by_reason)

    def recent(self) -> list[DayResult]:
        return self.days[-RECENT_DAYS:]


class OfflineCards:
    """The hooks that give an offline (:func:`prequential`) run the live run's card figures.

    A label delivered after the stream has ended taught nothing that was measured; chargebacks
    among those are not counted, as the live run never sends them (they are not due yet).
    """

    def __init__(self, info: StreamInfo, k: int) -> None:
        self.info = info
        self.cards = CardDays(k)
        self.learned: Counter[str] = Counter()
        self.ended = False
        self._day = 0
        self._asked: dict[str, Hashable] = {}

    def stream(
        self, pairs: Iterator[tuple[dict[str, Any], bool]]
    ) -> Iterator[tuple[dict[str, Any], bool]]:
        yield from pairs
        self.ended = True

    def on_event(self, event: Mapping[str, Any], truth: Hashable, scored: Scored) -> None:
        self._day = day = self.info.day(float(event["timestamp"]))
        card = event[CARD]
        ask = scored.decision.ask
        self.cards.add(day, card, scored.risk, truth is True, ask)
        if ask:
            self._asked[scored.event_id] = card

    def on_label(self, label: Label, result: LabelResult) -> None:
        asked = self._asked.pop(label.event_id, None)
        card = label.event[CARD] if label.event is not None else asked
        chargeback = label.source == "chargeback"
        # A chargeback makes its card known even when a reviewer had labelled it (a duplicate).
        self.cards.label(card, label.label is True, self._day, chargeback)
        if result.outcome != "learned":
            return
        if not (chargeback and self.ended):
            self.learned["chargeback" if chargeback else "reviewer"] += 1
