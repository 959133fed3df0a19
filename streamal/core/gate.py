"""The gate: for each scored event, ask for a label or not, and say why.

Lanes share one budget and are tried in this order; the first that asks wins:

* ``random`` spends ``random_share`` of the budget uniformly at random. Its labels are an
  unbiased sample of the stream: the only honest way to estimate accuracy once the other lanes
  choose the hard cases, and a drift detector that no confident model can switch off.
* ``exploit`` spends ``exploit_share`` on the events with the highest risk (probability of the
  positive class): reviewers must see likely fraud, not only uncertain cases, and on a 1 %-fraud
  stream this is what brings positives into the training set.
* ``uncertainty`` spends the rest on the events whose informativeness score (entropy, margin,
  committee disagreement, …) its strategy ranks highest.

Budget accounting follows the lanes. The random lane picks one event at random in every block
of ``1 / (random_share · B)`` events, on its own schedule, so the other lanes' spending never
moves its picks and its labels stay a uniform sample. The selective lanes (exploit and
uncertainty) share one paced bucket that fills by ``(1 - random_share) · B`` per event (a
:class:`~streamal.core.budget.FractionBudget`), and each also has its own bucket for its share,
so a model that is unsure of everything (cold start, drift) cannot starve the other lane. The
total is therefore about ``B`` per event from the start, and at most ``B·window`` plus a small
burst in any window. The ``budget`` object passed in is the overall cap on every lane and what
the spend gauge reads; it and the capacity constraints (labels per hour, open reviews) can veto
any request (a vetoed random pick is made up at the next event allowed, which depends on time
only). Budget is charged when a label is requested, not when it arrives.

The last selective lane also hears, through :meth:`Strategy.settle`, whether any lane asked for
each event: a balancing strategy (:class:`~streamal.core.strategies.BalancedQuantile`) steers
the *total* to the budget, making up the random lane's rounding and the alerts' ups and downs.
With a ``head_start`` the buckets start with credit: a cold model gets its first labels at
once, an advance that the balancing strategy repays (give it the same head start).

With a :class:`~streamal.core.alerts.DailyAlerts` (``alerts``), the exploit lane is a fraud
team's daily alert list instead of a share of the budget: each UTC day of event time the riskiest
cards, at most ``k``, each once, are requested (reason ``exploit``); :meth:`Gate.decide` then needs
each event's ``card`` and ``time``. The alerts draw on the selective lanes' bucket, which may run
into debt by the lane's slack (so a risky card is not turned away because the uncertainty lane
just spent the last token); the uncertainty lane asks again only once the debt is repaid, so it
gets the remainder of the budget and the total stays about ``B`` per event. Alerts, and random
picks, are vetoed by the capacity constraints and by their own lane's bound (the debt limit, the
random schedule), not by the overall budget's short-term bucket, which alerts may overdraw: after
``n`` events the total is at most ``B·n`` plus the slack plus one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from streamal.core.alerts import DailyAlerts
from streamal.core.budget import Budget, FractionBudget
from streamal.core.capacity import Constraint
from streamal.core.measures import Proba
from streamal.core.scorers import MeasureScorer, RiskScorer
from streamal.core.strategies import (
    BalancedQuantile,
    QuantileThreshold,
    RandomSampling,
    Strategy,
    VariableThreshold,
)

__all__ = ["NO", "Decision", "Gate", "Lane", "Scorer"]

#: Informativeness of one event from its class probabilities and features.
Scorer = Callable[[Proba, Mapping[str, float] | None], float]


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


@dataclass(slots=True)
class Lane:
    """One way of spending the budget: a share of it, a scorer and a strategy."""

    name: str
    share: float
    strategy: Strategy
    scorer: Scorer
    budget: FractionBudget | None


class _SelectiveBucket(FractionBudget):
    """The selective lanes' shared bucket, which the alert lane may overdraw by ``credit``."""

    def allows_credit(self, credit: float) -> bool:
        tokens = self._tokens + self.fraction
        return min(tokens, self.burst) >= 1.0 - credit - 1e-9


