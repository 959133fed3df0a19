"""Reviewer capacity: constraints on label requests that are not a share of the stream.

A budget fraction says "2 % of transactions"; the review team says "40 cases an hour, and never
more than 500 open at once". Both must hold at the same time, so these constraints sit beside the
fraction budget in the gate, and a request is made only when every one of them allows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["BacklogCap", "Constraint", "TokenBucket"]


class Constraint(Protocol):
    """Anything that can veto a label request."""

    def allows(self) -> bool:
        """True if one more request may be made now."""
        ...

    def record(self, asked: bool) -> None:
        """Account for one event's decision."""
        ...


class TokenBucket:
    """At most ``per_hour`` requests an hour, in bursts of at most ``burst``.

    The bucket refills continuously at ``per_hour / 3600`` tokens a second of ``clock`` time;
    each request takes one token. ``clock`` is wall time in the service and the event time in
    offline evaluation, so a replayed month is limited like the real month was.

    Parameters
    ----------
    per_hour
        Reviewer capacity, in labels per hour.
    burst
        Bucket size: requests that may be made at once after a quiet period.
    clock
        Returns the current time in seconds.

    Examples
    --------
    >>> now = [0.0]
    >>> bucket = TokenBucket(per_hour=3600, burst=2, clock=lambda: now[0])
    >>> [bucket.allows() and (bucket.record(True) or True) for _ in range(3)]
    [True, True, False]
    >>> now[0] = 1.0  # one second later: one more token
    >>> bucket.allows()
    True
    """

    def __init__(
        self, per_hour: float, burst: float | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        if per_hour <= 0:
            raise ValueError(f"capacity must be positive, got {per_hour} per hour")
        self.per_second = per_hour / 3600.0
        self.burst = burst if burst is not None else max(1.0, per_hour / 60.0)
        self.clock = clock
        self._tokens = self.burst
        self._last: float | None = None

    def _refill(self) -> None:
        now = self.clock()
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
        if self._last is None or now > self._last:
            self._last = now

    def allows(self) -> bool:
        self._refill()
        # A token refilled in many small steps sums to just under 1 (40 an hour, an event a
        # second: 90 × (1/90) = 0.99999…), which cost a second per token, 1 % of the capacity.
        return self._tokens >= 1.0 - 1e-9

    def record(self, asked: bool) -> None:
        if asked:
            self._refill()
            self._tokens -= 1.0


class BacklogCap:
    """No new requests while ``max_open`` reviews are open (the queue is full).

    ``open_count`` reads the live backlog (the pending store's size), so the cap frees up as
    soon as labels come back.

    >>> backlog = [0]
    >>> cap = BacklogCap(2, lambda: backlog[0])
    >>> cap.allows()
    True
    >>> backlog[0] = 2
    >>> cap.allows()
    False
    """

    def __init__(self, max_open: int, open_count: Callable[[], int]) -> None:
        if max_open < 1:
            raise ValueError(f"backlog cap must be >= 1, got {max_open}")
        self.max_open = max_open
        self.open_count = open_count

    def allows(self) -> bool:
        return self.open_count() < self.max_open

    def record(self, asked: bool) -> None:
        """The backlog is read live; nothing to account."""
