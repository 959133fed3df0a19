"""ClassBalance: hand-computed weights, and a rare class that the weights let the model learn."""

from __future__ import annotations

import pytest

from streamal.core.class_balance import ClassBalance
from streamal.core.messages import TransactionSchema, extract_features
from streamal.core.model import OnlineModel, make_model
from streamal.core.synthetic import drifting_transactions


def counted(power: float, labels: dict[bool, int], **kw: float) -> ClassBalance:
    balance = ClassBalance(power, **kw)
    for y, n in labels.items():
        for _ in range(n):
            balance.learn_one(y)
    return balance


def test_hand_computed_weights() -> None:
    # 90 negatives, 10 positives: balanced weights 100/(2*10) = 5 and 100/(2*90) = 0.5556.
    full = counted(1.0, {False: 90, True: 10})
    assert full.weight(True) == pytest.approx(5.0)
    assert full.weight(False) == pytest.approx(100 / 180)
    root = counted(0.5, {False: 90, True: 10})
    assert root.weight(True) == pytest.approx(5.0**0.5)
    assert root.weight(False) == pytest.approx((100 / 180) ** 0.5)


def test_three_classes() -> None:
    balance = counted(1.0, {"a": 1, "b": 2})  # type: ignore[dict-item]
    balance.learn_one("c")
    balance.learn_one("c")
    balance.learn_one("c")  # n = 6, K = 3
    assert [balance.weight(c) for c in "abc"] == pytest.approx([2.0, 1.0, 2 / 3])


def test_off_one_class_and_unseen_class_weigh_one() -> None:
    assert counted(0.0, {False: 90, True: 10}).weight(True) == 1.0
    only_negatives = counted(0.5, {False: 50})
    assert only_negatives.weight(False) == 1.0 and only_negatives.weight(True) == 1.0


def test_the_cap() -> None:
    balance = counted(1.0, {False: 999, True: 1}, max_weight=10.0)
    assert balance.weight(True) == 10.0  # 500 uncapped


@pytest.mark.parametrize("power", [-0.1, 1.5])
def test_power_outside_zero_one_is_refused(power: float) -> None:
    with pytest.raises(ValueError, match="power"):
        ClassBalance(power)


def test_weights_lift_the_rare_class_of_a_one_percent_stream() -> None:
    """All labels of a 1 %-fraud stream, learned with and without the weights: the weighted
    model catches more of the fraud (F1 of the positive class, test-then-train)."""

    def f1(power: float) -> float:
        model = OnlineModel(make_model("logreg"), classes=[False, True])
        balance = ClassBalance(power)
        tp = fp = fn = 0
        schema = TransactionSchema()
        for event, fraud in drifting_transactions(8000, fraud_rate=0.01, seed=5):
            x = extract_features(event, schema)
            proba = model.predict_proba_one(x)
            predicted = proba[True] > proba[False]
            tp += predicted and fraud
            fp += predicted and not fraud
            fn += fraud and not predicted
            balance.learn_one(fraud)
            model.learn_one(x, fraud, balance.weight(fraud))
        return 2 * tp / (2 * tp + fp + fn)

    plain, weighted = f1(0.0), f1(0.5)
    assert weighted > plain + 0.05, (plain, weighted)
