"""The service's live fraud figures: the offline definitions, restricted to labelled events."""

from __future__ import annotations

import math
import random

import pytest

from streamal.core.evaluator import average_precision
from streamal.core.fraud_metrics import auc, card_precision_at_k
from streamal.core.fraud_tracker import FraudTracker

DAY = 1_522_540_800.0  # 2018-04-01 00:00 UTC
HOUR = 3600.0


def _tracker(**kwargs: object) -> FraudTracker:
    return FraudTracker(card_field="card", amount_field="amount", time_field="t", **kwargs)  # type: ignore[arg-type]


def _learn(
    t: FraudTracker,
    card: str,
    score: float | None,
    fraud: bool,
    when: float = DAY,
    lane: str = "uncertainty",
    amount: object = 10.0,
    event_id: str | None = None,
) -> float:
    event = {"card": card, "t": when, "amount": amount}
    requested_at = None if score is None else when + 60
    lane = "unrequested" if score is None else lane
    return t.learned(
        event_id or f"{card}-{when}-{random.random()}", lane, fraud, score, event, requested_at
    )


def test_nothing_learned_gives_nan_not_zero() -> None:
    f = _tracker().figures()
    assert math.isnan(f.card_precision_at_k["current"]) and f.reviewed_cards["previous"] == 0
    assert math.isnan(f.alert_precision) and math.isnan(f.card_recall)
    assert math.isnan(f.auc["labeled"]) and math.isnan(f.average_precision["random_lane"])
    assert f.window_labels == {"labeled": 0, "random_lane": 0}


def test_when_every_card_is_labelled_the_figures_are_the_offline_ones() -> None:
    rng = random.Random(3)
    t = _tracker(k=10)
    card_max: dict[str, float] = {}
    frauds: set[str] = set()
    scores, truth = [], []
    for i in range(300):
        card = f"c{rng.randrange(60)}"
        fraud = rng.random() < 0.1
        score = rng.random() * (0.5 + fraud)
        _learn(t, card, score, fraud, when=DAY + i * 60, lane="random")
        card_max[card] = max(score, card_max.get(card, -1.0))
        if fraud:
            frauds.add(card)
        scores.append(score)
        truth.append(fraud)
    f = t.figures()
    assert f.card_precision_at_k["current"] == card_precision_at_k(card_max, frauds, k=10)
    assert f.reviewed_cards["current"] == len(card_max)
    for estimator in ("labeled", "random_lane"):
        assert f.auc[estimator] == auc(scores, truth)
        assert f.average_precision[estimator] == average_precision(scores, truth)
        assert f.window_labels[estimator] == 300


def test_precision_at_k_divides_by_the_cards_labelled_when_fewer_than_k() -> None:
    t = _tracker(k=100)
    _learn(t, "a", 0.9, True)
    _learn(t, "b", 0.5, False)
    assert t.figures().card_precision_at_k["current"] == 0.5


def test_a_card_known_compromised_from_an_earlier_day_is_left_out() -> None:
    t = _tracker(k=2)
    _learn(t, "a", None, True, when=DAY - 2 * 86400)  # a chargeback for a fraud two days ago
    _learn(t, "a", 0.99, True, when=DAY)  # the team blocked card a already
    _learn(t, "b", 0.6, False, when=DAY)
    _learn(t, "c", 0.5, True, when=DAY)
    f = t.figures()
    assert f.reviewed_cards["current"] == 2
    assert f.card_precision_at_k["current"] == 0.5
    # A fraud found the same day is not "known before the day".
    same_day = _tracker(k=1)
    _learn(same_day, "a", 0.9, True, when=DAY + HOUR)
    _learn(same_day, "a", 0.95, True, when=DAY + 2 * HOUR)
    assert same_day.figures().card_precision_at_k["current"] == 1.0


def test_days_roll_over_by_event_time() -> None:
    t = _tracker(k=1)
    _learn(t, "a", 0.9, True, when=DAY + HOUR)
    _learn(t, "b", 0.9, False, when=DAY + 86400 + HOUR)
    f = t.figures()
    assert f.card_precision_at_k == {"current": 0.0, "previous": 1.0}
    _learn(t, "c", 0.9, True, when=DAY + HOUR)  # a late label for the previous day still counts
    assert t.figures().reviewed_cards == {"current": 1, "previous": 2}
    _learn(t, "d", 0.9, True, when=DAY + 3 * 86400)  # two days on: both days dropped
    f = t.figures()
    assert f.reviewed_cards == {"current": 1, "previous": 0}
    assert math.isnan(f.card_precision_at_k["previous"])
    _learn(t, "e", 0.9, True, when=DAY)  # too old for the days reported: ignored there
    assert t.figures().reviewed_cards == {"current": 1, "previous": 0}


