"""Query strategies: turn an informativeness score into "ask" or "don't ask".

A strategy sees one score per event (an uncertainty, a risk, a committee disagreement…) and
decides whether this event is worth a label *at the rate it has been given*. The gate tells each
strategy its target rate (its lane's share of the budget) and keeps the hard caps itself, so a
strategy only has to answer "is this one of the best ``rate`` of events?". The strategies differ
in how they answer, following the stream active-learning literature:

* :class:`RandomSampling`: one event at random in each block of ``1 / rate`` (unbiased).
* :class:`FixedThreshold`: ask when the score reaches a fixed value; may spend less than
  its rate, by design (Žliobaitė et al., 2014, "fixed uncertainty").
* :class:`VariableThreshold`: the threshold rises after each request and falls otherwise,
  so it follows the score distribution and recovers after drift ("variable uncertainty").
* :class:`RandomizedVariableThreshold`: the same with a randomised threshold, so that even
  confidently predicted regions are sampled now and then ("randomised variable uncertainty").
* :class:`QuantileThreshold`: ask when the score is in the top ``rate`` of the recent scores;
  spends the rate whatever the score distribution, steered by the budget's fill level.
* :class:`BalancedQuantile`: the same over a short window, with a bar that moves with how many
  labels the whole budget is behind or ahead (Kottke et al., 2015, "balanced incremental
  quantile filter"): it can wait for a rare high score and catch up after. The default.

Every decision comes with the probability that this event would have been requested, which the
honest-accuracy estimators need.
"""

from __future__ import annotations

import bisect
import math
import random
from abc import ABC, abstractmethod
from collections import deque
from statistics import NormalDist

__all__ = [
    "BalancedQuantile",
    "FixedThreshold",
    "QuantileThreshold",
    "RandomSampling",
    "RandomizedVariableThreshold",
    "Strategy",
    "VariableThreshold",
]


class RecentScores:
    """The last ``size`` scores, kept in order and sorted, for the quantile strategies.

    >>> recent = RecentScores(3)
    >>> for u in (0.5, 0.1, 0.9, 0.3):
    ...     recent.add(u)
    >>> recent.sorted, recent.quantile(0.5), recent.above(0.2)
    ([0.1, 0.3, 0.9], 0.3, 2)
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: deque[float] = deque()
        #: The scores, ascending.
        self.sorted: list[float] = []

    def __len__(self) -> int:
        return len(self.sorted)

    def add(self, score: float) -> None:
        """Take in one score (``O(size)``), dropping the oldest beyond ``size``."""
        self._order.append(score)
        bisect.insort(self.sorted, score)
        if len(self._order) > self.size:
            old = self._order.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]

    def quantile(self, q: float) -> float:
        """The empirical ``q`` quantile: the score at rank ``floor(q·n)`` (``nan`` if empty)."""
        n = len(self.sorted)
        return self.sorted[min(n - 1, int(math.floor(q * n)))] if n else math.nan

    def above(self, score: float) -> int:
        """How many of the scores are higher than ``score``."""
        return len(self.sorted) - bisect.bisect_right(self.sorted, score)

    @property
    def spread(self) -> float:
        """Highest minus lowest score (0 if empty)."""
        return self.sorted[-1] - self.sorted[0] if self.sorted else 0.0


class Strategy(ABC):
    """Decides per event, given a score, whether to ask; adapts to its target rate.

    Attributes
    ----------
    rate
        Share of events this strategy should ask for; set by the gate from its lane's budget.
    threshold
        The current score threshold (reported as a gauge); ``nan`` where there is none.
    """

    rate: float = 0.02
    threshold: float = math.nan

    def bind(self, rate: float, rng: random.Random) -> None:
        """Receive the target rate and the gate's random generator (one seed for the gate)."""
        self.rate = rate
        self._rng = rng

    @abstractmethod
    def propose(self, score: float) -> tuple[bool, float]:
        """``(ask, probability that an event with this score is asked)``; no state change."""

    def update(  # noqa: B027 - optional hook
        self, score: float, asked: bool, allowed: bool = True, pressure: float = 0.5
    ) -> None:
        """Learn from one event (default: nothing).

        ``allowed`` is False when the budget vetoed the event before the strategy was asked.
        ``pressure`` is how full the lane's budget is, from 0 (empty: overspending) to 1 (full:
        unused labels are being lost), the feedback that keeps a strategy spending its budget.
        """

    def settle(self, asked: bool, rate: float) -> None:  # noqa: B027 - optional hook
        """Account for one event against the whole budget (default: nothing).

        The gate calls this once per event, whichever lane decided, for its last selective
        lane: the one that spends what the other lanes leave. ``asked`` is whether any lane
        asked for this event, ``rate`` the budget's fraction.
        """


