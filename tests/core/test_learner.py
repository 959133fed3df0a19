"""ActiveLearner: score opens review requests, learn joins labels with them exactly once."""

from __future__ import annotations

from collections.abc import Hashable

import pytest

from streamal.core.budget import WindowBudget
from streamal.core.class_balance import ClassBalance
from streamal.core.evaluator import StreamClock
from streamal.core.gate import Gate
from streamal.core.learner import UNREQUESTED, ActiveLearner
from streamal.core.messages import Label, Transaction, TransactionSchema
from streamal.core.model import OnlineModel, make_model
from streamal.core.pending import PendingStore


class Recorder:
    """A stand-in River model: fixed answer, remembers every learn step."""

    def __init__(self, answer: dict[Hashable, float]) -> None:
        self.answer = answer
        self.learned: list[tuple[dict[str, float], Hashable]] = []

    def predict_proba_one(self, x: dict[str, float]) -> dict[Hashable, float]:
        return dict(self.answer)

    def learn_one(self, x: dict[str, float], y: Hashable) -> None:
        self.learned.append((dict(x), y))


def always_random() -> Gate:
    """Every event is requested, by the random lane."""
    return Gate(WindowBudget(1.0, 10), random_share=1.0, seed=0)


def always_uncertain() -> Gate:
    """Every event is requested, by the uncertainty lane (threshold 0)."""
    return Gate(WindowBudget(1.0, 10), random_share=0.0, initial_threshold=0.0, seed=0)


def never() -> Gate:
    """A budget already spent for the whole window: nothing is requested."""
    budget = WindowBudget(0.01, 100)
    budget.record(True)
    return Gate(budget, random_share=0.5, seed=0)


def txn(event_id: str, **features: float) -> Transaction:
    event = {"event_id": event_id, **features}
    return Transaction(event_id, None, dict(features), event)


def learner(
    gate: Gate, answer: dict[Hashable, float] | None = None, **kw: object
) -> tuple[ActiveLearner, Recorder, StreamClock]:
    inner = Recorder(answer if answer is not None else {False: 0.7, True: 0.3})
    clock = StreamClock(1000.0)
    model = OnlineModel(inner, classes=[False, True])
    return ActiveLearner(model, gate, clock=clock, **kw), inner, clock  # type: ignore[arg-type]


def test_score_opens_a_pending_item_when_the_gate_asks() -> None:
    al, _, clock = learner(always_random())
    scored = al.score(txn("e1", amount=5.0))
    assert scored.event_id == "e1"
    assert scored.proba == {False: 0.7, True: 0.3}
    assert scored.risk == 0.3 and scored.predicted is False and scored.model_version == 0
    assert scored.decision.ask and scored.decision.reason == "random"
    [item] = al.pending.snapshot()
    assert item.event_id == "e1"
    assert item.features == {"amount": 5.0}
    assert item.proba == {False: 0.7, True: 0.3} and item.predicted is False
    assert item.reason == "random" and item.probability == pytest.approx(1.0)
    assert item.model_version == 0 and item.requested_at == clock.now
    assert item.event == {"event_id": "e1", "amount": 5.0}


def test_keep_event_false_stores_no_event() -> None:
    al, _, _ = learner(always_random())
    al.score(txn("e1", amount=5.0), keep_event=False)
    assert al.pending.snapshot()[0].event is None


def test_no_request_no_pending_item() -> None:
    al, _, _ = learner(never())
    for i in range(20):
        scored = al.score(txn(f"e{i}", amount=float(i)))
        assert not scored.decision.ask
    assert len(al.pending) == 0


def test_learn_a_requested_label() -> None:
    al, inner, clock = learner(always_uncertain())
    al.score(txn("e1", amount=5.0))
    clock.now += 42.5
    result = al.learn(Label("e1", True, "reviewer"))
    assert result.outcome == "learned"
    assert result.lane == "uncertainty"
    assert (result.predicted, result.actual) == (False, True)
    assert result.delay == pytest.approx(42.5)
    assert inner.learned == [({"amount": 5.0}, True)]
    assert (al.model.version, al.model.n_learned) == (1, 1)
    assert len(al.pending) == 0


def test_learns_scoring_time_features_even_if_the_label_carries_an_event() -> None:
    al, inner, _ = learner(always_random())
    al.score(txn("e1", amount=5.0))
    result = al.learn(Label("e1", True, event={"event_id": "e1", "amount": 999.0}))
    assert result.lane == "random"
    assert inner.learned == [({"amount": 5.0}, True)]


def test_duplicate_label_is_not_learned_twice() -> None:
    al, inner, _ = learner(always_random())
    al.score(txn("e1", amount=1.0))
    assert al.learn(Label("e1", True)).outcome == "learned"
    again = al.learn(Label("e1", False))
    assert again.outcome == "duplicate" and again.actual is False and again.lane is None
    with_event = al.learn(Label("e1", True, event={"event_id": "e1", "amount": 1.0}))
    assert with_event.outcome == "duplicate"
    assert len(inner.learned) == 1 and al.model.n_learned == 1


