"""Live fraud figures from what the service sees: labels joined with their review requests.

``streamal evaluate`` knows every transaction's truth; the service only knows the events someone
labelled. So every figure here covers **labelled events only**, and says which ones:

* *requested* labels (lanes ``uncertainty``, ``random``, ``exploit``) carry the risk score the
  gate saw at request time, so they rank: card precision@k, alert precision, AUC, AP;
* *unrequested* labels (a chargeback that carries its event, never requested) are the frauds the
  gate let through: they count in the fraud recall, but have no request-time score.

Definitions follow :mod:`streamal.core.fraud_metrics` (Le Borgne et al., 2022) where they can:

* **card precision@k** of a day (UTC, by event time): of the ``k`` cards with the highest request
  score among the day's labelled requested cards, the share with a fraud label that day, over
  ``min(k, cards)``; cards whose fraud was already known from an earlier day are left out, as the
  team has blocked them. Kept for the latest day seen and the day before.
* **alert precision**: share of the window's labelled ``exploit`` requests (the alerts) that are
  fraud.
* **fraud recall** (by card): of the cards among the last ``window`` fraud labels (any source),
  the share of which at least one fraudulent transaction had been requested for review.
* **AUC** and **average precision** of the request-time scores over the last ``window`` labelled
  requests: ``labeled`` (all lanes; biased towards the cases the gate picks) and ``random_lane``
  (its own window of random-lane labels, a uniform sample of the stream: unbiased).

Figures are computed on demand (:meth:`FraudTracker.figures`, O(window log window)) and cached
until the next label, so a scrape costs nothing when no label came in.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from streamal.core.evaluator import average_precision
from streamal.core.fraud_metrics import auc
from streamal.core.messages import InvalidMessage, parse_time

__all__ = ["DAYS", "ESTIMATORS", "FraudFigures", "FraudTracker"]

#: The days card precision@k is reported for: the latest day with a labelled request, and the
#: day before (complete once the stream moved on, though late labels may still change it).
DAYS = ("current", "previous")
#: Score-ranking estimators: every labelled request, or the random lane only (unbiased).
ESTIMATORS = ("labeled", "random_lane")
#: A request time this far behind an event's time means the event time is wrong (a clock in the
#: future would otherwise make "today" a day that never ends).
MAX_FUTURE_SECONDS = 86400.0


@dataclass(frozen=True, slots=True)
class FraudFigures:
    """One reading of the live fraud figures (NaN where the labels do not define one)."""

    card_precision_at_k: Mapping[str, float]
    reviewed_cards: Mapping[str, int]
    alert_precision: float
    card_recall: float
    auc: Mapping[str, float]
    average_precision: Mapping[str, float]
    window_labels: Mapping[str, int]


@dataclass(slots=True)
class _Day:
    card_max: dict[Hashable, float] = field(default_factory=dict)
    fraud_cards: set[Hashable] = field(default_factory=set)


class FraudTracker:
    """Fraud figures over the labels the service learned (requested ones with their score).

    Parameters
    ----------
    k
        Cards the team reviews per day (the daily alert capacity).
    window
        Labelled requests the AUC, AP and alert precision cover (the random lane has its own
        window of this size); also the number of fraud labels the recall covers.
    card_field, amount_field, time_field
        Event fields with the card id, the amount and the event time. Without a card field each
        transaction counts as its own card.
    known_cards
        Cards with a known fraud that are remembered (oldest forgotten first).

    Examples
    --------
    >>> t = FraudTracker(k=2, card_field="card", time_field="t")
    >>> day = 1_522_540_800.0  # 2018-04-01 00:00 UTC
    >>> for i, (card, score, fraud) in enumerate([("a", .9, True), ("b", .8, False),
    ...                                           ("c", .2, True)]):
    ...     _ = t.learned(f"e{i}", "exploit", fraud, score, {"card": card, "t": day}, day)
    >>> _ = t.learned("e9", "unrequested", True, None, {"card": "d", "t": day}, None)
    >>> f = t.figures()
    >>> f.card_precision_at_k["current"], f.reviewed_cards["current"], f.alert_precision
    (0.5, 3, 0.6666666666666666)
    >>> f.card_recall, f.auc["labeled"]
    (0.6666666666666666, 0.5)
    """

    def __init__(
        self,
        k: int = 100,
        window: int = 10_000,
        card_field: str | None = None,
        amount_field: str | None = "amount",
        time_field: str | None = "timestamp",
        known_cards: int = 100_000,
    ) -> None:
        if k < 1 or window < 1:
            raise ValueError("k and window must be at least 1")
        self.k = k
        self.window = window
        self.card_field = card_field
        self.amount_field = amount_field
        self.time_field = time_field
        self.known_cards = known_cards
        # (score, fraud, is an alert) of labelled requests; (score, fraud) of the random lane;
        # (card, requested) of fraud labels.
        self._labelled: deque[tuple[float, bool, bool]] = deque(maxlen=window)
        self._random: deque[tuple[float, bool]] = deque(maxlen=window)
        self._frauds: deque[tuple[Hashable, bool]] = deque(maxlen=window)
        self._days: dict[date, _Day] = {}
        self._current: date | None = None
        self._known: OrderedDict[Hashable, date] = OrderedDict()  # card -> day of its first fraud
        self._version = 0
        self._cached: tuple[int, FraudFigures] | None = None

    def learned(
        self,
        event_id: str,
        lane: str,
        fraud: bool,
        score: float | None,
        event: Mapping[str, Any] | None,
        requested_at: float | None,
    ) -> float:
        """One learned label of ``lane`` (``unrequested`` when nobody asked for it) with the risk
        score at request time, where known. Returns the event's amount (0 when it has none)."""
        event = event or {}
        card = self._card(event_id, event)
        day = self._day(event, requested_at)
        requested = lane != "unrequested"
        if requested and score is not None:
            self._labelled.append((score, fraud, lane == "exploit"))
            if lane == "random":
                self._random.append((score, fraud))
            if day is not None:
                self._rank(card, day, score, fraud)
        if fraud:
            self._frauds.append((card, requested))
            if day is not None:
                self._remember(card, day)
        self._version += 1
        return self._amount(event)

    def figures(self) -> FraudFigures:
        """The figures now (cached until the next label)."""
        if self._cached is not None and self._cached[0] == self._version:
            return self._cached[1]
        precision: dict[str, float] = {}
        cards: dict[str, int] = {}
        for name, day in zip(DAYS, self._reported_days(), strict=True):
            d = self._days.get(day) if day is not None else None
            precision[name], cards[name] = self._precision_at_k(d)
        alerts = [fraud for _, fraud, alert in self._labelled if alert]
        recall: dict[Hashable, bool] = {}
        for card, requested in self._frauds:
            recall[card] = recall.get(card, False) or requested
        samples = {"labeled": [(s, f) for s, f, _ in self._labelled], "random_lane": self._random}
        figures = FraudFigures(
            card_precision_at_k=precision,
            reviewed_cards=cards,
            alert_precision=_share(alerts),
            card_recall=_share(list(recall.values())),
            auc={name: _ranked(auc, pairs) for name, pairs in samples.items()},
            average_precision={
                name: _ranked(average_precision, pairs) for name, pairs in samples.items()
            },
            window_labels={name: len(pairs) for name, pairs in samples.items()},
        )
        self._cached = (self._version, figures)
        return figures

    # ------------------------------------------------------------------ internals

    def _card(self, event_id: str, event: Mapping[str, Any]) -> Hashable:
        if self.card_field is None:
            return event_id
        card = event.get(self.card_field)
        return card if isinstance(card, Hashable) and card is not None else event_id

    def _amount(self, event: Mapping[str, Any]) -> float:
        value = event.get(self.amount_field) if self.amount_field else None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return 0.0
        try:
            amount = float(value)
        except (ValueError, OverflowError):
            return 0.0
        return amount if math.isfinite(amount) and amount > 0 else 0.0

    def _day(self, event: Mapping[str, Any], requested_at: float | None) -> date | None:
        """The event's UTC day by its own time, else by its request time."""
        ts: float | None = None
        if self.time_field:
            try:
                ts = parse_time(event.get(self.time_field))
            except InvalidMessage:
                ts = None
        if ts is None or (requested_at is not None and ts > requested_at + MAX_FUTURE_SECONDS):
            ts = requested_at
        return None if ts is None else datetime.fromtimestamp(ts, UTC).date()

    def _rank(self, card: Hashable, day: date, score: float, fraud: bool) -> None:
        current = self._current
        if current is None or day > current:
            self._current = current = day
            self._days = {d: v for d, v in self._days.items() if d >= _before(current)}
        if day < _before(current):
            return  # too late for the days reported
        known = self._known.get(card)
        if known is not None and known < day:
            return  # the team knew this card was compromised before the day
        d = self._days.setdefault(day, _Day())
        if score > d.card_max.get(card, -math.inf):
            d.card_max[card] = score
        if fraud:
            d.fraud_cards.add(card)

    def _remember(self, card: Hashable, day: date) -> None:
        known = self._known.get(card)
        if known is None or day < known:
            self._known[card] = day
        self._known.move_to_end(card)
        while len(self._known) > self.known_cards:
            self._known.popitem(last=False)

    def _reported_days(self) -> tuple[date | None, date | None]:
        if self._current is None:
            return None, None
        current = self._current
        return current, (None if current == date.min else current - timedelta(1))

    def _precision_at_k(self, d: _Day | None) -> tuple[float, int]:
        if d is None or not d.card_max:
            return math.nan, 0
        top = sorted(d.card_max, key=d.card_max.__getitem__, reverse=True)[: self.k]
        return sum(1 for c in top if c in d.fraud_cards) / len(top), len(d.card_max)


def _before(day: date) -> date:
    """The day before ``day``; ``date.min`` for itself (year 1's first day, Go's zero time, is
    a valid event day with no day before it)."""
    return day - timedelta(1) if day > date.min else day


def _share(hits: list[bool]) -> float:
    return sum(hits) / len(hits) if hits else math.nan


def _ranked(
    measure: Callable[[list[float], list[bool]], float], pairs: Iterable[tuple[float, bool]]
) -> float:
    scores: list[float] = []
    truth: list[bool] = []
    for score, fraud in pairs:
        scores.append(score)
        truth.append(fraud)
    return measure(scores, truth) if scores else math.nan
