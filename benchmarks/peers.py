"""Peer query strategies behind streamal's gate interface, so every method runs the same protocol.

Each peer is wrapped as a *gate*: an object with ``decide(proba, x) -> Decision``, which is all
:class:`streamal.core.learner.ActiveLearner` asks of a gate. The peer therefore sees exactly what
streamal's own strategies see, and everything else is shared: the River model (one
:class:`~streamal.core.model.OnlineModel` per run, built by ``make_model("logreg")``), the
test-then-train loop, the label delay and the metrics (:func:`streamal.core.evaluator.prequential`).

How the peers get the model's probabilities without a second model:

* scikit-activeml's stream strategies want a ``SkactivemlClassifier`` with ``predict_proba``.
  :class:`CurrentProba` is one that returns the probabilities the shared River model has just
  given for the current event (the only candidate the strategy is ever shown). It is never
  fitted: the River model learns in the evaluator, exactly as for streamal's strategies.
* ``StreamProbabilisticAL`` also needs ``predict_freq`` (label counts near the candidate). We
  compute it the way scikit-activeml itself does when given ``metric="rbf"``: a Parzen window
  (RBF kernel, scikit-activeml's own "mean" bandwidth rule) over the labelled events, times the
  predicted probabilities. The labelled events are the last :data:`PAL_WINDOW` requests whose
  labels have arrived (the label delay is honoured), in the model's standardised feature space
  (its ``StandardScaler``), so that features with large units (Agrawal's salary) do not swamp the
  kernel.
* River's ``EntropySampler`` wraps a classifier; it gets :class:`_FixedProba`, a stand-in that
  answers ``predict_proba_one`` with the shared model's current probabilities.

Each peer uses its own default budget manager, given the budget ``B``.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np

from streamal.core.budget import FractionBudget
from streamal.core.gate import Decision

__all__ = [
    "PAL_WINDOW",
    "PEERS",
    "AllLabelsGate",
    "EntropySamplerGate",
    "SkactivemlGate",
    "make_peer",
]

#: Labelled events the probabilistic-AL peer's kernel frequency estimate looks at.
PAL_WINDOW = 500

#: Peer name -> scikit-activeml class name (``skactiveml.stream``).
SKACTIVEML = {
    "skal_random": "StreamRandomSampling",
    "skal_periodic": "PeriodicSampling",
    "skal_fixed": "FixedUncertainty",
    "skal_variable": "VariableUncertainty",
    "skal_randvar": "RandomVariableUncertainty",
    "skal_split": "Split",
    "skal_pal": "StreamProbabilisticAL",
}
PEERS = (*SKACTIVEML, "river_entropy", "river_entropy_tuned")


def _vector(x: Mapping[str, float], keys: list[str]) -> np.ndarray:
    return np.array([[x.get(k, 0.0) for k in keys]], dtype=float)


class AllLabelsGate:
    """The all-labels reference: every label is requested (and learned after the delay)."""

    def decide(self, proba: Mapping[Hashable, float], x: Mapping[str, float] | None = None) -> Any:
        return Decision(True, "all", 1.0, 0.0)


class _FixedProba:
    """A River-classifier stand-in that answers with the shared model's current probabilities."""

    def __init__(self) -> None:
        self.proba: dict[Hashable, float] = {}

    def predict_proba_one(self, x: Mapping[str, float], **kwargs: Any) -> dict[Hashable, float]:
        return self.proba


class EntropySamplerGate:
    """River's ``active.EntropySampler``: ask with probability ``entropy ** discount_factor``.

    It has no budget; the benchmark runs it with its default ``discount_factor`` (3) and with one
    tuned so that it spends about ``B``.
    """

    def __init__(self, discount_factor: float | None = None, seed: int | None = None) -> None:
        from river import active

        self._stand_in = _FixedProba()
        kwargs: dict[str, Any] = {}
        if discount_factor is not None:
            kwargs["discount_factor"] = discount_factor
        self.sampler = active.EntropySampler(self._stand_in, seed=seed, **kwargs)

    def decide(self, proba: Mapping[Hashable, float], x: Mapping[str, float] | None = None) -> Any:
        self._stand_in.proba = dict(proba)
        _, ask = self.sampler.predict_proba_one(dict(x or {}))
        return Decision(bool(ask), "peer" if ask else None, 1.0 if ask else 0.0, 0.0)


