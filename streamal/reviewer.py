"""A simulated reviewer: answers review requests with the true label after a delay.

It stands in for the fraud analysts of a real deployment (``streamal demo``, tests): it reads the
reviews topic like a case-management tool would, waits ``delay`` seconds per request (the time a
human takes), and writes the answer to the labels topic with source ``simulated``. The truth comes
from an ``oracle`` (event id -> class), because only the data generator knows it. Given a
:class:`~streamal.core.reviewing.ReviewerModel`, the team has a capacity per hour (requests over
it are dropped), random delays and a label noise rate instead.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from kafka import TopicPartition

from streamal.adapters.kafka import make_consumer, make_producer
from streamal.config import Settings
from streamal.core.messages import SCHEMA_VERSION, ClassSet, to_iso
from streamal.core.reviewing import ReviewerModel

__all__ = ["SimulatedReviewer", "assign_from_end"]

log = logging.getLogger("streamal.reviewer")


def assign_from_end(consumer: Any, topic: str, timeout: float = 10.0) -> None:
    """Assign every partition of ``topic`` and start at its end: only new records count.

    Positions are fixed here (not lazily at the first poll), so a record written after this
    returns is never missed.
    """
    deadline = time.monotonic() + timeout
    partitions = consumer.partitions_for_topic(topic)
    while not partitions:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {topic!r} has no partitions after {timeout:.0f} s")
        time.sleep(0.1)
        partitions = consumer.partitions_for_topic(topic)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_end(*assigned)
    for tp in assigned:
        consumer.position(tp)


class SimulatedReviewer:
    """Consumes review requests and answers each one with its true label after ``delay`` s.

    Parameters
    ----------
    settings
        Broker connection and topic names (reviews in, labels out).
    oracle
        The true class of an event id, or ``None`` if unknown (such requests are not answered).
    delay
        Seconds between receiving a request and answering it.
    source
        The ``source`` written on every label.
    model
        Capacity, delay and noise of the team (on the monotonic clock); replaces ``delay``.
        Noise flips binary (``bool``) truths only.
    """

    def __init__(
        self,
        settings: Settings,
        oracle: Callable[[str], Hashable | None],
        delay: float = 0.5,
        source: str = "simulated",
        model: ReviewerModel | None = None,
    ) -> None:
        self.settings = settings
        self.oracle = oracle
        self.delay = delay
        self.source = source
        self.model = model
        #: Requests read from the reviews topic (deduplicated by event id), by reason.
        self.by_reason: Counter[str] = Counter()
        self.seen = 0
        self.unknown = 0
        #: Labels acknowledged by the broker.
        self.answered = 0
        self.failed = 0
        #: Requests over the model's capacity (never answered) and answers flipped by its noise.
        self.dropped = 0
        self.flipped = 0
        self._due: list[tuple[float, int, str, Hashable]] = []  # a heap: delays may vary
        self._order = itertools.count()
        self._ids: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None
        self._producer: Any = None

    @property
    def outstanding(self) -> int:
        """Requests seen but not answered (or failed, or dropped) yet."""
        return self.seen - self.answered - self.failed - self.dropped

    def start(self) -> None:
        """Connect, position at the end of the reviews topic, and answer in a daemon thread."""
        s = self.settings
        self._consumer = make_consumer(s, group_id=None, fetch_max_wait_ms=20)
        try:
            assign_from_end(self._consumer, s.topic_reviews)
            self._producer = make_producer(s)
        except BaseException:
            self._consumer.close(autocommit=False)
            self._consumer = None
            raise
        self._thread = threading.Thread(target=self._loop, name="reviewer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop answering (requests still waiting are dropped) and close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=timeout)
            self._producer = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = 0.1
            if self._due:
                wait = min(wait, max(0.0, self._due[0][0] - time.monotonic()))
            try:
                batch = self._consumer.poll(timeout_ms=int(wait * 1000))
                for records in batch.values():
                    for record in records:
                        self._take(record.value)
                self._answer_due()
            except Exception:  # noqa: BLE001 - a reviewer that dies silently stalls the demo
                log.exception("simulated reviewer failed; retrying in 1 s")
                self._stop.wait(1.0)

    def _take(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            event_id = str(body["event_id"])
        except (ValueError, KeyError, TypeError):
            return
        if event_id in self._ids:  # the service delivers at least once
            return
        self._ids.add(event_id)
        truth = self.oracle(event_id)
        if truth is None:
            self.unknown += 1
            return
        self.seen += 1
        self.by_reason[str(body.get("reason", "?"))] += 1
        now = time.monotonic()
        due = now + self.delay
        if self.model is not None:
            review = self.model.review(now)
            if review is None:
                self.dropped += 1
                return
            due = review.answer_at
            if review.flipped and isinstance(truth, bool):
                truth = review.label(truth)
                self.flipped += 1
        heapq.heappush(self._due, (due, next(self._order), event_id, truth))

    def _answer_due(self) -> None:
        now = time.monotonic()
        futures = []
        try:
            while self._due and self._due[0][0] <= now:
                _, _, event_id, truth = self._due[0]
                message = {
                    "schema_version": SCHEMA_VERSION,
                    "event_id": event_id,
                    "label": ClassSet.name(truth),
                    "source": self.source,
                    "labelled_at": to_iso(time.time()),
                }
                futures.append(
                    self._producer.send(
                        self.settings.topic_labels,
                        key=event_id.encode(),
                        value=json.dumps(message).encode(),
                    )
                )
                heapq.heappop(self._due)
        finally:
            # Also when a send raised: the answers sent before it are out of the queue, so they
            # are counted now (the failing one stays due and is sent again).
            if futures:
                self._producer.flush()
            for future in futures:
                if future.failed():
                    self.failed += 1
                else:
                    self.answered += 1
