"""The gate: for each scored event, ask for a label or not, and say why.

Three lanes share one budget, tried in this order:

* ``random`` spends a small share of the budget uniformly at random. Its labels are an unbiased
  sample of the stream, the only honest way to estimate accuracy once the other lanes choose
  the hard cases.
* ``uncertainty`` asks when the uncertainty measure reaches a *variable threshold* (Žliobaitė et
  al., 2014): the threshold rises after each request and falls after each event that was not
  requested, with steps sized so that they balance when the lane spends its share of the budget.
  A confident model therefore never stops asking: after drift the threshold keeps falling until
  labels flow again.
* the budget itself (a :class:`~streamal.core.budget.Budget`) has the last word.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from streamal.core.budget import Budget, WindowBudget
from streamal.core.measures import MEASURES, Proba

__all__ = ["Decision", "Gate", "NO"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer for one event.

    ``probability`` is the chance that this event would be requested by its lane, given what the
    gate knew; the random lane's inverse gives importance weights for unbiased estimates.
    """

    ask: bool
    reason: str | None
    probability: float
    uncertainty: float


NO = Decision(ask=False, reason=None, probability=0.0, uncertainty=0.0)


class Gate:
    """Budgeted uncertainty gate with a random lane.

    Parameters
    ----------
    budget
        The budget manager; defaults to 2 % of events over a window of 1,000.
    measure
        ``least_confidence``, ``margin`` or ``entropy``.
    random_share
        Share of the budget spent uniformly at random (the unbiased lane).
    step
        Relative threshold change after a request (Žliobaitė's ``s``).
    initial_threshold
        Starting uncertainty threshold, in ``[0, 1]``.
    n_classes
        Number of classes, to normalise the measure.
    seed
        Seed of the gate's own random generator: the same seed and stream give the same requests.

    Examples
    --------
    >>> gate = Gate(WindowBudget(fraction=0.1, window=100), random_share=0.0, seed=1)
    >>> asked = sum(gate.decide({True: .45, False: .55}).ask for _ in range(1000))
    >>> 90 <= asked <= 100
    True
    """

    def __init__(
        self,
        budget: Budget | None = None,
        measure: str = "entropy",
        random_share: float = 0.1,
        step: float = 0.01,
        initial_threshold: float = 0.5,
        n_classes: int = 2,
        seed: int | None = None,
    ) -> None:
        if measure not in MEASURES:
            raise ValueError(f"unknown measure {measure!r}; choose one of {sorted(MEASURES)}")
        if not 0.0 <= random_share <= 1.0:
            raise ValueError(f"random_share must be in [0, 1], got {random_share}")
        self.budget = budget if budget is not None else WindowBudget()
        self.measure_name = measure
        self._measure: Callable[..., float] = MEASURES[measure]
        self.random_share = random_share
        self.step = step
        self.threshold = initial_threshold
        self.n_classes = n_classes
        self._rng = random.Random(seed)
        # The uncertainty lane has its own share of the window, so that a model that is unsure
        # of everything (cold start, drift) cannot starve the random lane of its labels.
        self._lane_budget = WindowBudget(
            max(1e-9, self.budget.fraction * (1.0 - random_share)),
            getattr(self.budget, "window", 1000),
        )

    @property
    def _lane_rate(self) -> float:
        return self.budget.fraction * (1.0 - self.random_share)

    def decide(self, proba: Proba) -> Decision:
        """Decide for one event and charge the budget if the answer is to ask."""
        u = self._measure(proba, self.n_classes)
        decision = self._decide(u)
        self.budget.record(decision.ask)
        self._lane_budget.record(decision.reason == "uncertainty")
        return decision

    def _decide(self, u: float) -> Decision:
        budget = self.budget
        random_rate = budget.fraction * self.random_share
        if random_rate > 0.0 and self._rng.random() < random_rate:
            if budget.allows():
                return Decision(True, "random", random_rate, u)
            return Decision(False, None, 0.0, u)
        if not (budget.allows() and self._lane_budget.allows()):
            return Decision(False, None, 0.0, u)
        rate = min(self._lane_rate, 0.5)
        if u >= self.threshold and rate > 0.0:
            self.threshold = min(1.0, self.threshold * (1.0 + self.step))
            return Decision(True, "uncertainty", 1.0, u)
        # Balance: n steps down per step up, so the lane settles at its share of the budget.
        down = self.step * rate / (1.0 - rate)
        self.threshold = max(1e-6, self.threshold * (1.0 - down))
        return Decision(False, None, 0.0, u)

    def set_budget(self, fraction: float) -> None:
        """Change the budget fraction at run time."""
        set_fraction = getattr(self.budget, "set_fraction", None)
        if set_fraction is None:
            raise TypeError(f"{type(self.budget).__name__} cannot change its fraction")
        set_fraction(fraction)
        self._lane_budget.set_fraction(max(1e-9, fraction * (1.0 - self.random_share)))

    def __repr__(self) -> str:
        return (
            f"Gate(measure={self.measure_name!r}, budget={self.budget.fraction}, "
            f"random_share={self.random_share}, threshold={self.threshold:.4g})"
        )