@functools.cache
def _current_proba_class() -> type:
    """The scikit-activeml classifier class, built lazily (a benchmark-only dependency)."""
    from skactiveml.base import SkactivemlClassifier
    from skactiveml.classifier import ParzenWindowClassifier

    class CurrentProba(SkactivemlClassifier):  # type: ignore[misc]
        """``predict_proba`` = the shared River model's probabilities for the current event."""

        def __init__(self, classes: Any = None, missing_label: Any = np.nan) -> None:
            super().__init__(classes=classes, missing_label=missing_label)
            self.classes_ = np.array(classes)
            self.current = np.full((1, len(classes)), 1.0 / len(classes))
            self.standardised = np.zeros((1, 1))
            self._labelled: np.ndarray | None = None  # ring buffer of labelled events
            self._n = 0
            self._next = 0
            self._gamma = 1.0

        def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CurrentProba:
            raise NotImplementedError("the shared River model learns in the evaluator")

        def predict_proba(self, X: Any, **kwargs: Any) -> np.ndarray:
            return np.repeat(self.current, len(X), axis=0)

        def add_labelled(self, x: np.ndarray) -> None:
            """A labelled event (standardised) for the kernel; refreshes the bandwidth."""
            if self._labelled is None:
                self._labelled = np.zeros((PAL_WINDOW, len(x)))
            self._labelled[self._next] = x
            self._next = (self._next + 1) % PAL_WINDOW
            self._n = min(self._n + 1, PAL_WINDOW)
            data = self._labelled[: self._n]
            if self._n > 1 and np.var(data, axis=0).sum() > 0:
                self._gamma = ParzenWindowClassifier._calculate_mean_gamma(
                    self._n, np.var(data, axis=0), data.shape[1]
                )

        def predict_freq(self, X: Any) -> np.ndarray:
            """Kernel count of labelled events near the candidate, split by predicted proba.

            This is what ``StreamProbabilisticAL(metric="rbf")`` computes with a Parzen window
            over ``(X, y)``; here the labelled events are standardised by the model's scaler.
            """
            if self._labelled is None or not self._n:
                return np.zeros((len(X), self.current.shape[1]))
            data = self._labelled[: self._n]
            d2 = ((data[None, :, :] - self.standardised[:, None, :]) ** 2).sum(axis=2)
            counts = np.exp(-self._gamma * d2).sum(axis=1, keepdims=True)
            return counts * self.current

    return CurrentProba


class SkactivemlGate:
    """A scikit-activeml stream query strategy at budget ``B`` with its default budget manager.

    ``scale`` standardises a feature dict (the model's scaler), for the probabilistic-AL peer's
    kernel; ``label_delay`` is when requested labels become "labelled data" for that kernel.
    """

    def __init__(
        self,
        name: str,
        budget: float,
        seed: int,
        classes: list[Hashable],
        label_delay: int = 0,
        scale: Callable[[Mapping[str, float]], Mapping[str, float]] | None = None,
    ) -> None:
        import skactiveml.stream as stream

        cls = getattr(stream, SKACTIVEML[name])
        self.name = name
        self.classes = list(classes)
        kwargs: dict[str, Any] = {"budget": budget, "random_state": seed}
        if name == "skal_fixed":
            kwargs["classes"] = np.arange(len(classes))
        self.strategy = cls(**kwargs)
        self.needs_clf = name not in ("skal_random", "skal_periodic")
        self.clf = _current_proba_class()(classes=np.arange(len(classes)))
        self.keys: list[str] | None = None
        self.pal = name == "skal_pal"
        self.scale = scale
        self.label_delay = label_delay
        self._i = 0
        self._in_review: deque[tuple[int, Mapping[str, float]]] = deque()
        #: An optional pacing bucket: a query beyond it is not made, and the strategy's budget
        #: manager is told so (``imbalanced_quarters.py``: the peer within 1.25 B per window).
        self.cap: FractionBudget | None = None

    def _within_cap(self, queried: np.ndarray) -> np.ndarray:
        if self.cap is None:
            return queried
        ask = len(queried) > 0 and self.cap.allows()
        self.cap.record(ask)
        return queried if ask else queried[:0]

    def decide(self, proba: Mapping[Hashable, float], x: Mapping[str, float] | None = None) -> Any:
        x = x or {}
        if self.keys is None:
            self.keys = sorted(x)
        candidates = _vector(x, self.keys)
        if self.needs_clf:
            self.clf.current = np.array([[proba.get(c, 0.0) for c in self.classes]])
        if self.pal:
            self._arrive()
            assert self.scale is not None
            self.clf.standardised = _vector(self.scale(x), self.keys)
        if self.pal:  # its budget manager ranks utilities, so update() needs them
            queried, utilities = self.strategy.query(
                candidates, clf=self.clf, return_utilities=True
            )
            queried = self._within_cap(queried)
            self.strategy.update(candidates, queried, {"utilities": utilities})
        elif self.needs_clf:
            queried = self._within_cap(self.strategy.query(candidates, clf=self.clf))
            self.strategy.update(candidates, queried)
        else:
            queried = self._within_cap(self.strategy.query(candidates))
            self.strategy.update(candidates, queried)
        ask = len(queried) > 0
        if ask and self.pal:
            self._in_review.append((self._i, x))
        self._i += 1
        return Decision(ask, "peer" if ask else None, 1.0 if ask else 0.0, 0.0)

    def _arrive(self) -> None:
        """Labels requested ``label_delay + 1`` events ago have arrived (as in the evaluator)."""
        while self._in_review and self._in_review[0][0] + 1 + self.label_delay <= self._i:
            _, x = self._in_review.popleft()
            assert self.scale is not None and self.keys is not None
            self.clf.add_labelled(_vector(self.scale(x), self.keys)[0])


def make_peer(
    name: str,
    budget: float,
    seed: int,
    classes: list[Hashable],
    *,
    label_delay: int = 0,
    scale: Callable[[Mapping[str, float]], Mapping[str, float]] | None = None,
    discount_factor: float | None = None,
) -> Any:
    """The gate of the peer called ``name`` (see :data:`PEERS`)."""
    if name in SKACTIVEML:
        return SkactivemlGate(name, budget, seed, classes, label_delay, scale)
    if name in ("river_entropy", "river_entropy_tuned"):
        return EntropySamplerGate(discount_factor, seed)
    raise ValueError(f"unknown peer {name!r}; choose one of {list(PEERS)}")
