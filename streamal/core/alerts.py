"""Daily card alerts: each day the riskiest cards go to review, at most ``k`` of them, once each.

A fraud team does not review a share of the transactions; it reviews a number of *cards* a day
(Le Borgne et al., 2022: 100), the riskiest, each once. A second risky transaction of a card
already alerted today is not a new alert. Days are UTC days of event time.

A streaming service cannot wait for the day's end to rank its cards, so the lane alerts a card as
soon as its risk clears a bar, and the bar is what the rest of the day is expected to need:

* the day's remaining capacity ``k - alerted``, over the share of the day's traffic still to
  come (``1 - F(t)``, from the hourly traffic profile of recent days), says how deep in a typical
  day's ranking of cards the bar must sit: rank ``r = (k - alerted) / (1 - F(t))``;
* the bar is the median, over the last ``memory_days`` days, of each day's ``r``-th highest card
  risk (a card's risk for a day is that of its riskiest transaction), scaled by how today's cards
  compare so far: today's ``depth·k·F(t)``-th riskiest card against recent days'
  ``depth·k``-th, so that a model that now scores higher or lower (it learns every day) moves the
  bar the same day rather than after ``memory_days / 2`` days.

At the start of a day ``r = k``: the bar is a typical day's ``k``-th riskiest card. Falling behind
(a calm morning, a model that scores lower than last week) lowers the bar, running ahead raises it;
and whatever the bar, at most ``k·F(t) + slack`` alerts are made by time ``t``, so a jump in the
scores cannot use up the day's capacity by noon. The bar never drops below a typical day's
``depth·k``-th card: near the day's end the lane would rather not alert than alert anything.
Capacity left unused at the day's end is lost to the lane (the gate's budget, which the alerts did
not draw, goes to its exploration lanes). Day one has no history: it ranks each card among the
day's cards so far, as the ``r·F(t)``-th highest, with ``F`` uniform in time.

Cards known to be compromised (a fraud label received, :meth:`DailyAlerts.compromised`) are
blocked by the team: they are not alerted, nor ranked, for ``quiet_days``.

The state is plain data (dicts, sets, lists): it pickles with the gate's checkpoint.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Hashable
from itertools import accumulate

__all__ = ["DAY", "DailyAlerts"]

#: Seconds in a day; days are UTC days of event time (``floor(t / DAY)``).
DAY = 86_400.0
_HOURS = 24
#: Cards of today needed before today's scale corrects the recent days' bar.
_MIN_EVIDENCE = 10


class _TopCards:
    """The ``size`` highest card risks of a day (a card's risk: its highest so far), exactly.

    A card evicted from the top can only come back with a risk above the current minimum, which
    is then also its true maximum, so ``O(size)`` memory suffices however many cards pass. The
    risks are also kept sorted, so the ``r``-th highest is one lookup.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.risk: dict[Hashable, float] = {}
        self._sorted: list[float] = []  # ascending
        self._min_card: Hashable | None = None

    def __len__(self) -> int:
        return len(self._sorted)

    def add(self, card: Hashable, risk: float) -> None:
        risks = self.risk
        known = risks.get(card)
        if known is not None:
            if risk > known:
                risks[card] = risk
                del self._sorted[bisect_left(self._sorted, known)]
                insort(self._sorted, risk)
                if card == self._min_card:
                    self._rescan()
            return
        if len(risks) < self.size:
            risks[card] = risk
            insort(self._sorted, risk)
            if self._min_card is None or risk < risks[self._min_card]:
                self._min_card = card
            return
        if risk <= self._sorted[0]:
            return
        del risks[self._min_card]
        del self._sorted[0]
        risks[card] = risk
        insort(self._sorted, risk)
        self._rescan()

    def _rescan(self) -> None:
        self._min_card = min(self.risk, key=self.risk.__getitem__)

    def highest(self, rank: int) -> float:
        """The ``rank``-th highest risk (1: the highest); 0 when fewer cards have come."""
        rank = max(1, rank)
        return self._sorted[-rank] if rank <= len(self._sorted) else 0.0

    def ranked(self) -> list[float]:
        """The risks, highest first."""
        return self._sorted[::-1]


class DailyAlerts:
    """The gate's alert lane: at most ``cards_per_day`` cards a day, the riskiest, once each.

    Feed every scored event to :meth:`observe`; ask :meth:`wants` whether its card should be
    alerted now, and call :meth:`alert` if the alert is made (the gate may still veto it).

    Parameters
    ----------
    cards_per_day
        Daily capacity ``k``: most cards alerted per UTC day.
    memory_days
        Recent days whose card rankings and traffic profile set the bar.
    depth
        Cards ranked per day, in multiples of ``k``; the bar never goes below a typical day's
        ``depth·k``-th card.
    slack
        How far ahead of the day's schedule (``k·F(t)``) the alerts may run, as a share of ``k``
        (at least one card); the gate also lets alerts run that far ahead of its budget.
    quiet_days
        Days a card known to be compromised is neither alerted nor ranked (0: always alertable).

    Examples
    --------
    >>> lane = DailyAlerts(cards_per_day=2, slack=1.0)
    >>> def offer(card, risk, t):
    ...     lane.observe(card, risk, t)
    ...     if lane.wants(card, risk):
    ...         lane.alert(card)
    ...         return True
    ...     return False
    >>> [offer(c, r, t) for c, r, t in [("a", .9, 0), ("a", .95, 60), ("b", .1, 120)]]
    [True, False, False]
    >>> lane.alerted_today
    1
    >>> offer("c", .99, 43_200), offer("d", .99, 43_260)  # capacity 2: d waits for tomorrow
    (True, False)
    >>> offer("d", .99, 86_400 + 60)  # a new day
    True
    """

    #: Cards reported compromised before the first event: quiet from the first event's time
    #: (a class default, so that a lane pickled before it restores).
    _early: frozenset[Hashable] = frozenset()

    def __init__(
        self,
        cards_per_day: int = 100,
        memory_days: int = 7,
        depth: int = 4,
        slack: float = 0.25,
        quiet_days: float = 7.0,
    ) -> None:
        if cards_per_day < 1:
            raise ValueError(f"cards_per_day must be >= 1, got {cards_per_day}")
        if memory_days < 1 or depth < 1:
            raise ValueError("memory_days and depth must be >= 1")
        if slack < 0 or quiet_days < 0:
            raise ValueError("slack and quiet_days must be >= 0")
        self.k = cards_per_day
        self.depth = depth
        self.slack = max(1.0, slack * cards_per_day)
        self.quiet_seconds = quiet_days * DAY
        #: Past days (most recent last): each day's card risks, highest first.
        self._rankings: deque[list[float]] = deque(maxlen=memory_days)
        #: Past days' events per UTC hour, and their sum over the remembered days.
        self._traffic: deque[list[int]] = deque(maxlen=memory_days)
        self._profile = [0] * _HOURS
        self._before = [0] * (_HOURS + 1)  # events before each hour, and in all, in the profile
        self._typical_at: dict[int, float] = {}  # cache of _typical, for the day
        self._day: int | None = None
        self._now = -math.inf
        self._top = _TopCards(depth * cards_per_day)
        self._hours = [0] * _HOURS
        self._alerted: set[Hashable] = set()
        self._quiet: dict[Hashable, float] = {}

    # ------------------------------------------------------------------ the stream

    def observe(self, card: Hashable | None, risk: float, t: float | None) -> None:
        """Account for one scored event: its day, the traffic profile, its card's rank.

        ``t`` is the event time in epoch seconds; an event without one is taken to be as late
        as the latest event seen.
        """
        if t is None or not math.isfinite(t):
            t = self._now if math.isfinite(self._now) else 0.0
        day = math.floor(t / DAY)
        if self._day is None:
            self._day = day
        elif day > self._day:
            self._close_day()
            self._day = day
        if t > self._now:
            self._now = t
        if self._early:
            for early in self._early:
                self._quiet[early] = t + self.quiet_seconds
            self._early = frozenset()
        if day == self._day:  # a late event from an earlier day counts as today's, unprofiled
            self._hours[min(_HOURS - 1, int((t - day * DAY) // 3600))] += 1
        if card is not None and not self._is_quiet(card):
            self._top.add(card, risk)

    def wants(self, card: Hashable | None, risk: float) -> bool:
        """True if ``card`` should be alerted now at this ``risk`` (call after :meth:`observe`)."""
        alerted = len(self._alerted)
        if card is None or alerted >= self.k or card in self._alerted or self._is_quiet(card):
            return False
        progress = self.progress()
        if alerted >= self.k * progress + self.slack:
            return False
        return risk >= self._bar(progress)

    def alert(self, card: Hashable) -> None:
        """Record an alert made for ``card`` today."""
        self._alerted.add(card)

    def compromised(self, card: Hashable) -> None:
        """A fraud label arrived for ``card``: the team blocks it, no alert for ``quiet_days``."""
        if self.quiet_seconds <= 0:
            return
        if math.isfinite(self._now):
            self._quiet[card] = self._now + self.quiet_seconds
        else:  # no event yet: quiet from the first one's time
            self._early = self._early | {card}

    # ------------------------------------------------------------------ the bar

    @property
    def alerted_today(self) -> int:
        """Cards alerted so far today."""
        return len(self._alerted)

    @property
    def threshold(self) -> float:
        """The risk a card needs to be alerted now (nan before the first event)."""
        if self._day is None:
            return math.nan
        return self._bar(self.progress())

    def progress(self) -> float:
        """Share of a typical day's traffic that has come by now, ``F(t)`` in ``[0, 1]``."""
        if self._day is None:
            return 0.0
        seconds = min(DAY, max(0.0, self._now - self._day * DAY))
        total = self._before[-1]
        if total == 0:
            return seconds / DAY
        hour = min(_HOURS - 1, int(seconds // 3600))
        done = self._before[hour] + self._profile[hour] * (seconds - hour * 3600) / 3600
        return min(1.0, done / total)

    def _bar(self, progress: float) -> float:
        remaining = self.k - len(self._alerted)
        deepest = self._top.size
        rank = min(deepest, max(1, math.ceil(remaining / max(1e-9, 1.0 - progress) - 1e-9)))
        if not self._rankings:  # day one: rank among today's cards so far
            return self._top.highest(math.ceil(rank * progress - 1e-9))
        bar = self._typical(rank)
        # Scale correction: today's deepest ranked card so far against recent days' at the same
        # share of the day, so a model that now scores higher or lower moves the bar today.
        deep = math.ceil(deepest * progress - 1e-9)
        reference = self._typical(deepest)
        if deep >= _MIN_EVIDENCE and deep <= len(self._top) and reference > 0:
            bar = min(1.0, bar * self._top.highest(deep) / reference)
        return bar

    def _typical(self, rank: int) -> float:
        """A typical recent day's ``rank``-th highest card risk: the median over the days."""
        cached = self._typical_at.get(rank)
        if cached is not None:
            return cached
        values = sorted(
            ranking[rank - 1] if rank <= len(ranking) else 0.0 for ranking in self._rankings
        )
        middle = len(values) // 2
        value = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
        self._typical_at[rank] = value
        return value

    # ------------------------------------------------------------------ days

    def _is_quiet(self, card: Hashable) -> bool:
        until = self._quiet.get(card)
        return until is not None and until > self._now

    def _close_day(self) -> None:
        if len(self._traffic) == self._traffic.maxlen:
            for hour, count in enumerate(self._traffic[0]):
                self._profile[hour] -= count
        self._rankings.append(self._top.ranked())
        self._traffic.append(self._hours)
        for hour, count in enumerate(self._hours):
            self._profile[hour] += count
        self._before = [0, *accumulate(self._profile)]
        self._typical_at = {}
        self._top = _TopCards(self._top.size)
        self._hours = [0] * _HOURS
        self._alerted = set()
        self._quiet = {card: until for card, until in self._quiet.items() if until > self._now}

    def __repr__(self) -> str:
        return (
            f"DailyAlerts(cards_per_day={self.k}, alerted_today={self.alerted_today}, "
            f"threshold={self.threshold:.4g})"
        )
