"""OnlineModel: complete distributions over the configured classes, versions, pickling."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Hashable
from functools import partial
from typing import Any

import pytest

from streamal.core.label_policy import SourceSplit
from streamal.core.model import MODELS, OnlineModel, make_model, takes_weights


class Scripted:
    """A stand-in River classifier that answers what it is told and records what it learns."""

    def __init__(self, answer: dict[Hashable, float]) -> None:
        self.answer = answer
        self.learned: list[tuple[dict[str, float], Hashable, float]] = []

    def predict_proba_one(self, x: dict[str, float]) -> dict[Hashable, float]:
        return dict(self.answer)

    def learn_one(self, x: dict[str, float], y: Hashable, w: float = 1.0) -> None:
        self.learned.append((dict(x), y, w))


def _separable(n: int = 200) -> list[tuple[dict[str, float], bool]]:
    return [({"amount": 1.0 + i % 3, "age": -1.0}, True) for i in range(n // 2)] + [
        ({"amount": -1.0 - i % 3, "age": 1.0}, False) for i in range(n // 2)
    ]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_uniform_before_learning_for_every_kind(kind: str) -> None:
    model = OnlineModel(make_model(kind), classes=[False, True], kind=kind)
    assert model.predict_proba_one({"amount": 3.0}) == {False: 0.5, True: 0.5}
    assert (model.version, model.n_learned, model.positive) == (0, 0, True)


def test_tree_model_that_returns_nothing_is_completed_to_uniform() -> None:
    tree = make_model("hat")
    assert not tree.predict_proba_one({"amount": 1.0})  # River's untrained tree: {}
    model = OnlineModel(tree, classes=["a", "b", "c"])
    proba = model.predict_proba_one({"amount": 1.0})
    assert proba == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_partial_distribution_is_completed_and_renormalised() -> None:
    model = OnlineModel(Scripted({"a": 0.2, "b": 0.6}), classes=["a", "b", "c"])
    assert model.predict_proba_one({}) == pytest.approx({"a": 0.25, "b": 0.75, "c": 0.0})


def test_distribution_over_the_configured_classes_only() -> None:
    # A model that has seen only the positive class says so with one key.
    model = OnlineModel(make_model("hat"), classes=[False, True])
    model.learn_one({"amount": 1.0}, True)
    assert model.predict_proba_one({"amount": 1.0}) == {False: 0.0, True: 1.0}


def test_all_zero_distribution_falls_back_to_uniform() -> None:
    model = OnlineModel(Scripted({"a": 0.0}), classes=["a", "b", "c"])
    assert model.predict_proba_one({}) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_named_binary_classes_reach_the_model_as_booleans() -> None:
    inner = Scripted({False: 0.2, True: 0.8})
    model = OnlineModel(inner, classes=["legit", "fraud"])
    assert model.predict_proba_one({}) == {"legit": 0.2, "fraud": 0.8}
    model.learn_one({"a": 1.0}, "fraud")
    model.learn_one({"a": 2.0}, "legit")
    assert [y for _, y, _ in inner.learned] == [True, False]
    inner.answer = {True: 1.0}  # only the positive class seen so far
    assert model.predict_proba_one({}) == {"legit": 0.0, "fraud": 1.0}


def test_learning_increments_version_and_count_and_moves_the_prediction() -> None:
    model = OnlineModel(make_model("logreg"), classes=[False, True])
    for i, (x, y) in enumerate(_separable(), start=1):
        model.learn_one(x, y)
        assert (model.version, model.n_learned) == (i, i)
    assert model.predict_proba_one({"amount": 2.0, "age": -1.0})[True] > 0.8
    assert model.predict_proba_one({"amount": -2.0, "age": 1.0})[True] < 0.2


def test_weight_is_passed_through_only_when_not_one() -> None:
    inner = Scripted({})
    model = OnlineModel(inner, classes=[False, True])
    model.learn_one({"a": 1.0}, True)
    model.learn_one({"a": 2.0}, False, weight=4.0)
    assert inner.learned == [({"a": 1.0}, True, 1.0), ({"a": 2.0}, False, 4.0)]


def test_named_binary_classes_work_with_logreg() -> None:
    """River's binary LogisticRegression only knows False/True; names must still work."""
    model = OnlineModel(make_model("logreg", n_classes=2), classes=["legit", "fraud"])
    assert model.predict_proba_one({"amount": 1.0}) == {"legit": 0.5, "fraud": 0.5}
    for x, y in _separable():
        model.learn_one(x, "fraud" if y else "legit")
    proba = model.predict_proba_one({"amount": 2.0, "age": -1.0})
    assert set(proba) == {"legit", "fraud"}
    assert model.positive == "fraud"
    assert proba["fraud"] > 0.8
    assert model.predict_proba_one({"amount": -2.0, "age": 1.0})["legit"] > 0.8


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_named_binary_classes_every_kind(kind: str) -> None:
    model = OnlineModel(make_model(kind, n_classes=2), classes=["legit", "fraud"])
    for x, y in _separable():
        model.learn_one(x, "fraud" if y else "legit")
    proba = model.predict_proba_one({"amount": 2.0, "age": -1.0})
    assert set(proba) == {"legit", "fraud"}
    assert sum(proba.values()) == pytest.approx(1.0)


