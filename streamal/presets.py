"""Evaluation presets: known datasets with their column roles and their review process.

A preset names which columns are the id, the time, the card, the terminal, the amount and the
label, which are never features (the fraud scenario of a simulator is ground truth, not data),
and how the fraud team works: cards reviewed per day, and chargebacks that bring every fraud's
label some days later. :class:`CardReport` turns a run into the fraud team's daily figures.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from streamal.core.evaluator import average_precision
from streamal.core.fraud_metrics import DailyCardMetrics, auc
from streamal.core.learner import LabelResult, Scored
from streamal.core.messages import Label

__all__ = ["PRESETS", "CardReport", "DayOutOfOrder", "Preset"]


@dataclass(frozen=True)
class Preset:
    """Column roles and review process of a dataset."""

    target: str
    time_column: str
    positive: str
    drop: tuple[str, ...]
    settings: Mapping[str, Any]
    label_delay: str
    chargeback_delay_days: float | None
    cards_per_day: int
    chargeback_negatives: bool = False
    #: Days a card whose fraud became known stays out of card precision@k (None: for good).
    compromised_days: int | None = None


PRESETS: dict[str, Preset] = {
    # The simulated card transactions of the Fraud-Detection Handbook (Le Borgne et al., 2022):
    # raw columns only; streamal computes the card and terminal features from the stream.
    "card-fraud-handbook": Preset(
        target="TX_FRAUD",
        time_column="TX_DATETIME",
        positive="1",
        drop=("TX_TIME_SECONDS", "TX_TIME_DAYS", "TX_FRAUD_SCENARIO"),
        settings={
            "id_field": "TRANSACTION_ID",
            "card_field": "CUSTOMER_ID",
            "terminal_field": "TERMINAL_ID",
            "amount_field": "TX_AMOUNT",
            # 100 reviewed cards a day out of ~9,600 transactions: about 1 %.
            "budget": 0.0105,
            "strategy": "fraud",
            # Every transaction is labelled within a week: a tenth of logreg's step (measured:
            # card precision@100 0.23 -> 0.29 on 2018-08-08..14).
            "model": "logreg-slow",
            "alert_cards_per_day": 100,  # the riskiest 100 cards a day, each once
            "random_share": 0.1,
        },
        label_delay="1h",  # investigators answer the same day
        chargeback_delay_days=7.0,  # and every fraud's label arrives a week later anyway,
        cards_per_day=100,
        chargeback_negatives=True,  # so a week without one says "genuine" (the handbook's view)
    ),
}


class DayOutOfOrder(ValueError):
    """An event of a day already closed: the daily figures need the events in time order."""


def _shift(day: date, days: float) -> str:
    return date.fromordinal(day.toordinal() + math.floor(days)).isoformat()


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


@dataclass
class CardReport:
    """Collects a run's daily fraud figures (card precision@k, AUC, AP, labels used)."""

    k: int
    card_field: str
    amount_field: str
    time_field: str
    positive: Hashable = True
    first: date | None = None
    last: date | None = None
    #: Days a card whose fraud became known is left out of the ranking (None: for good).
    compromised_days: int | None = None
    #: Fraud labels received this many days before ``first`` on make cards known.
    known_before_days: float = 7.0
    daily: DailyCardMetrics = field(init=False)
    _cards: dict[str, Hashable] = field(default_factory=dict)
    _window: dict[str, tuple[list[float], list[bool]]] = field(default_factory=dict)
    _today: str | None = None

    def __post_init__(self) -> None:
        # As the handbook's test week: the cards known compromised are those whose fraud was
        # labelled from a chargeback delay before the window on (its training week's frauds),
        # and those found in the window's daily top k. Known for good, from April on, would
        # leave out most of the cards the simulator defrauds again by August (CP@100 of the
        # handbook's own model: 0.29 -> 0.11).
        first = self.first
        self.daily = DailyCardMetrics(
            k=self.k,
            memory_days=self.compromised_days,
            labels_from=None if first is None else _shift(first, -self.known_before_days),
            detect_from=None if first is None else first.isoformat(),
        )

    def on_event(self, event: Mapping[str, Any], truth: Hashable, scored: Scored) -> None:
        t = event.get(self.time_field)
        if not isinstance(t, int | float):
            return
        day = _day(float(t))
        # A day is closed when the next begins: a late event would open it again as a second
        # entry (three days reported as seven, card precision@k averaged over the pieces).
        if self._today is not None and day < self._today:
            raise DayOutOfOrder(
                f"time {self.time_field!r} goes back to {day} after {self._today} began: the "
                "daily card report needs the events in time order (sort the data by time)"
            )
        self._today = day
        card = event.get(self.card_field)
        fraud = truth == self.positive
        amount = float(event.get(self.amount_field) or 0.0)
        ask = scored.decision.ask
        self.daily.add(day, card, scored.risk, fraud, amount, ask)
        if ask:
            self._cards[scored.event_id] = card
        if self._reported(day):  # only the report window's scores are kept, for AUC and AP
            scores, truths = self._window.setdefault(day, ([], []))
            scores.append(scored.risk)
            truths.append(fraud)

    def _reported(self, day: str) -> bool:
        return (self.first is None or day >= self.first.isoformat()) and (
            self.last is None or day <= self.last.isoformat()
        )

    def on_label(self, label: Label, result: LabelResult) -> None:
        card = (label.event or {}).get(self.card_field, self._cards.pop(label.event_id, None))
        fraud = label.label == self.positive
        # Only chargebacks make a card known here (a duplicate too: a reviewer had it first).
        # The team's review is the day's k riskiest cards (DailyCardMetrics.exclude_detected),
        # as in the handbook; counting the gate's requests as well, other cards, would have the
        # team review up to 2k cards a day.
        known = fraud and label.source == "chargeback"
        if result.outcome == "learned":
            self.daily.label_received(card, known)
        elif known:
            self.daily.compromised(card)

    def document(self) -> dict[str, Any]:
        """The report window's figures (mean daily CP@k; AUC and AP over all its transactions)
        and every day's."""
        self.daily.close()
        days = [d for d in self.daily.days if self._reported(d.day)]
        scores = [s for d in days for s in self._window[d.day][0]]
        truths = [t for d in days for t in self._window[d.day][1]]
        cp = [d.card_precision_at_k for d in days]

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "k": self.k,
            "report_from": days[0].day if days else None,
            "report_to": days[-1].day if days else None,
            "days": len(days),
            "card_precision_at_k": clean(sum(cp) / len(cp)) if cp else None,
            "auc": clean(auc(scores, truths)) if scores else None,
            "average_precision": clean(average_precision(scores, truths)) if scores else None,
            "labels_requested": sum(d.labels_requested for d in days),
            "labels_learned": sum(d.labels_learned for d in days),
            "fraud_amount": sum(d.fraud_amount for d in days),
            "fraud_amount_caught": sum(d.fraud_amount_caught for d in days),
            "per_day": [d.as_dict() for d in days],
        }
