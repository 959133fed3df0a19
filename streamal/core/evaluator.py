"""Offline prequential (test-then-train) evaluation of an active learner on a labelled stream.

Each event is first scored (the test), the gate decides whether its label is bought, and bought
labels reach the learner later (the train): ``label_delay`` events later, or ``label_delay_seconds``
of stream time later, as in production where the reviewer answers after a while. Every event's
prediction is compared with its true label, so the figures cover the whole stream, not only the
labelled part. The service runs the same :class:`~streamal.core.learner.ActiveLearner`, so this
measures what the service does online.

Two accuracies are reported and named for what they are: ``labeled_accuracy`` on the labels the
gate chose (biased: those are the hard cases) and ``unbiased_accuracy`` on the random lane's
labels (a uniform sample of the stream), with its 95 % Wilson interval.
"""

from __future__ import annotations

import heapq
import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamal.core.estimate import Proportion
from streamal.core.learner import ActiveLearner, LabelResult, Scored
from streamal.core.messages import Label, Transaction, TransactionSchema, extract_features

__all__ = ["Report", "StreamClock", "Window", "average_precision", "prequential"]


class StreamClock:
    """A clock that reads the current event's time, so that time-based parts of the core
    (label delay, reviewer capacity per hour, time-to-live) run on stream time offline."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class Window:
    """Figures over one window of consecutive events."""

    start: int
    events: int = 0
    correct: int = 0
    positives: int = 0
    true_positives: int = 0
    predicted_positives: int = 0
    requested: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.events if self.events else math.nan

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else math.nan

    @property
    def precision(self) -> float:
        pp = self.predicted_positives
        return self.true_positives / pp if pp else math.nan

    def add(self, other: Window) -> None:
        self.events += other.events
        self.correct += other.correct
        self.positives += other.positives
        self.true_positives += other.true_positives
        self.predicted_positives += other.predicted_positives
        self.requested += other.requested


def average_precision(scores: Iterable[float], truth: Iterable[bool]) -> float:
    """Average precision of ``scores`` for the positive class (ties broken pessimistically);
    NaN without positives or with a NaN score (it has no rank), as :func:`auc`.

    >>> average_precision([0.9, 0.8, 0.3, 0.1], [True, False, True, False])
    0.8333333333333333
    """
    pairs = sorted(zip(scores, truth, strict=True), key=lambda p: (-p[0], p[1]))
    positives = sum(1 for _, t in pairs if t)
    if not positives or any(math.isnan(s) for s, _ in pairs):
        return math.nan
    hits = 0
    total = 0.0
    for rank, (_, t) in enumerate(pairs, start=1):
        if t:
            hits += 1
            total += hits / rank
    return total / positives


@dataclass(slots=True)
class Report:
    """The result of a prequential run."""

    events: int = 0
    requested: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    seconds: float = 0.0
    total: Window = field(default_factory=lambda: Window(start=0))
    max_window_spend: float = 0.0
    spend_window: int = 1000
    labeled: Proportion = field(default_factory=Proportion)
    unbiased: Proportion = field(default_factory=Proportion)
    labels_learned: int = 0
    #: Bought labels of the positive class that the learner learned: the frauds the reviewers
    #: saw. Set against ``total.positives`` it measures the gate itself (how many of a rare
    #: class it got into the training set); F1 also measures what the model made of them.
    positives_learned: int = 0
    #: Open requests the pending store dropped before their label came, by age (its
    #: time-to-live, on stream time) or by size (``pending_max_items``): in the service those
    #: labels are orphans, so here they are not learned.
    labels_expired: int = 0
    average_precision: float = math.nan
    kappa: float = math.nan

    def tail(self, events: int) -> Window:
        """Totals over the last ``events`` events (whole windows)."""
        total = Window(start=self.events)
        for w in reversed(self.windows):
            if total.events >= events:
                break
            total.start = w.start
            total.add(w)
        return total

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``streamal evaluate`` (schema in the README)."""
        t = self.total
        f1 = 2 * t.precision * t.recall / (t.precision + t.recall) if t.true_positives else 0.0
        low, high = self.unbiased.interval()
        return {
            "events": self.events,
            "labels_requested": self.requested,
            "positives": t.positives,
            "labels_learned": self.labels_learned,
            "labels_expired": self.labels_expired,
            "positives_learned": self.positives_learned,
            "spend_ratio": self.requested / self.events if self.events else 0.0,
            "max_window_spend_ratio": self.max_window_spend,
            "spend_window": self.spend_window,
            "by_reason": dict(self.by_reason),
            "accuracy": t.accuracy,
            "kappa": self.kappa,
            "precision": t.precision,
            "recall": t.recall,
            "f1": f1,
            "average_precision": self.average_precision,
            "labeled_accuracy": self.labeled.value,
            "unbiased_accuracy": {
                "estimate": self.unbiased.value,
                "ci95": [low, high],
                "labels": self.unbiased.total,
            },
            "us_per_event": 1e6 * self.seconds / self.events if self.events else 0.0,
            "windows": [
                {
                    "start": w.start,
                    "events": w.events,
                    "accuracy": w.accuracy,
                    "recall": w.recall,
                    "precision": w.precision,
                    "requested": w.requested,
                }
                for w in self.windows
            ],
        }