def test_orphan_label_is_not_learned() -> None:
    al, inner, _ = learner(always_random())
    result = al.learn(Label("never-seen", True))
    assert result.outcome == "orphan" and result.actual is True
    assert inner.learned == [] and al.model.version == 0
    # An orphan is not remembered: a later label that carries its event is still learned.
    assert al.learn(Label("never-seen", True, event={"amount": 1.0})).outcome == "learned"


def test_expired_request_makes_its_label_an_orphan() -> None:
    al, inner, clock = learner(always_random(), pending=PendingStore(ttl_seconds=60.0))
    al.score(txn("e1", amount=1.0))
    clock.now += 61.0
    assert al.pending.expire(clock.now) == 1
    assert al.learn(Label("e1", True)).outcome == "orphan"
    assert inner.learned == []


def test_label_with_its_event_is_learned_unrequested() -> None:
    schema = TransactionSchema(exclude=frozenset({"is_fraud"}))
    al, inner, _ = learner(never(), answer={False: 0.2, True: 0.8}, schema=schema)
    event = {"event_id": "c1", "timestamp": 5, "amount": 3, "mcc": "x", "is_fraud": 1}
    result = al.learn(Label("c1", False, "chargeback", event=event))
    assert result.outcome == "learned" and result.lane == UNREQUESTED == "unrequested"
    assert (result.predicted, result.actual, result.delay) == (True, False, None)
    assert inner.learned == [({"amount": 3.0, "mcc=x": 1.0}, False)]
    assert al.learn(Label("c1", False, "chargeback", event=event)).outcome == "duplicate"
    assert al.model.n_learned == 1
    assert al.accuracy[UNREQUESTED].total == 1 and al.accuracy[UNREQUESTED].hits == 0


def test_accuracy_is_tracked_per_lane() -> None:
    al, _, _ = learner(always_random())  # always predicts False (0.7)
    for i, truth in enumerate([False, False, True, False]):
        al.score(txn(f"r{i}", amount=1.0))
        al.learn(Label(f"r{i}", truth))
    al.gate = always_uncertain()
    for i, truth in enumerate([True, True]):
        al.score(txn(f"u{i}", amount=1.0))
        al.learn(Label(f"u{i}", truth))
    al.learn(Label("orphan", True))
    assert set(al.accuracy) == {"random", "uncertainty"}
    assert (al.accuracy["random"].hits, al.accuracy["random"].total) == (3, 4)
    assert al.accuracy["random"].value == 0.75
    assert (al.accuracy["uncertainty"].hits, al.accuracy["uncertainty"].total) == (0, 2)


def test_real_model_learns_from_labels() -> None:
    model = OnlineModel(make_model("logreg"), classes=[False, True])
    al = ActiveLearner(model, always_random(), clock=StreamClock(1000.0))
    for i in range(200):
        amount = 3.0 if i % 2 else -3.0
        scored = al.score(txn(f"e{i}", amount=amount))
        assert scored.model_version == al.model.version
        al.learn(Label(f"e{i}", i % 2 == 1))
    assert al.model.n_learned == 200
    assert al.score(txn("x1", amount=3.0)).predicted is True
    assert al.score(txn("x2", amount=-3.0)).predicted is False
    assert al.accuracy["random"].value > 0.9


class WeightRecorder(Recorder):
    """Also remembers the weight of every learn step (1 when none is given)."""

    def __init__(self, answer: dict[Hashable, float]) -> None:
        super().__init__(answer)
        self.weights: list[float] = []

    def learn_one(self, x: dict[str, float], y: Hashable, w: float = 1.0) -> None:
        super().learn_one(x, y)
        self.weights.append(w)


def test_class_balance_and_source_weight_multiply() -> None:
    inner = WeightRecorder({False: 0.7, True: 0.3})
    al = ActiveLearner(
        OnlineModel(inner, classes=[False, True]),
        always_random(),
        class_balance=ClassBalance(power=1.0),
        source_weights={"chargeback": 0.5},
    )
    truths = [False, False, False, True]
    for i, truth in enumerate(truths):
        al.score(txn(f"e{i}", amount=1.0))
        al.learn(Label(f"e{i}", truth, "chargeback"))
    al.learn(Label("orphan", True, "chargeback"))  # not learned, so not counted
    assert al.class_balance.counts == {False: 3, True: 1}
    # 1 until both classes are seen; then the positive weighs 4 / (2 * 1) = 2, times 0.5.
    assert inner.weights == [0.5, 0.5, 0.5, pytest.approx(1.0)]
    event = {"event_id": "c1", "amount": 2.0}
    al.learn(Label("c1", False, "reviewer", event=event))  # unrequested labels count too
    assert al.class_balance.counts == {False: 4, True: 1}
    assert inner.weights[-1] == pytest.approx(5 / 8)