class Gate:
    """Budgeted, multi-lane query gate.

    Parameters
    ----------
    budget
        The fraction budget; defaults to 2 % of events, paced over a window of 1,000.
    measure
        Uncertainty measure of the uncertainty lane: ``least_confidence``, ``margin`` or
        ``entropy`` (ignored when ``scorer`` is given).
    random_share
        Share of the budget spent uniformly at random (the unbiased lane).
    step
        Relative threshold change after a request, for the variable threshold this class uses
        when no ``strategy`` is given (the service's default, ``balanced``, comes from
        :func:`~streamal.core.policy.build_gate`).
    initial_threshold
        Starting threshold of that variable threshold.
    n_classes
        Number of classes, to normalise the measure.
    seed
        Seed of the gate's random generator: the same seed and stream give the same requests.
    strategy
        Strategy of the uncertainty lane; default :class:`VariableThreshold`.
    exploit_share
        Share of the budget for the highest-risk events.
    positive
        The positive (risk) class, whose probability the exploit lane ranks.
    constraints
        Capacity constraints that may veto any request (token bucket, backlog cap).
    scorer
        Informativeness of an event for the uncertainty lane, when a plain measure is not enough
        (committee, density weighting, expected model change).
    alerts
        Daily card alert lane, in place of the exploit share (which must then be 0).
    slack
        Size of the selective lanes' bucket as a share of a window's budget: how far a lane may
        save up for a cluster of interesting events (the overall budget still caps the window).
    head_start
        Labels of credit the last selective lane starts with (at most its bucket), so that a
        cold model can buy its first labels at once; a lane before it starts empty. They are
        an advance, not extra budget: a strategy that balances against the budget
        (:class:`BalancedQuantile`, given the same head start) repays them; give the overall
        budget the same credit.

    Examples
    --------
    >>> from streamal.core.budget import WindowBudget
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
        strategy: Strategy | None = None,
        exploit_share: float = 0.0,
        positive: Hashable = True,
        constraints: Sequence[Constraint] = (),
        scorer: Scorer | None = None,
        alerts: DailyAlerts | None = None,
        slack: float = 0.1,
        head_start: float = 0.0,
    ) -> None:
        if not 0.0 < slack <= 1.0:
            raise ValueError(f"slack must be in (0, 1], got {slack}")
        self.slack = slack
        self.head_start = head_start
        if alerts is not None and exploit_share > 0:
            raise ValueError("the daily alert lane replaces the exploit share: set one of them")
        for name, share in (("random_share", random_share), ("exploit_share", exploit_share)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {share}")
        if random_share + exploit_share > 1.0 + 1e-9:
            raise ValueError("random_share + exploit_share must not exceed 1")
        self.budget = budget if budget is not None else FractionBudget()
        self.measure_name = measure if scorer is None else getattr(scorer, "name", "custom")
        uncertainty_scorer = scorer or MeasureScorer(measure, n_classes)
        self.random_share = random_share
        self.exploit_share = exploit_share
        self.positive = positive
        self.constraints = list(constraints)
        #: The daily card alert lane (the exploit lane when set).
        self.alerts = alerts
        self._risk = RiskScorer(positive)
        self._rng = random.Random(seed)
        # Random picks that a capacity constraint vetoed, made up at the next event it allows:
        # which event that is depends only on time, never on the event, so the lane stays fair.
        self._random_owed = 0
        window = getattr(self.budget, "window", 1000)
        self._window = window
        rest = max(0.0, 1.0 - random_share - exploit_share)
        self._selective = self._selective_bucket(self.budget.fraction, head_start)

        specs: list[tuple[str, float, Strategy, Scorer]] = [
            ("random", random_share, RandomSampling(), uncertainty_scorer),
            ("exploit", exploit_share, QuantileThreshold(window), RiskScorer(positive)),
            (
                "uncertainty",
                rest,
                strategy or VariableThreshold(step, initial_threshold),
                uncertainty_scorer,
            ),
        ]
        specs = [spec for spec in specs if spec[1] > 1e-12]
        # Only the last selective lane, which balances the total, starts with credit: the head
        # start is its to take and to repay. A lane before it spends its share as it accrues;
        # credit there would be spent on top of the share, which nothing would pay back.
        remainder = next((spec[0] for spec in reversed(specs) if spec[0] != "random"), None)
        self.lanes: list[Lane] = []
        for name, share, lane_strategy, lane_scorer in specs:
            credit = min(2 * self._burst, self._burst + head_start) if name == remainder else 0.0
            lane_budget = (
                None
                if name == "random"
                else FractionBudget(
                    max(1e-9, self.budget.fraction * share),
                    window,
                    burst=2 * self._burst,
                    initial=credit,
                    track_spend=False,
                )
            )
            self.lanes.append(Lane(name, share, lane_strategy, lane_scorer, lane_budget))
        #: The last selective lane, which spends what the others leave (see Strategy.settle).
        self._remainder = next((ln for ln in self.lanes if ln.name == remainder), None)
        self._bind_rates()

    @property
    def _burst(self) -> float:
        """Bucket size of the selective lanes: ``slack`` of a window's budget, at least one.

        Each lane's own bucket is twice that: the shared bucket caps the total, the lane's only
        keeps its share, so it may save up for a cluster of interesting events.
        """
        return max(1.0, self.slack * self.budget.fraction * self._window)

    def _selective_bucket(self, fraction: float, credit: float = 0.0) -> _SelectiveBucket:
        rate = max(1e-9, fraction * (1.0 - self.random_share))
        return _SelectiveBucket(
            min(1.0, rate),
            self._window,
            burst=self._burst,
            initial=min(self._burst, credit),
            track_spend=False,
        )

    def _bind_rates(self) -> None:
        for lane in self.lanes:
            lane.strategy.bind(self.budget.fraction * lane.share, self._rng)

    @property
    def threshold(self) -> float:
        """Threshold of the main lane (uncertainty, else the last lane), for the gauge."""
        for lane in reversed(self.lanes):
            value = lane.strategy.threshold
            if not math.isnan(value):
                return value
        return math.nan

    def decide(
        self,
        proba: Proba,
        x: Mapping[str, float] | None = None,
        *,
        card: Hashable | None = None,
        time: float | None = None,
    ) -> Decision:
        """Decide for one event and charge the budget if the answer is to ask.

        ``card`` and ``time`` (event time, epoch seconds) feed the daily alert lane; without
        one they are ignored, and an event without a card is never alerted.
        """
        if self.alerts is not None:
            risk = self._risk(proba, x)
            self.alerts.observe(card, risk, time)
            decision = self._decide(proba, x, card, risk)
        else:
            decision = self._decide(proba, x)
        self.budget.record(decision.ask)
        if self._remainder is not None:
            self._remainder.strategy.settle(decision.ask, self.budget.fraction)
        self._selective.record(decision.ask and decision.reason != "random")
        for constraint in self.constraints:
            constraint.record(decision.ask)
        for lane in self.lanes:
            if lane.budget is not None:
                lane.budget.record(decision.reason == lane.name)
        return decision

    def _decide(
        self,
        proba: Proba,
        x: Mapping[str, float] | None,
        card: Hashable | None = None,
        risk: float = math.nan,
    ) -> Decision:
        allowed = all(c.allows() for c in self.constraints)
        capacity = allowed and self.budget.allows()
        selective = capacity and self._selective.allows()
        # With alerts, which may overdraw the overall bucket, the random lane's schedule (r·B)
        # is its bound, so the alerts' debt never delays a random pick.
        random_capacity = allowed if self.alerts is not None else capacity
        score = math.nan
        # Lanes sharing a scorer compute it once per event, adjacent or not (random, exploit,
        # uncertainty: the first and last share one). PAL's scorer also takes the event into
        # its running scale, which must happen once.
        scores: dict[int, float] = {}
        alert_pending = self.alerts is not None
        for lane in self.lanes:
            key = id(lane.scorer)
            if key in scores:
                score = scores[key]
            else:
                score = scores[key] = lane.scorer(proba, x)
            strategy = lane.strategy
            if lane.budget is None:  # the random lane: its own stratified schedule
                ask, probability = strategy.propose(score)
                if ask and not random_capacity:
                    self._random_owed += 1
                elif random_capacity and (ask or self._random_owed):
                    if not ask:
                        self._random_owed -= 1
                    return Decision(True, lane.name, probability, score)
                continue
            if alert_pending:  # the alert lane goes before the first selective lane
                alert_pending = False
                if allowed and self._alert(card, risk):
                    return Decision(True, "exploit", 1.0, risk)
            # The controller reads the bucket that binds, the emptier of the lane's and the
            # shared one (reading only its lane's, it ran away while the shared one vetoed);
            # but while the lane's own share is going to waste, that is what it must hear.
            pressure = lane.budget.pressure
            if pressure < 0.999:
                pressure = min(pressure, self._selective.pressure)
            if not (selective and lane.budget.allows()):
                strategy.update(score, False, allowed=False, pressure=pressure)
                continue
            ask, probability = strategy.propose(score)
            strategy.update(score, ask, allowed=True, pressure=pressure)
            if ask:
                return Decision(True, lane.name, probability, score)
        if alert_pending and allowed and self._alert(card, risk):  # no selective lane at all
            return Decision(True, "exploit", 1.0, risk)
        return Decision(False, None, 0.0, 0.0 if math.isnan(score) else score)

    def _alert(self, card: Hashable | None, risk: float) -> bool:
        """The alert lane: alert ``card`` if the lane wants it and the bucket's credit allows."""
        alerts = self.alerts
        if alerts is None or card is None or not alerts.wants(card, risk):
            return False
        if not self._selective.allows_credit(alerts.slack):
            return False
        alerts.alert(card)
        return True

    def learn_one(self, x: Mapping[str, float], y: Hashable) -> None:
        """A label arrived: scorers that keep statistics of labelled data (PAL) take it in."""
        seen: set[int] = set()
        for lane in self.lanes:
            learn = getattr(lane.scorer, "learn_one", None)
            if learn is not None and id(lane.scorer) not in seen:
                seen.add(id(lane.scorer))
                learn(x, y)

    def set_budget(self, fraction: float) -> None:
        """Change the budget fraction at run time (every lane keeps its share)."""
        set_fraction = getattr(self.budget, "set_fraction", None)
        if set_fraction is None:
            raise TypeError(f"{type(self.budget).__name__} cannot change its fraction")
        old_burst = self._burst
        set_fraction(fraction)
        self._selective = self._selective_bucket(fraction)
        for lane in self.lanes:
            if isinstance(lane.strategy, BalancedQuantile):  # its tolerance is in labels
                lane.strategy.tolerance *= self._burst / old_burst
                lane.strategy.balance = min(lane.strategy.balance, lane.strategy.tolerance)
            if lane.budget is not None:
                lane.budget = FractionBudget(
                    max(1e-9, fraction * lane.share),
                    self._window,
                    burst=2 * self._burst,
                    initial=self._burst,
                    track_spend=False,
                )
        self._bind_rates()

    def __repr__(self) -> str:
        lanes = ", ".join(f"{lane.name}={lane.share:g}" for lane in self.lanes)
        if self.alerts is not None:
            lanes += f", alerts={self.alerts.k}/day"
        return (
            f"Gate(budget={self.budget.fraction}, measure={self.measure_name!r}, lanes=[{lanes}], "
            f"threshold={self.threshold:.4g})"
        )
