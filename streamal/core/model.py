"""The online model: a River classifier behind a lock, with a version and fixed classes.

The events loop reads the model and the labels loop writes it, from different threads. Every
read and write takes the same lock, so a prediction never sees a half-applied update, and the
version counter says exactly which state produced a score.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from river import forest, linear_model, multiclass, naive_bayes, optim, preprocessing, tree

from streamal.core.label_policy import SourceSplit

__all__ = ["MODELS", "OnlineModel", "make_model", "takes_weights"]

Features = Mapping[str, float]


def _logreg(n_classes: int, seed: int | None, step: float = 0.05) -> Any:
    # River's default step (0.01) needs thousands of labels; a budget buys a few hundred a day.
    # 0.05 learned the rare class from 2 % of a drifting stream where 0.01 never did (measured
    # with streamal.core.evaluator on streamal.core.synthetic, 20k events).
    # The intercept learns at the same rate: left at River's 0.01 it could not follow the
    # class balance of actively chosen labels (benchmark: imbalanced-stream F1 with every label
    # 31 % -> 56 %, SEA at a 1 % budget 85 % -> 94 %).
    model: Any = linear_model.LogisticRegression(
        optimizer=optim.SGD(step), intercept_lr=optim.schedulers.Constant(step)
    )
    if n_classes > 2:
        model = multiclass.OneVsRestClassifier(model)
    return preprocessing.StandardScaler() | model


MODELS: dict[str, str] = {
    "logreg": "StandardScaler | LogisticRegression (one-vs-rest beyond two classes)",
    "logreg-slow": "logreg with a tenth of the step, for streams where every event gets a label",
    "hat": "Hoeffding adaptive tree",
    "arf": "Adaptive random forest (10 trees)",
    "gnb": "Gaussian naive Bayes",
}


def make_model(
    kind: str = "logreg", n_classes: int = 2, seed: int | None = 42, *, step: float | None = None
) -> Any:
    """Build a fresh River classifier by short name (see :data:`MODELS`).

    ``step`` replaces the SGD step of the logistic kinds (a benchmark asks what the step is
    worth for every method alike); the other kinds refuse it rather than ignore it.

    >>> type(make_model("logreg")).__name__, type(make_model("hat")).__name__
    ('Pipeline', 'HoeffdingAdaptiveTreeClassifier')
    >>> make_model("logreg", step=0.2)["LogisticRegression"].optimizer.learning_rate
    0.2
    """
    if step is not None and not step > 0.0:
        raise ValueError(f"step must be > 0, got {step}")
    if kind == "logreg":
        return _logreg(n_classes, seed, step=0.05 if step is None else step)
    if kind == "logreg-slow":
        # With every transaction labelled (chargebacks: ~10k labels a day on the handbook's
        # data, 0.8 % fraud) a step of 0.05 makes the weights follow the last few hundred labels;
        # 0.005 averages over ten times more. Handbook, 2018-08-08..14: card precision@100
        # 0.23 -> 0.29, AUC 0.78 -> 0.89 (the handbook's protocol; 0.002 gave the same).
        return _logreg(n_classes, seed, step=0.005 if step is None else step)
    if step is not None and kind in MODELS:
        raise ValueError(f"model {kind!r} has no SGD step; only the logreg kinds take one")
    if kind == "hat":
        return tree.HoeffdingAdaptiveTreeClassifier(seed=seed)
    if kind == "arf":
        return forest.ARFClassifier(n_models=10, seed=seed)
    if kind == "gnb":
        return naive_bayes.GaussianNB()  # type: ignore[no-untyped-call]
    raise ValueError(f"unknown model {kind!r}; choose one of {sorted(MODELS)}")


def takes_weights(model: Any) -> bool:
    """Whether ``model.learn_one`` honours a sample weight ``w``.

    Learning weights (per label source, per class) need it. River's ``GaussianNB`` refuses
    ``w`` and ``ARFClassifier`` swallows it (each tree learns with its own Poisson weight), so
    only an explicit ``w`` parameter counts; a pipeline is asked for its last step, a
    :class:`SourceSplit` for the model it builds.

    >>> takes_weights(make_model("logreg")), takes_weights(make_model("gnb"))
    (True, False)
    """
    if isinstance(model, SourceSplit):
        model = model.factory()
    steps = getattr(model, "steps", None)
    if isinstance(steps, Mapping) and steps:
        model = list(steps.values())[-1]
    learn = getattr(model, "learn_one", None)
    return learn is not None and "w" in inspect.signature(learn).parameters


class OnlineModel:
    """A River classifier shared between the events and labels loops.

    Parameters
    ----------
    model
        Any River classifier (``learn_one`` / ``predict_proba_one``).
    classes
        The classes the service accepts, positive (risk) class last for binary problems.
        Predictions are completed over these classes, so a model that has seen nothing still
        returns a proper distribution (uniform).
    kind
        Short name, reported by the API.

    Examples
    --------
    >>> m = OnlineModel(make_model("logreg"), classes=[False, True])
    >>> m.predict_proba_one({"amount": 1.0})
    {False: 0.5, True: 0.5}
    >>> m.learn_one({"amount": 1.0}, True)
    >>> m.version, m.n_learned
    (1, 1)
    >>> m.predict_proba_one({"amount": 1.0})[True] > 0.5
    True
    """

    def __init__(self, model: Any, classes: Sequence[Hashable], kind: str = "custom") -> None:
        if len(classes) < 2:
            raise ValueError("a classifier needs at least two classes")
        self.model = model
        self.classes = list(classes)
        self.kind = kind
        self.version = 0
        self.n_learned = 0
        self.lock = threading.RLock()
        self._uniform = {c: 1.0 / len(self.classes) for c in self.classes}
        # River's binary LogisticRegression knows only False/True: it cannot learn "legit" or
        # "fraud" and answers with False/True keys. Named binary classes are therefore passed to
        # the model as False/True (negative first) and translated back.
        self._as_bool: dict[Hashable, bool] | None = None
        if len(self.classes) == 2 and self.classes != [False, True]:
            self._as_bool = {self.classes[0]: False, self.classes[1]: True}

    @property
    def positive(self) -> Hashable:
        """The class whose probability is the risk score (the last class)."""
        return self.classes[-1]

    def predict_proba_one(self, x: Features) -> dict[Hashable, float]:
        with self.lock:
            proba = self.model.predict_proba_one(x)
        if self._as_bool is not None and proba:
            proba = {c: proba.get(b, 0.0) for c, b in self._as_bool.items()}
        if not proba:
            return dict(self._uniform)
        if len(proba) == len(self.classes):
            return dict(proba)
        total = sum(proba.get(c, 0.0) for c in self.classes)
        if total <= 0.0:
            return dict(self._uniform)
        return {c: proba.get(c, 0.0) / total for c in self.classes}

    def learn_one(
        self, x: Features, y: Hashable, weight: float = 1.0, source: str | None = None
    ) -> None:
        """Learn one label; ``source`` routes it where the model keeps sources apart."""
        if self._as_bool is not None:
            y = self._as_bool[y]
        with self.lock:
            if isinstance(self.model, SourceSplit):
                self.model.learn_one(x, y, source=source or "reviewer", w=weight)
            elif weight == 1.0:
                self.model.learn_one(x, y)
            else:
                self.model.learn_one(x, y, w=weight)
            self.version += 1
            self.n_learned += 1

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = threading.RLock()
