"""Offline prequential (test-then-train) evaluation of an active learner on a labelled stream.

Each event is first scored (the test), the gate decides whether its label is bought, and bought
labels reach the learner ``label_delay`` events later (the train), as in production where the
reviewer answers after a while. Every event's prediction is compared with its true label, so the
figures cover the whole stream, not only the labelled part. The service runs the same
:class:`~streamal.core.learner.ActiveLearner`, so this measures what the service does online.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from streamal.core.learner import ActiveLearner
from streamal.core.messages import Label, Transaction, TransactionSchema, extract_features

__all__ = ["Window", "Report", "prequential"]


@dataclass(slots=True)
class Window:
    """Figures over one window of consecutive events."""

    start: int
    events: int = 0
    correct: int = 0
    positives: int = 0
    true_positives: int = 0
    requested: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.events if self.events else float("nan")

    @property
    def recall(self) -> float:
        return self.true_positives / self.positives if self.positives else float("nan")


@dataclass(slots=True)
class Report:
    """The result of a prequential run."""

    events: int = 0
    requested: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    seconds: float = 0.0

    def tail(self, events: int) -> Window:
        """Totals over the last ``events`` events (whole windows)."""
        total = Window(start=self.events)
        for w in reversed(self.windows):
            if total.events >= events:
                break
            total.start = w.start
            total.events += w.events
            total.correct += w.correct
            total.positives += w.positives
            total.true_positives += w.true_positives
            total.requested += w.requested
        return total

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "requested": self.requested,
            "spend_ratio": self.requested / self.events if self.events else 0.0,
            "by_reason": dict(self.by_reason),
            "us_per_event": 1e6 * self.seconds / self.events if self.events else 0.0,
            "windows": [
                {
                    "start": w.start,
                    "events": w.events,
                    "accuracy": w.accuracy,
                    "recall": w.recall,
                    "requested": w.requested,
                }
                for w in self.windows
            ],
        }


def prequential(
    stream: Iterable[tuple[Mapping[str, Any], Hashable]],
    learner: ActiveLearner,
    label_delay: int = 0,
    window: int = 1000,
    schema: TransactionSchema | None = None,
) -> Report:
    """Run ``learner`` over ``stream`` of ``(event, true_label)`` pairs.

    Parameters
    ----------
    stream
        Events (flat dicts, with an id field) and their true labels.
    learner
        The active learner under test; it is trained in place.
    label_delay
        Number of events between a request and the arrival of its label.
    window
        Events per window of the learning curve.
    schema
        Which fields are features; the learner's schema by default.
    """
    schema = schema if schema is not None else learner.schema
    positive = learner.model.positive
    report = Report()
    due: deque[tuple[int, Label]] = deque()
    current = Window(start=0)
    started = time.perf_counter()
    for i, (event, truth) in enumerate(stream):
        while due and due[0][0] <= i:
            learner.learn(due.popleft()[1])
        event_id = str(event[schema.id_field])
        txn = Transaction(event_id, None, extract_features(event, schema), dict(event))
        scored = learner.score(txn, keep_event=False)
        if current.events == window:
            report.windows.append(current)
            current = Window(start=i)
        current.events += 1
        current.correct += scored.predicted == truth
        if truth == positive:
            current.positives += 1
            current.true_positives += scored.predicted == truth
        decision = scored.decision
        if decision.ask:
            assert decision.reason is not None
            current.requested += 1
            report.requested += 1
            report.by_reason[decision.reason] = report.by_reason.get(decision.reason, 0) + 1
            due.append((i + 1 + label_delay, Label(event_id, truth, "evaluator")))
        report.events += 1
    for _, label in due:
        learner.learn(label)
    if current.events:
        report.windows.append(current)
    report.seconds = time.perf_counter() - started
    return report
