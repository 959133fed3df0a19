"""The active learner: model + gate + pending store, one event or one label at a time.

This is the object the service, the offline evaluator and the demo all drive. ``score`` is the
events loop's step (predict, gate, remember what a label would need); ``learn`` is the labels
loop's step (join with the open request, learn at once, report the outcome). Neither touches I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from streamal.core.class_balance import ClassBalance
from streamal.core.estimate import Proportion
from streamal.core.features import TransactionFeatures
from streamal.core.gate import Decision, Gate
from streamal.core.messages import Label, Transaction, TransactionSchema, extract_features
from streamal.core.model import OnlineModel
from streamal.core.pending import PendingItem, PendingStore

__all__ = ["ActiveLearner", "LabelResult", "Scored"]

#: Lane of a label that arrived with its event but was never requested (e.g. a chargeback).
UNREQUESTED = "unrequested"


@dataclass(slots=True)
class Scored:
    """The outcome of scoring one transaction."""

    event_id: str
    proba: dict[Hashable, float]
    risk: float
    predicted: Hashable
    decision: Decision
    model_version: int


@dataclass(slots=True)
class LabelResult:
    """What became of one label: ``learned``, ``duplicate`` or ``orphan``."""

    outcome: str
    lane: str | None = None
    predicted: Hashable | None = None
    actual: Hashable | None = None
    delay: float | None = None


class ActiveLearner:
    """Scores events, asks for labels through the gate, and learns labels as they come.

    Parameters
    ----------
    model
        The shared online model.
    gate
        Decides per event whether to request a label.
    pending
        Open review requests.
    schema
        How to read features from a label that carries its own event.
    clock
        Wall clock, injectable for tests.
    card_field
        Event field with the card id, for a gate with a daily card alert lane (``gate.alerts``):
        the gate then gets each event's card and event time (the clock's when it has none).
    class_balance
        Per-class learning weights (:class:`~streamal.core.class_balance.ClassBalance`), on top
        of ``source_weights``; default off.
    """

    def __init__(
        self,
        model: OnlineModel,
        gate: Gate,
        pending: PendingStore | None = None,
        schema: TransactionSchema | None = None,
        clock: Callable[[], float] = time.time,
        features: TransactionFeatures | None = None,
        source_weights: Mapping[str, float] | None = None,
        card_field: str | None = None,
        class_balance: ClassBalance | None = None,
    ) -> None:
        self.model = model
        self.gate = gate
        self.pending = pending if pending is not None else PendingStore()
        self.schema = schema if schema is not None else TransactionSchema()
        self.clock = clock
        #: Stateful per-card/per-terminal features, fed by events and received labels.
        self.features = features
        #: Learning weight per label source (1 for sources not listed).
        self.source_weights: dict[str, float] = dict(source_weights or {})
        #: Learning weight per class, so that a rare class counts (off by default).
        self.class_balance = class_balance if class_balance is not None else ClassBalance()
        if getattr(gate, "alerts", None) is not None and not card_field:
            raise ValueError("the daily card alert lane needs the card field (card_field)")
        self.card_field = card_field
        #: Prequential accuracy on labelled events, by lane (prediction made at scoring time).
        self.accuracy: dict[str, Proportion] = {}

    def score(self, txn: Transaction, keep_event: bool = True) -> Scored:
        """Predict, let the gate decide, and open a review request if it asks.

        The whole step holds the model's lock, as :meth:`learn` does, so that a checkpoint
        taken under the same lock sees model, gate and pending store at one moment.
        """
        with self.model.lock:
            return self._score(txn, keep_event)

    def _score(self, txn: Transaction, keep_event: bool) -> Scored:
        model = self.model
        if self.features is not None:
            txn.features.update(self.features.transform_one(txn.event))
        proba = model.predict_proba_one(txn.features)
        version = model.version
        predicted = max(proba, key=proba.__getitem__)
        if getattr(self.gate, "alerts", None) is None:  # other gates take (proba, x) only
            decision = self.gate.decide(proba, txn.features)
        else:
            when = txn.timestamp if txn.timestamp is not None else self.clock()
            card = self._card(txn.event)
            decision = self.gate.decide(proba, txn.features, card=card, time=when)
        if decision.ask:
            assert decision.reason is not None
            self.pending.add(
                PendingItem(
                    event_id=txn.event_id,
                    features=txn.features,
                    proba=proba,
                    predicted=predicted,
                    reason=decision.reason,
                    probability=decision.probability,
                    model_version=version,
                    requested_at=self.clock(),
                    event=txn.event if keep_event else None,
                )
            )
        return Scored(txn.event_id, proba, proba[model.positive], predicted, decision, version)

    def learn(self, label: Label) -> LabelResult:
        """Join a label with its open request and learn from it at once.

        A label is learned at most once: a second label for the same id is a ``duplicate``; a
        label for an id that is neither open nor carries its event is an ``orphan``.
        """
        with self.model.lock:
            return self._learn(label)

    def _learn(self, label: Label) -> LabelResult:
        pending = self.pending
        if pending.was_resolved(label.event_id):
            return LabelResult("duplicate", actual=label.label)
        item = pending.resolve(label.event_id)
        if item is not None:
            self.model.learn_one(item.features, label.label, self._weight(label), label.source)
            self._teach_gate(item.features, label.label)
            self._track(item.reason, item.predicted, label.label)
            self._feed_features(item.event or label.event, label)
            delay = self.clock() - item.requested_at
            return LabelResult("learned", item.reason, item.predicted, label.label, delay)
        if label.event is not None:
            if label.features is not None:
                features = dict(label.features)
            else:
                features = extract_features(label.event, self.schema)
                if self.features is not None:  # as of now: the history at scoring time is gone
                    features.update(self.features.transform_one(label.event, learn=False))
            proba = self.model.predict_proba_one(features)
            predicted = max(proba, key=proba.__getitem__)
            self.model.learn_one(features, label.label, self._weight(label), label.source)
            self._teach_gate(features, label.label)
            pending.mark_resolved(label.event_id)
            self._feed_features(label.event, label)
            self._track(UNREQUESTED, predicted, label.label)
            return LabelResult("learned", UNREQUESTED, predicted, label.label)
        return LabelResult("orphan", actual=label.label)

    def _weight(self, label: Label) -> float:
        """Count a label that is about to be learned and return its learning weight."""
        self.class_balance.learn_one(label.label)
        return self.source_weights.get(label.source, 1.0) * self.class_balance.weight(label.label)

    def _teach_gate(self, x: Mapping[str, float], y: Hashable) -> None:
        # Gates that learn from labels (PAL's label counts) have ``learn_one``; others need not.
        learn = getattr(self.gate, "learn_one", None)
        if learn is not None:
            learn(x, y)

    def _card(self, event: Mapping[str, Any] | None) -> Hashable | None:
        card = event.get(self.card_field) if event is not None and self.card_field else None
        return card if card is None or isinstance(card, Hashable) else str(card)

    def _feed_features(self, event: dict[str, Any] | None, label: Label) -> None:
        fraud = label.label == self.model.positive
        if self.features is not None and event is not None:
            self.features.learn_label(event, fraud=fraud)
        alerts = getattr(self.gate, "alerts", None)
        card = self._card(event)
        if fraud and alerts is not None and card is not None:  # a known compromised card
            alerts.compromised(card)

    def _track(self, lane: str, predicted: Hashable, actual: Hashable) -> None:
        stats = self.accuracy.get(lane)
        if stats is None:
            stats = self.accuracy[lane] = Proportion()
        stats.update(predicted == actual)