def _kappa(t: Window) -> float:
    n = t.events
    if not n:
        return math.nan
    p_yes = (t.positives / n) * (t.predicted_positives / n)
    p_no = (1 - t.positives / n) * (1 - t.predicted_positives / n)
    expected = p_yes + p_no
    return (t.accuracy - expected) / (1 - expected) if expected < 1 else math.nan


def prequential(
    stream: Iterable[tuple[Mapping[str, Any], Hashable]],
    learner: ActiveLearner,
    label_delay: int = 0,
    window: int = 1000,
    schema: TransactionSchema | None = None,
    label_delay_seconds: float | None = None,
    clock: StreamClock | None = None,
    spend_window: int = 1000,
    chargeback_delay_seconds: float | None = None,
    chargeback_negatives: bool = False,
    on_event: Callable[[Mapping[str, Any], Hashable, Scored], None] | None = None,
    on_label: Callable[[Label, LabelResult], None] | None = None,
) -> Report:
    """Run ``learner`` over ``stream`` of ``(event, true_label)`` pairs.

    Parameters
    ----------
    stream
        Events (flat dicts) and their true labels. Events without the id field get their index.
    learner
        The active learner under test; it is trained in place.
    label_delay
        Events between a request and the arrival of its label.
    window
        Events per window of the learning curve.
    schema
        Which fields are features; the learner's schema by default.
    label_delay_seconds
        Instead of ``label_delay``: stream time between request and label; needs event times
        (the schema's time field) and a ``clock`` shared with the learner.
    clock
        Set to each event's time before it is scored (the learner and gate may read it).
    spend_window
        Events per sliding window over which the maximum spend is reported.
    chargeback_delay_seconds
        Every positive event also gets a label from source ``chargeback`` this much stream time
        later, carrying its event, whether or not the gate asked (needs event times).
    chargeback_negatives
        With chargebacks, an event that got none by then is labelled genuine (source
        ``no_chargeback``), as card issuers treat the silence of the chargeback channel.
    on_event, on_label
        Called with every scored event and every delivered label (for extra metrics).
    """
    schema = schema if schema is not None else learner.schema
    positive = learner.model.positive
    report = Report(spend_window=spend_window)
    due_events: deque[tuple[int, Label, str, bool]] = deque()
    # (due, event index, 0 for a bought label / 1 for a chargeback, ...): an event's bought label
    # and its chargeback may fall due together, and Labels do not compare.
    due_times: list[tuple[float, int, int, Label, str, bool]] = []
    current = Window(start=0)
    recent_requests: deque[int] = deque()
    scores = array("d")
    truths = bytearray()
    by_time = label_delay_seconds is not None or chargeback_delay_seconds is not None
    dropped_before = learner.pending.dropped
    started = time.perf_counter()

    def deliver(label: Label, lane: str, predicted_right: bool) -> None:
        result = learner.learn(label)
        if on_label is not None:
            on_label(label, result)
        if label.source in ("chargeback", "no_chargeback"):
            return  # not bought by the gate: counted apart from the estimators
        if result.outcome == "learned":
            report.labels_learned += 1
            report.positives_learned += label.label == positive
            report.labeled.update(predicted_right)
            if lane == "random":
                report.unbiased.update(predicted_right)

    for i, (event, truth) in enumerate(stream):
        now = None
        if by_time or clock is not None:
            raw_time = event.get(schema.time_field)
            now = float(raw_time) if isinstance(raw_time, int | float) else None
            if clock is not None and now is not None:
                clock.now = now
                # The service's housekeeping, on stream time: requests older than the pending
                # store's time-to-live expire, and a label that comes later is an orphan.
                learner.pending.expire(now)
        while due_events and due_events[0][0] <= i:
            _, label, lane, right_then = due_events.popleft()
            deliver(label, lane, right_then)
        if by_time and now is not None:
            while due_times and due_times[0][0] <= now:
                _, _, _, label, lane, right_then = heapq.heappop(due_times)
                deliver(label, lane, right_then)
        event_id = str(event.get(schema.id_field, i))
        txn = Transaction(event_id, now, extract_features(event, schema), dict(event))
        scored = learner.score(txn, keep_event=learner.features is not None)
        if current.events == window:
            report.windows.append(current)
            current = Window(start=i)
        right = scored.predicted == truth
        current.events += 1
        current.correct += right
        is_positive = truth == positive
        current.positives += is_positive
        current.true_positives += is_positive and right
        current.predicted_positives += scored.predicted == positive
        scores.append(scored.risk)
        truths.append(is_positive)
        if on_event is not None:
            on_event(event, truth, scored)
        if chargeback_delay_seconds is not None and now is not None:
            if is_positive or chargeback_negatives:
                source = "chargeback" if is_positive else "no_chargeback"
                # The issuer's scoring log keeps the features the event was scored with.
                delayed = Label(
                    event_id, truth, source, event=dict(event), features=dict(txn.features)
                )
                due = now + chargeback_delay_seconds
                heapq.heappush(due_times, (due, i, 1, delayed, "", right))
        decision = scored.decision
        while recent_requests and recent_requests[0] <= i - spend_window:
            recent_requests.popleft()
        if decision.ask:
            reason = decision.reason or "unknown"
            current.requested += 1
            report.requested += 1
            report.by_reason[reason] = report.by_reason.get(reason, 0) + 1
            recent_requests.append(i)
            label = Label(event_id, truth, "evaluator")
            if label_delay_seconds is not None and now is not None:
                heapq.heappush(due_times, (now + label_delay_seconds, i, 0, label, reason, right))
            else:
                due_events.append((i + 1 + label_delay, label, reason, right))
        # Spend over the last ``spend_window`` events (a partial first window counts as whole).
        report.max_window_spend = max(report.max_window_spend, len(recent_requests) / spend_window)
        report.events += 1
    for _, label, lane, right_then in due_events:
        deliver(label, lane, right_then)
    for due, _, _, label, lane, right_then in sorted(due_times, key=lambda d: d[:3]):
        if clock is not None:
            learner.pending.expire(due)
        deliver(label, lane, right_then)
    report.labels_expired = learner.pending.dropped - dropped_before
    if current.events:
        report.windows.append(current)
    for w in report.windows:
        report.total.add(w)
    report.kappa = _kappa(report.total)
    report.average_precision = average_precision(scores, map(bool, truths))
    report.seconds = time.perf_counter() - started
    return report