def test_multiclass_logreg_is_one_vs_rest_and_learns_three_classes() -> None:
    model = OnlineModel(make_model("logreg", n_classes=3), classes=["a", "b", "c"], kind="logreg")
    assert type(model.model["OneVsRestClassifier"]).__name__ == "OneVsRestClassifier"
    assert model.predict_proba_one({"x": 1.0}) == pytest.approx({c: 1 / 3 for c in "abc"})
    points = {"a": {"x": 3.0, "y": 0.0}, "b": {"x": -3.0, "y": 0.0}, "c": {"x": 0.0, "y": 3.0}}
    for _ in range(150):
        for label, x in points.items():
            model.learn_one(x, label)
    for label, x in points.items():
        proba = model.predict_proba_one(x)
        assert set(proba) == {"a", "b", "c"}
        assert sum(proba.values()) == pytest.approx(1.0)
        assert max(proba, key=proba.__getitem__) == label


def test_pickle_drops_the_lock_and_round_trips() -> None:
    model = OnlineModel(make_model("logreg"), classes=[False, True], kind="logreg")
    for x, y in _separable(40):
        model.learn_one(x, y)
    state = model.__getstate__()
    assert "lock" not in state
    assert "lock" in model.__dict__  # the live object keeps its lock
    copy = pickle.loads(pickle.dumps(model))
    assert isinstance(copy.lock, type(threading.RLock()))
    assert copy.lock is not model.lock
    assert (copy.version, copy.n_learned, copy.kind) == (40, 40, "logreg")
    assert copy.classes == [False, True]
    x = {"amount": 0.5, "age": 0.2}
    assert copy.predict_proba_one(x) == model.predict_proba_one(x)
    copy.learn_one(x, True)  # the copy is independent and usable
    assert (copy.version, model.version) == (41, 40)


def test_lock_is_held_while_predicting() -> None:
    seen: list[bool] = []

    class Probe(Scripted):
        def predict_proba_one(self, x: dict[str, float]) -> dict[Hashable, float]:
            # Another thread must not get the lock while a prediction is under way.
            result: list[bool] = []
            t = threading.Thread(target=lambda: result.append(model.lock.acquire(blocking=False)))
            t.start()
            t.join()
            seen.extend(result)
            return {}

    model = OnlineModel(Probe({}), classes=[False, True])
    model.predict_proba_one({})
    assert seen == [False]


def test_fewer_than_two_classes_raise() -> None:
    with pytest.raises(ValueError):
        OnlineModel(Scripted({}), classes=[True])


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("logreg", "Pipeline"),
        ("logreg-slow", "Pipeline"),
        ("hat", "HoeffdingAdaptiveTreeClassifier"),
        ("arf", "ARFClassifier"),
        ("gnb", "GaussianNB"),
    ],
)
def test_make_model_kinds(kind: str, name: str) -> None:
    model: Any = make_model(kind)
    assert type(model).__name__ == name
    assert callable(model.learn_one) and callable(model.predict_proba_one)


def test_make_model_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        make_model("svm")
    with pytest.raises(ValueError, match="unknown model 'svm'"):
        make_model("svm", step=0.1)


def test_step_sets_both_the_weights_and_the_intercept_rate_of_the_logistic_kinds() -> None:
    for kind, default in (("logreg", 0.05), ("logreg-slow", 0.005)):
        logistic = make_model(kind)["LogisticRegression"]
        assert logistic.optimizer.learning_rate == default
        logistic = make_model(kind, step=0.2)["LogisticRegression"]
        assert logistic.optimizer.learning_rate == 0.2
        assert logistic.intercept_lr.learning_rate == 0.2


@pytest.mark.parametrize("step", [0.0, -0.1, float("nan")])
def test_a_step_that_is_not_positive_is_refused(step: float) -> None:
    with pytest.raises(ValueError, match="step must be > 0"):
        make_model("logreg", step=step)


@pytest.mark.parametrize("kind", ["hat", "arf", "gnb"])
def test_a_model_without_an_sgd_step_refuses_one(kind: str) -> None:
    with pytest.raises(ValueError, match="no SGD step"):
        make_model(kind, step=0.1)


@pytest.mark.parametrize(
    ("kind", "weighted"),
    [("logreg", True), ("logreg-slow", True), ("hat", True), ("gnb", False), ("arf", False)],
)
def test_which_models_honour_a_sample_weight(kind: str, weighted: bool) -> None:
    assert takes_weights(make_model(kind)) is weighted
    assert takes_weights(SourceSplit(partial(make_model, kind))) is weighted