class RandomSampling(Strategy):
    """An unbiased sample of the stream at ``rate``: one event at a random place in each block.

    The stream is cut into blocks of ``1 / rate`` events and one event, uniformly at random
    within its block, is asked for (stratified sampling). Every event has the same chance,
    ``rate``, whatever its score or its time, so accuracy on these labels estimates accuracy on
    the whole stream; and unlike a coin per event the picks never cluster, so they never collide
    with the budget and never have to be moved (which would tie them to the other lanes' spending
    and bias the estimate). After ``n`` events it has asked at most ``ceil(rate · n)`` times.

    >>> s = RandomSampling()
    >>> s.bind(0.1, random.Random(0))
    >>> picks = [i for i in range(100) if s.propose(0.0)[0]]
    >>> picks
    [6, 16, 20, 34, 48, 57, 66, 74, 87, 95]
    >>> [p // 10 for p in picks]  # one per block of ten
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    _position = 0
    _pick = -1
    _block = 1

    def bind(self, rate: float, rng: random.Random) -> None:
        super().bind(rate, rng)
        self._block = max(1, round(1.0 / rate)) if rate > 0.0 else 0
        self._position = 0
        self._pick = -1

    def propose(self, score: float) -> tuple[bool, float]:
        """Advance by one event (call exactly once per event)."""
        if not self._block:
            return False, 0.0
        offset = self._position % self._block
        if offset == 0:
            self._pick = self._position + self._rng.randrange(self._block)
        ask = self._position == self._pick
        self._position += 1
        return ask, self.rate


class FixedThreshold(Strategy):
    """Ask when the score reaches ``threshold``; never adapts (spends *at most* its rate).

    >>> s = FixedThreshold(0.8)
    >>> s.propose(0.9), s.propose(0.5)
    ((True, 1.0), (False, 0.0))
    """

    def __init__(self, threshold: float = 0.9) -> None:
        self.threshold = threshold

    def propose(self, score: float) -> tuple[bool, float]:
        ask = score >= self.threshold
        return ask, 1.0 if ask else 0.0


class VariableThreshold(Strategy):
    """Žliobaitė's variable threshold, with steps that balance at the target rate.

    After a request the threshold is multiplied by ``1 + step``; after an event that was not
    requested, by ``1 - step * rate / (1 - rate)``. The two balance when a share ``rate`` of events
    is requested, so the threshold settles at the score quantile that spends the budget, and a
    model that becomes confident (all scores low) sees its threshold fall until it asks again.
    While the budget is full and going to waste it falls by the whole ``step`` per event, so
    after drift or at a small budget it finds the new score level in tens of events, not
    thousands. Events the budget vetoed leave it unchanged, as in the paper.

    Parameters
    ----------
    step
        Relative change after a request (the paper's ``s``, 0.01).
    initial
        Starting threshold.

    Examples
    --------
    >>> s = VariableThreshold(step=0.05)
    >>> s.bind(0.1, random.Random(0))
    >>> rng = random.Random(1)
    >>> asked = 0
    >>> for _ in range(20_000):
    ...     u = rng.random()
    ...     ask, _ = s.propose(u)
    ...     s.update(u, ask)
    ...     asked += ask
    >>> round(asked / 20_000, 2), round(s.threshold, 1)
    (0.1, 0.9)
    """

    def __init__(self, step: float = 0.01, initial: float = 0.5, floor: float = 1e-6) -> None:
        self.step = step
        self.threshold = initial
        self.floor = floor

    def propose(self, score: float) -> tuple[bool, float]:
        ask = score >= self.threshold
        return ask, 1.0 if ask else 0.0

    def update(
        self, score: float, asked: bool, allowed: bool = True, pressure: float = 0.5
    ) -> None:
        if not allowed:
            return
        rate = min(self.rate, 0.5)
        if asked:
            self.threshold = min(1e6, self.threshold * (1.0 + self.step))
        elif pressure >= 0.999:
            self.threshold = max(self.floor, self.threshold * (1.0 - self.step))
        elif rate > 0.0:
            self.threshold = max(self.floor, self.threshold * (1.0 - self.step * rate / (1 - rate)))


class RandomizedVariableThreshold(VariableThreshold):
    """Variable threshold multiplied by a random factor ``η ~ N(1, delta)`` for each event.

    Events below the threshold still have a chance, so regions where the model is confidently
    wrong (typical after drift) are found. The query probability is ``P(η·θ <= score)``.

    >>> s = RandomizedVariableThreshold(delta=1.0, initial=0.5)
    >>> s.bind(0.05, random.Random(3))
    >>> round(s.propose(0.5)[1], 3)  # exactly at the threshold: a coin toss
    0.5
    """

    _normal = NormalDist()

    def __init__(
        self, step: float = 0.01, delta: float = 1.0, initial: float = 0.5, floor: float = 1e-6
    ) -> None:
        super().__init__(step, initial, floor)
        self.delta = delta

    def propose(self, score: float) -> tuple[bool, float]:
        eta = self._rng.gauss(1.0, self.delta)
        probability = self._normal.cdf((score / self.threshold - 1.0) / self.delta)
        return score >= self.threshold * eta, probability


class QuantileThreshold(Strategy):
    """Ask when the score is among the top ``rate`` of the last ``window`` scores.

    The threshold is the empirical ``1 - rate`` quantile of a sliding window of recent scores
    (kept sorted, ``O(window)`` per event), so the spend is the rate whatever the shape of the
    score distribution, and it moves with the distribution after drift. Every score enters the
    window, asked or not, vetoed or not: the window describes the stream, not the decisions.
    A window lags when the scores fall as the model learns (stale high scores hold the quantile
    up), so the rate is steered by the budget's fill level with an integral controller: the
    effective rate is multiplied by ``1 + gain·(pressure - fill)`` after every event, rising while
    the lane's budget is fuller than ``fill`` and falling while it is emptier. The spend then
    settles at the rate whatever the window holds. The set point is below half (0.3) because
    tokens are lost only while the bucket is full: at ½ the lanes sat on a full bucket often
    enough to spend 0.92-0.96 B; at 0.3 they spend 0.96-1.0 B with the same window maxima
    (benchmark streams, B = 1-20 %).

    Parameters
    ----------
    window
        Number of recent scores over which the quantile is taken.
    gain
        Controller gain per event.
    fill
        The budget's fill level (``pressure``) the controller steers to.

    Examples
    --------
    >>> s = QuantileThreshold(window=100)
    >>> s.bind(0.1, random.Random(0))
    >>> asked = 0
    >>> for i in range(1000):
    ...     u = (i * 37 % 100) / 100
    ...     ask, _ = s.propose(u)
    ...     s.update(u, ask)
    ...     asked += ask
    >>> asked  # the first ten events sample at the rate while the window fills
    99
    """

    def __init__(self, window: int = 1000, gain: float = 0.05, fill: float = 0.3) -> None:
        self.window = window
        self.gain = gain
        self.fill = fill
        self._recent = RecentScores(window)
        self._boost = 1.0  # the controller's correction of the rate

    def propose(self, score: float) -> tuple[bool, float]:
        n = len(self._recent)
        if n < 10:  # too few scores for a quantile: fall back to sampling at the rate
            return self._rng.random() < self.rate, self.rate
        # Rank of the score among the recent ones: ask if fewer than rate * n are above it.
        ask = self._recent.above(score) < self.rate * self._boost * n
        return ask, 1.0 if ask else 0.0

    def update(
        self, score: float, asked: bool, allowed: bool = True, pressure: float | None = None
    ) -> None:
        if self.rate > 0.0 and pressure is not None:  # no budget to read: the quantile alone
            boost = self._boost * (1.0 + self.gain * (pressure - self.fill))
            self._boost = min(1.0 / self.rate, max(0.1, boost))
        self._recent.add(score)
        self.threshold = self._recent.quantile(1.0 - self.rate)


class BalancedQuantile(Strategy):
    """Kottke et al.'s balanced incremental quantile filter: a short quantile, a balance term.

    The threshold is the ``1 - rate`` quantile of the last ``window`` scores, lowered by the
    scores' range times ``balance / tolerance``, where ``balance`` is the number of requests the
    budget is behind its pace (:meth:`settle`: the budget's fraction per event, minus the
    requests made by every lane, so this lane spends what the others leave, and their rounding
    is made up here rather than added to the total). A short window follows the scores closely,
    and the balance term lets the lane fall behind for a while, so it waits for the rare
    high-utility event instead of lowering its bar at once, then catches up in proportion to
    the deficit. The deficit is capped at ``tolerance`` so that a long veto
    (a capacity cap, an outage) cannot wind it up into a flood of requests afterwards; a
    surplus is not capped, so labels taken ahead of the rate are paid back in full. The gate's
    buckets keep the hard caps.

    A head start is an advance on the budget for a cold model: the lane starts ``head_start``
    labels behind, so it asks for them at once, and the advance is then repaid evenly over the
    next ``repay`` events. Repaying it through the balance instead would raise the bar above
    every score just after the first labels, while the model's scores are still bunched at the
    top, and starve the model when each label teaches it most (Phishing at 20 %: 2.5 requests
    in events 125-250, against 20-30 in each later block of 125).

    Parameters
    ----------
    window
        Number of recent scores over which the quantile and the range are taken (the paper's
        ``w``, 100).
    tolerance
        Requests the budget may be behind (or ahead of) its pace before the bar has moved by
        the whole range of the scores (the paper's ``w_tol``, 50).
    head_start
        Labels the lane may take at once at the start (at most ``tolerance``); 0 for none.
    repay
        Events over which the head start is repaid.

    Examples
    --------
    >>> s = BalancedQuantile(window=100, tolerance=5)
    >>> s.bind(0.05, random.Random(0))
    >>> rng = random.Random(1)
    >>> asked = 0
    >>> for _ in range(10_000):
    ...     u = rng.random() ** 3
    ...     ask, _ = s.propose(u)
    ...     s.update(u, ask)
    ...     s.settle(ask, 0.05)  # standing alone, it is the whole budget
    ...     asked += ask
    >>> asked  # 5 % of 10,000, to within the tolerance
    500

    With a head start of 5 labels repaid over 1,000 events, the lane asks for its first labels
    at once, then for 5 % less the repayment (45 in 1,000 events), then for 5 % again:

    >>> s = BalancedQuantile(window=100, tolerance=5, head_start=5, repay=1000)
    >>> s.bind(0.05, random.Random(0))
    >>> asks = []
    >>> for i in range(3000):
    ...     u = rng.random()
    ...     ask, _ = s.propose(u)
    ...     s.update(u, ask)
    ...     s.settle(ask, 0.05)
    ...     asks.append(ask)
    >>> sum(asks[:10]), sum(asks[:1000]), sum(asks[1000:])
    (4, 50, 100)
    """

    def __init__(
        self,
        window: int = 100,
        tolerance: float = 50.0,
        head_start: float = 0.0,
        repay: int = 500,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2 scores, got {window}")
        if tolerance <= 0:
            raise ValueError(f"tolerance must be positive, got {tolerance}")
        if head_start < 0:
            raise ValueError(f"head_start must not be negative, got {head_start}")
        if repay < 1:
            raise ValueError(f"repay must be at least 1 event, got {repay}")
        self.window = window
        self.tolerance = tolerance
        self._recent = RecentScores(window)
        #: Requests behind the rate (negative: ahead), at most ``tolerance``.
        self.balance = min(head_start, tolerance)
        #: Labels of the head start not yet repaid, and the repayment per event.
        self.advance = self.balance
        self._repayment = self.balance / repay

    @property
    def threshold(self) -> float:  # type: ignore[override]  # derived, not stored
        """The current bar (``nan`` before the first score); computed when read."""
        recent = self._recent
        return recent.quantile(1.0 - self.rate) - recent.spread * self.balance / self.tolerance

    def propose(self, score: float) -> tuple[bool, float]:
        if not self._recent:  # no score seen yet: sample at the rate
            return self._rng.random() < self.rate, self.rate
        ask = score >= self.threshold
        return ask, 1.0 if ask else 0.0

    def update(
        self, score: float, asked: bool, allowed: bool = True, pressure: float | None = None
    ) -> None:
        self._recent.add(score)

    def settle(self, asked: bool, rate: float) -> None:
        repaid = 0.0
        if self.advance > 0.0:
            repaid = min(self._repayment, self.advance)
            self.advance -= repaid
        self.balance = min(self.tolerance, self.balance + rate - asked - repaid)
