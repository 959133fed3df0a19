"""Fraud-team metrics, computed by hand."""

from __future__ import annotations

import math
import random

import pytest

from streamal.core.fraud_metrics import DailyCardMetrics, auc, card_precision_at_k


def test_auc_by_hand_and_against_pair_counting() -> None:
    assert auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == 0.75
    assert auc([0.5, 0.5], [True, False]) == 0.5  # a tie counts half
    assert math.isnan(auc([0.1, 0.2], [True, True]))
    rng = random.Random(0)
    scores = [round(rng.random(), 2) for _ in range(300)]
    truth = [rng.random() < 0.3 for _ in scores]
    pos = [s for s, t in zip(scores, truth, strict=True) if t]
    neg = [s for s, t in zip(scores, truth, strict=True) if not t]
    pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert auc(scores, truth) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_card_precision_counts_cards_not_transactions() -> None:
    # Card a has three transactions (max score .9), b one: a is ranked once.
    scores = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.1}
    assert card_precision_at_k(scores, {"a", "d"}, k=2) == 0.5
    assert card_precision_at_k(scores, {"a", "d"}, k=4) == 0.5
    assert card_precision_at_k(scores, {"a", "c"}, k=2, exclude={"b"}) == 1.0


def test_daily_metrics_exclude_cards_already_known() -> None:
    metrics = DailyCardMetrics(k=1)
    metrics.add("2018-08-08", "a", 0.9, True, 100.0, requested=True)
    metrics.add("2018-08-08", "b", 0.2, False, 10.0, requested=False)
    metrics.label_received("a", True)  # the team now knows card a
    metrics.add("2018-08-09", "a", 0.95, True, 50.0, requested=False)
    metrics.add("2018-08-09", "c", 0.6, True, 70.0, requested=False)
    metrics.close()
    first, second = metrics.days
    assert (first.card_precision_at_k, first.fraud_amount_caught) == (1.0, 100.0)
    # Day two: card a is excluded, so c is the top card, and it is fraud.
    assert second.card_precision_at_k == 1.0
    assert second.fraud_amount_caught == 70.0
    assert (first.labels_requested, first.labels_learned) == (1, 1)


def test_known_cards_come_back_after_memory_days() -> None:
    metrics = DailyCardMetrics(k=1, memory_days=2, exclude_detected=False)
    metrics.add("2018-08-01", "a", 0.1, False, 1.0, requested=False)
    metrics.label_received("a", True)  # known from 08-02 to 08-03
    for day in ("2018-08-02", "2018-08-03", "2018-08-04"):
        metrics.add(day, "a", 0.9, True, 1.0, requested=False)
        metrics.add(day, "b", 0.5, False, 1.0, requested=False)
    metrics.close()
    assert [d.card_precision_at_k for d in metrics.days] == [0.0, 0.0, 0.0, 1.0]


def test_the_days_detected_cards_are_known_from_the_next_day() -> None:
    # The handbook's remove_detected_compromised_cards: the team reviewed the top card a.
    for detected, expected in ((True, 0.0), (False, 1.0)):
        metrics = DailyCardMetrics(k=1, exclude_detected=detected)
        for day in ("2018-08-01", "2018-08-02"):
            metrics.add(day, "a", 0.9, True, 1.0, requested=False)
            metrics.add(day, "b", 0.5, False, 1.0, requested=False)
        metrics.close()
        assert [d.card_precision_at_k for d in metrics.days] == [1.0, expected]


def test_only_labels_and_detections_from_the_given_days_make_cards_known() -> None:
    # The handbook's test week: labels from a week before it, detections within it.
    metrics = DailyCardMetrics(k=1, labels_from="2018-08-02", detect_from="2018-08-03")
    metrics.add("2018-08-01", "a", 0.9, True, 1.0, requested=False)  # detected too early
    metrics.label_received("b", True)  # received too early
    metrics.add("2018-08-02", "c", 0.1, False, 1.0, requested=False)
    metrics.label_received("c", True)  # counts: c is known from 08-03
    for day in ("2018-08-03", "2018-08-04"):
        metrics.add(day, "a", 0.9, day == "2018-08-03", 1.0, requested=False)
        metrics.add(day, "b", 0.8, True, 1.0, requested=False)
        metrics.add(day, "c", 0.99, False, 1.0, requested=False)
    metrics.close()
    # 08-03: c is left out, a (ranked first) is fraud, detected; 08-04: a and c left out, b not.
    assert [d.card_precision_at_k for d in metrics.days[2:]] == [1.0, 1.0]


def test_auc_of_a_nan_score_is_nan_and_returns() -> None:
    # A NaN is not equal to itself: the tie loop never advanced past it and auc never returned
    # (a scrape of the service's fraud figures would hang on one NaN request score).
    assert math.isnan(auc([math.nan, 0.2, 0.9, 0.1], [True, False, True, False]))
    assert math.isnan(auc([0.3, math.nan], [False, True]))


def test_daily_cards_rank_scores_below_minus_one() -> None:
    # A card's max started from -1.0, so a card whose every score was below -1 (a margin or
    # log-odds score rather than a probability) was never ranked, nor its fraud amount caught.
    m = DailyCardMetrics(k=1)
    m.add("2018-04-01", "a", -2.0, True, 5.0, False)
    m.add("2018-04-01", "b", -3.0, False, 7.0, False)
    m.close()
    (day,) = m.days
    assert (day.card_precision_at_k, day.fraud_amount_caught) == (1.0, 5.0)


@pytest.mark.parametrize("k", [0, -1])
def test_a_k_below_one_is_refused(k: int) -> None:
    # k = 0 divided by zero at the day's close; k = -1 sliced off the last card and reported
    # a negative card precision.
    with pytest.raises(ValueError, match="k"):
        DailyCardMetrics(k=k)
    with pytest.raises(ValueError, match="k"):
        card_precision_at_k({"a": 0.9, "b": 0.1}, {"a"}, k=k)