def test_an_event_time_far_ahead_of_its_request_uses_the_request_time() -> None:
    t = _tracker(k=1)
    t.learned("x", "exploit", True, 0.9, {"card": "a", "t": DAY + 400 * 86400}, DAY)
    t.learned("y", "exploit", True, 0.9, {"card": "b", "t": "not a time"}, DAY + HOUR)
    _learn(t, "c", 0.8, False, when=DAY + 2 * HOUR)
    assert t.figures().reviewed_cards["current"] == 3


def test_alert_precision_reads_the_exploit_lane_only() -> None:
    t = _tracker()
    _learn(t, "a", 0.9, True, lane="exploit")
    _learn(t, "b", 0.8, False, lane="exploit")
    _learn(t, "c", 0.5, False, lane="exploit")
    _learn(t, "d", 0.5, True, lane="uncertainty")
    assert t.figures().alert_precision == pytest.approx(1 / 3)


def test_recall_is_by_card_over_the_frauds_the_service_learned_of() -> None:
    t = _tracker()
    _learn(t, "a", 0.9, True)  # caught
    _learn(t, "a", None, True)  # its chargeback later: card a was still caught
    _learn(t, "b", None, True)  # missed: only the chargeback told
    _learn(t, "c", 0.4, False)  # no fraud: not in the recall
    assert t.figures().card_recall == 0.5


def test_random_lane_has_its_own_window() -> None:
    t = _tracker(window=4)
    for i in range(3):
        _learn(t, f"r{i}", 0.9 - i / 10, i == 0, lane="random")
    for i in range(10):
        _learn(t, f"u{i}", 0.5, i % 2 == 0, lane="uncertainty")
    f = t.figures()
    assert f.window_labels == {"labeled": 4, "random_lane": 3}
    assert f.auc["random_lane"] == 1.0
    assert f.auc["labeled"] == 0.5  # four tied scores


def test_amounts_are_returned_and_bad_ones_are_zero() -> None:
    t = _tracker()
    assert _learn(t, "a", 0.9, True, amount=12.5) == 12.5
    assert _learn(t, "b", 0.9, True, amount="7") == 7.0
    for bad in (None, True, "abc", float("nan"), -3.0, [1]):
        assert _learn(t, "c", 0.9, True, amount=bad) == 0.0
    assert FraudTracker(amount_field=None).learned("e", "random", True, 0.5, {}, DAY) == 0.0


def test_without_a_card_field_each_transaction_is_a_card() -> None:
    t = FraudTracker(k=2, time_field="t")
    t.learned("e1", "random", True, 0.9, {"t": DAY}, DAY)
    t.learned("e2", "random", False, 0.8, {"t": DAY}, DAY)
    t.learned("e3", "random", True, 0.1, None, DAY)  # no event at all: day by request time
    f = t.figures()
    assert f.reviewed_cards["current"] == 3 and f.card_precision_at_k["current"] == 0.5


def test_figures_are_cached_until_the_next_label() -> None:
    t = _tracker()
    _learn(t, "a", 0.9, True)
    first = t.figures()
    assert t.figures() is first
    _learn(t, "b", 0.1, False)
    assert t.figures() is not first


def test_known_cards_are_bounded() -> None:
    t = _tracker(known_cards=2)
    for card in "abc":
        _learn(t, card, None, True, when=DAY - 86400)
    assert len(t._known) == 2 and "a" not in t._known


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        FraudTracker(k=0)
    with pytest.raises(ValueError):
        FraudTracker(window=0)


def test_an_event_on_the_first_representable_day_does_not_break_the_figures() -> None:
    # Go's zero time, "0001-01-01T00:00:00Z", is a valid event time; the day before it is not
    # a date: learned() raised OverflowError, and once it was "today" every figures() did too.
    t = FraudTracker(k=2, card_field="card")
    zero = {"card": "a", "timestamp": "0001-01-01T00:00:00Z"}
    t.learned("e0", "random", True, 0.5, zero, 1_522_540_800.0)
    f = t.figures()
    assert f.card_precision_at_k["current"] == 1.0
    assert math.isnan(f.card_precision_at_k["previous"])
    t.learned("e1", "random", False, 0.4, {"card": "b", "timestamp": 1_522_540_800.0}, None)
    assert t.figures().card_precision_at_k["current"] == 0.0
