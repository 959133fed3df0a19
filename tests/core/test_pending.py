"""PendingStore: open review requests, bounded by count and age, duplicates recognised."""

from __future__ import annotations

import pickle
import threading

import pytest

from streamal.core.pending import PendingItem, PendingStore


def item(event_id: str, at: float = 0.0, reason: str = "uncertainty") -> PendingItem:
    return PendingItem(
        event_id=event_id,
        features={"amount": 1.0},
        proba={False: 0.4, True: 0.6},
        predicted=True,
        reason=reason,
        probability=1.0,
        model_version=3,
        requested_at=at,
        event={"event_id": event_id, "amount": 1.0},
    )


def test_add_and_resolve() -> None:
    store = PendingStore()
    assert store.add(item("e1", 1.0))
    assert store.add(item("e2", 2.0))
    assert len(store) == 2
    got = store.resolve("e1")
    assert got is not None and got.event_id == "e1" and got.requested_at == 1.0
    assert got.features == {"amount": 1.0} and got.reason == "uncertainty"
    assert len(store) == 1
    assert store.was_resolved("e1") and not store.was_resolved("e2")


def test_duplicates_are_refused() -> None:
    store = PendingStore()
    assert store.add(item("e1", 1.0))
    assert not store.add(item("e1", 5.0))  # already open: the first request stands
    assert len(store) == 1
    assert store.snapshot()[0].requested_at == 1.0
    assert store.resolve("e1") is not None
    assert store.resolve("e1") is None  # a second label finds nothing open...
    assert store.was_resolved("e1")  # ...and is recognised as a duplicate
    assert not store.add(item("e1", 9.0))  # nor can a resolved id be reopened
    assert len(store) == 0


def test_unknown_id_is_not_remembered() -> None:
    store = PendingStore()
    assert store.resolve("nope") is None
    assert not store.was_resolved("nope")


def test_mark_resolved_without_an_open_request() -> None:
    store = PendingStore()
    store.mark_resolved("e9")
    assert store.was_resolved("e9")
    assert not store.add(item("e9"))


def test_max_items_evicts_the_oldest_and_counts() -> None:
    store = PendingStore(max_items=3)
    for i in range(5):
        assert store.add(item(f"e{i}", float(i)))
    assert len(store) == 3
    assert store.evicted == 2
    assert [i.event_id for i in store.snapshot()] == ["e2", "e3", "e4"]
    # An evicted request is gone, not resolved: its label will be an orphan, not a duplicate.
    assert store.resolve("e0") is None and not store.was_resolved("e0")
    assert store.expired == 0


def test_ttl_expiry_counts_and_keeps_the_young() -> None:
    store = PendingStore(ttl_seconds=100.0)
    for i, at in enumerate([0.0, 10.0, 50.0, 90.0]):
        store.add(item(f"e{i}", at))
    assert store.expire(now=105.0) == 1  # only e0 is older than 100 s
    assert store.expire(now=150.0) == 1  # e1 goes; e2, at exactly the cutoff, stays
    assert [i.event_id for i in store.snapshot()] == ["e2", "e3"]
    assert store.expired == 2
    assert store.expire(now=150.0) == 0
    assert store.expire(now=1e9) == 2
    assert len(store) == 0 and store.expired == 4
    assert store.evicted == 0
    assert not store.was_resolved("e0")


def test_snapshot_order_limit_and_copy() -> None:
    store = PendingStore()
    for i in range(10):
        store.add(item(f"e{i}", float(i)))
    store.resolve("e3")
    all_items = store.snapshot()
    assert [i.event_id for i in all_items] == [f"e{i}" for i in range(10) if i != 3]
    assert [i.event_id for i in store.snapshot(limit=3)] == ["e0", "e1", "e2"]
    assert len(store.snapshot(limit=100)) == 9
    all_items.clear()  # a copy: clearing it leaves the store alone
    assert len(store) == 9


def test_remembered_ids_are_bounded() -> None:
    store = PendingStore(remember_resolved=2)
    for i in range(3):
        store.add(item(f"e{i}"))
        store.resolve(f"e{i}")
    assert not store.was_resolved("e0")  # forgotten, oldest first
    assert store.was_resolved("e1") and store.was_resolved("e2")


def test_pickle_round_trip() -> None:
    store = PendingStore(max_items=5, ttl_seconds=60.0)
    store.add(item("e1", 1.0))
    store.add(item("e2", 2.0))
    store.resolve("e1")
    assert "_lock" not in store.__getstate__()
    copy = pickle.loads(pickle.dumps(store))
    assert [i.event_id for i in copy.snapshot()] == ["e2"]
    assert copy.was_resolved("e1")
    assert (copy.max_items, copy.ttl_seconds) == (5, 60.0)
    assert copy.add(item("e3", 3.0)) and len(copy) == 2 and len(store) == 1


@pytest.mark.parametrize("max_items", [1, 2])
def test_tiny_store(max_items: int) -> None:
    store = PendingStore(max_items=max_items)
    for i in range(4):
        store.add(item(f"e{i}"))
    assert len(store) == max_items
    assert store.evicted == 4 - max_items


def test_snapshot_limit_zero_is_no_items() -> None:
    # ``limit or len(...)`` read a limit of 0 as "no limit" and returned every open request.
    store = PendingStore()
    for i in range(3):
        store.add(PendingItem(f"e{i}", {}, {}, False, "uncertainty", 1.0, 0, float(i)))
    assert store.snapshot(0) == []
    assert [item.event_id for item in store.snapshot(2)] == ["e0", "e1"]
    assert len(store.snapshot()) == 3


class _AddsWhilePickled:
    """Stands for another thread's add landing while the store is being pickled."""

    def __init__(self, store: PendingStore) -> None:
        self.store = store

    def __reduce__(self) -> tuple[type[dict[str, int]], tuple[()]]:
        item = PendingItem("late", {}, {}, False, "uncertainty", 1.0, 0, 9.0)
        thread = threading.Thread(target=self.store.add, args=(item,))
        thread.start()
        thread.join(timeout=5)
        return dict, ()


def test_pickling_while_another_thread_adds() -> None:
    # The service pickles the learner (its pending store with it) under the model's lock,
    # while the reviews loop adds requests under the store's lock only: __getstate__ handed
    # pickle the live dicts, so an add meanwhile raised "OrderedDict mutated during
    # iteration" and the checkpoint failed. The state is now copied under the store's lock.
    store = PendingStore()
    for i in range(2000):  # pickle takes the items in batches of 1000
        store.add(PendingItem(f"e{i}", {}, {}, False, "uncertainty", 1.0, 0, float(i), {}))
    store.get("e0").event["hook"] = _AddsWhilePickled(store)  # type: ignore[index]
    copy = pickle.loads(pickle.dumps(store))
    assert [i.event_id for i in copy.snapshot()] == [f"e{i}" for i in range(2000)]
    assert "late" in store
