"""Budget managers: how many labels the reviewers can afford, and when.

A budget is charged when a label is *requested*, not when it arrives: in fraud review the
reviewer's time is spent the moment the case is opened, whether or not the answer comes back.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque

__all__ = ["Budget", "FractionBudget", "WindowBudget"]


class Budget(ABC):
    """Decides whether one more label request may be made now."""

    fraction: float

    @abstractmethod
    def allows(self) -> bool:
        """True if a request made for the current event stays within the budget."""

    @abstractmethod
    def record(self, asked: bool) -> None:
        """Account for one event, after the gate decided whether to ask for its label."""

    @property
    @abstractmethod
    def spend_ratio(self) -> float:
        """Requests per event observed over the budget window."""


class WindowBudget(Budget):
    """A fraction ``B`` of events, enforced exactly over a sliding window of ``window`` events.

    A hard count over the last ``window`` events (not an exponential estimate) guarantees that no
    window of that length ever holds more than ``floor(B * window)`` requests, so a cold start or a
    drift cannot burn a day's reviewer capacity in a burst.

    Parameters
    ----------
    fraction
        Share of events that may be sent to review, in ``(0, 1]``.
    window
        Number of most recent events over which the cap holds.

    Examples
    --------
    >>> budget = WindowBudget(fraction=0.1, window=20)
    >>> asked = 0
    >>> for _ in range(100):
    ...     ask = budget.allows()
    ...     budget.record(ask)
    ...     asked += ask
    >>> asked  # 2 per window of 20: front-loaded, never more than the cap
    10
    >>> budget.spend_ratio
    0.1
    """

    def __init__(self, fraction: float = 0.02, window: int = 1000) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
        if window < 1:
            raise ValueError(f"budget window must be >= 1 event, got {window}")
        self.fraction = fraction
        self.window = window
        self._history: deque[bool] = deque(maxlen=window)
        self._asked = 0

    @property
    def cap(self) -> int:
        """Most requests allowed in any window (at least one, so tiny budgets still learn)."""
        return max(1, math.floor(self.fraction * self.window + 1e-9))

    def set_fraction(self, fraction: float) -> None:
        """Change the budget at run time; the window's history is kept."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def allows(self) -> bool:
        # The request would be counted together with the last (window - 1) events.
        oldest_leaves = len(self._history) == self.window and self._history[0]
        return self._asked - oldest_leaves + 1 <= self.cap

    def record(self, asked: bool) -> None:
        if len(self._history) == self.window and self._history[0]:
            self._asked -= 1
        self._history.append(asked)
        self._asked += asked

    @property
    def spend_ratio(self) -> float:
        return self._asked / len(self._history) if self._history else 0.0


class FractionBudget(Budget):
    """A fraction ``B`` of events, paced: a token bucket that fills by ``B`` per event.

    Each event adds ``B`` tokens, up to a bucket of ``burst`` tokens; each request takes one. The
    bucket starts empty, so after any ``n`` events at most ``B·n`` requests were made (never an
    overspend, not even on a short stream), and any ``window`` consecutive events hold at most
    ``B·window + burst`` requests. With the default ``burst_share`` of 0.2 that is 1.2 × the
    budget per window, while a strategy can still save up for a cluster of interesting events.
    Tokens that overflow a full bucket are lost: a strategy that does not ask wastes budget, which
    is why the threshold strategies lower their bar when they have not asked for a while.

    Parameters
    ----------
    fraction
        Share of events that may be sent to review, in ``(0, 1]``.
    window
        Events over which the observed spend is reported (and the burst is sized).
    burst_share
        Bucket size as a share of the window's budget (at least one token).
    burst
        Bucket size in tokens, instead of ``burst_share``.
    initial
        Tokens at the start (0: never ahead of the budget).
    track_spend
        Keep the window's history for :attr:`spend_ratio` (off for the gate's inner buckets).

    Examples
    --------
    >>> budget = FractionBudget(fraction=0.1, window=100)
    >>> asked = 0
    >>> for _ in range(1000):
    ...     ask = budget.allows()
    ...     budget.record(ask)
    ...     asked += ask
    >>> asked, budget.spend_ratio  # asking whenever allowed: exactly the budget
    (100, 0.1)
    """

    def __init__(
        self,
        fraction: float = 0.02,
        window: int = 1000,
        burst_share: float = 0.2,
        burst: float | None = None,
        initial: float = 0.0,
        track_spend: bool = True,
    ) -> None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
        if window < 1:
            raise ValueError(f"budget window must be >= 1 event, got {window}")
        self.fraction = fraction
        self.window = window
        self.burst_share = burst_share
        self._burst = burst
        self.burst = self._size()
        self._tokens = initial
        self._track = track_spend
        self._history: deque[bool] = deque(maxlen=window)
        self._asked = 0

    def _size(self) -> float:
        if self._burst is not None:
            return max(1.0, self._burst)
        return max(1.0, self.burst_share * self.fraction * self.window)

    @property
    def pressure(self) -> float:
        """How full the bucket is, 0 to 1; at 1, tokens that are not spent now are lost."""
        return min(1.0, max(0.0, (self._tokens + self.fraction) / self.burst))

    def set_fraction(self, fraction: float) -> None:
        """Change the budget at run time; saved tokens are kept (up to the new bucket size)."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"budget fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction
        self.burst = self._size()
        self._tokens = min(self._tokens, self.burst)

    def allows(self) -> bool:
        # The current event's share arrives before its decision.
        tokens = self._tokens + self.fraction
        return (tokens if tokens < self.burst else self.burst) >= 1.0 - 1e-9

    def record(self, asked: bool) -> None:
        tokens = self._tokens + self.fraction
        if tokens > self.burst:
            tokens = self.burst
        self._tokens = tokens - 1.0 if asked else tokens
        if not self._track:
            return
        history = self._history
        if len(history) == self.window and history[0]:
            self._asked -= 1
        history.append(asked)
        self._asked += asked

    @property
    def spend_ratio(self) -> float:
        return self._asked / len(self._history) if self._history else 0.0
