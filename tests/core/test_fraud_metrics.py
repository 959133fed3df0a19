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
