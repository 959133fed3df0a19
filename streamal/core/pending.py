"""The pending store: what the model needs to learn from a label that has not come back yet.

In fraud review labels are late by design (reviewers answer in minutes to hours, chargebacks in
weeks), so the features seen at scoring time are kept until the label arrives. The store is
bounded two ways, by item count and by age, and remembers which ids it already resolved so that a
duplicate label is recognised as such rather than mistaken for an unknown one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PendingItem", "PendingStore"]


@dataclass(slots=True)
class PendingItem:
    """One open review request."""

    event_id: str
    features: dict[str, float]
    proba: dict[Hashable, float]
    predicted: Hashable
    reason: str
    probability: float
    model_version: int
    requested_at: float
    event: dict[str, Any] | None = None


class PendingStore:
    """Open review requests by event id, oldest first.

    Parameters
    ----------
    max_items
        At most this many open requests; the oldest is evicted (and counted) beyond it.
    ttl_seconds
        Requests older than this are expired (and counted) and their labels become orphans.
    remember_resolved
        How many resolved ids to remember for duplicate detection.

    Examples
    --------
    >>> store = PendingStore(max_items=2)
    >>> for i in range(3):
    ...     _ = store.add(PendingItem(f"e{i}", {}, {}, False, "uncertainty", 1.0, 0, float(i)))
    >>> len(store), store.evicted
    (2, 1)
    >>> store.resolve("e2").event_id, store.resolve("e2"), store.was_resolved("e2")
    ('e2', None, True)
    """

    def __init__(
        self,
        max_items: int = 100_000,
        ttl_seconds: float = 7 * 24 * 3600.0,
        remember_resolved: int = 1_000_000,
    ) -> None:
        self.max_items = max_items
        self.ttl_seconds = ttl_seconds
        self.remember_resolved = remember_resolved
        self._items: OrderedDict[str, PendingItem] = OrderedDict()
        self._resolved: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0
        self.expired = 0

    def add(self, item: PendingItem) -> bool:
        """Record an open request; False if that id is already open or was already resolved."""
        with self._lock:
            if item.event_id in self._items or item.event_id in self._resolved:
                return False
            self._items[item.event_id] = item
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
                self.evicted += 1
            return True

    def resolve(self, event_id: str) -> PendingItem | None:
        """Take the open request for ``event_id`` (None if unknown) and remember the id."""
        with self._lock:
            item = self._items.pop(event_id, None)
            if item is not None:
                self._remember(event_id)
            return item

    def get(self, event_id: str) -> PendingItem | None:
        """The open request for ``event_id``, left open (None if unknown)."""
        with self._lock:
            return self._items.get(event_id)

    def mark_resolved(self, event_id: str) -> None:
        """Remember an id learned without an open request (a label that carried its event)."""
        with self._lock:
            self._remember(event_id)

    def _remember(self, event_id: str) -> None:
        self._resolved[event_id] = None
        self._resolved.move_to_end(event_id)
        while len(self._resolved) > self.remember_resolved:
            self._resolved.popitem(last=False)

    def was_resolved(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._resolved

    def expire(self, now: float) -> int:
        """Drop requests older than the time-to-live; returns how many went."""
        cutoff = now - self.ttl_seconds
        dropped = 0
        with self._lock:
            while self._items:
                oldest = next(iter(self._items.values()))
                if oldest.requested_at >= cutoff:
                    break
                self._items.popitem(last=False)
                dropped += 1
            self.expired += dropped
        return dropped

    @property
    def dropped(self) -> int:
        """Requests dropped before their label came, by age or by size (their labels will be
        orphans): what the service's ``streamal_pending_expired_total`` counts."""
        return self.expired + self.evicted

    def snapshot(self, limit: int | None = None) -> list[PendingItem]:
        """The open requests, oldest first, at most ``limit`` (a copy, safe to read while loops
        run)."""
        with self._lock:
            items: Iterator[PendingItem] = iter(self._items.values())
            n = len(self._items) if limit is None else max(0, limit)
            return [item for _, item in zip(range(n), items, strict=False)]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._items

    def __getstate__(self) -> dict[str, Any]:
        # Copied under the lock: the service pickles the store under the model's lock while
        # the reviews loop may add to it, and pickle iterates a dict after this returns.
        with self._lock:
            state = self.__dict__.copy()
            state["_items"] = self._items.copy()
            state["_resolved"] = self._resolved.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
