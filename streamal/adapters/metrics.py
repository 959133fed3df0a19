"""Prometheus metrics: the names dashboards and alerts depend on (see the README's table).

Every labelled child that the hot path touches is bound once here, because ``.labels()`` costs
more than the increment itself. Label values are bounded: reasons, lanes, outcomes, classes, a
configured list of label sources, two days and two estimators; never event, card or customer ids.
The fraud gauges (:mod:`streamal.core.fraud_tracker`) are computed when Prometheus scrapes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamal.core.estimate import Proportion
from streamal.core.fraud_tracker import DAYS, ESTIMATORS, FraudFigures, FraudTracker
from streamal.core.learner import UNREQUESTED, LabelResult
from streamal.core.messages import REASONS, ClassSet, Label
from streamal.core.pending import PendingItem

__all__ = ["Metrics"]

# The *_created series double the exposition size and no dashboard reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LANES = ("uncertainty", "random", "exploit", "unrequested")
LABEL_OUTCOMES = ("learned", "duplicate", "orphan", "invalid")
#: Event-in to score-out is sub-millisecond when healthy; the tail matters when the GIL is busy.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
#: Request to label: reviewers answer in minutes to hours, chargebacks in weeks.
DELAY_BUCKETS = (1, 10, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400, 30 * 86400)


class Metrics:
    """All of streamal's metrics, in their own registry (so tests and replicas never collide)."""

    def __init__(
        self,
        classes: ClassSet,
        label_sources: Sequence[str],
        registry: CollectorRegistry | None = None,
        fraud: FraudTracker | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sources = tuple(label_sources) + ("other",)
        #: The risk class: a label of this class is a fraud.
        self.positive = classes.classes[-1]
        #: Live fraud figures (card precision@k with its k, windows, event fields).
        self.fraud = fraud if fraud is not None else FraudTracker()
        self._fraud_lock = threading.Lock()
        events = Counter(
            "streamal_events", "Transactions seen, by outcome.", ["outcome"], registry=r
        )
        self.events_scored = events.labels("scored")
        self.events_invalid = events.labels("invalid")
        self.dead_letters = Counter(
            "streamal_dead_letters",
            "Messages sent to the dead-letter topic, by source topic kind and reason.",
            ["input", "reason"],
            registry=r,
        )
        for kind in ("transactions", "labels"):
            for reason in REASONS:
                self.dead_letters.labels(kind, reason)
        self.reviews_unreadable = Counter(
            "streamal_reviews_unreadable",
            "Records on the reviews topic that do not decode, by reason (skipped).",
            ["reason"],
            registry=r,
        )
        for reason in REASONS:
            self.reviews_unreadable.labels(reason)
        requests = Counter(
            "streamal_label_requests", "Review requests, by reason.", ["reason"], registry=r
        )
        self.requests = {lane: requests.labels(lane) for lane in LANES[:3]}
        self.labels = Counter(
            "streamal_labels",
            "Labels received, by source and outcome.",
            ["source", "outcome"],
            registry=r,
        )
        self._labels = {
            (s, o): self.labels.labels(s, o) for s in self.sources for o in LABEL_OUTCOMES
        }
        self.budget_ratio = Gauge(
            "streamal_label_budget_ratio", "Configured share of events sent to review.", registry=r
        )
        self.spend_ratio = Gauge(
            "streamal_label_spend_ratio",
            "Observed review requests per event over the budget window.",
            registry=r,
        )
        self.threshold = Gauge(
            "streamal_gate_threshold", "Current uncertainty threshold of the gate.", registry=r
        )
        self.rare_class_share = Gauge(
            "streamal_gate_rare_class_share",
            "Share of the rarest class among the labels learned (measure auto only).",
            registry=r,
        )
        self.rare_mode = Gauge(
            "streamal_gate_rare_mode",
            "1 while the auto measure scores by PAL's gain times entropy (a class is rare).",
            registry=r,
        )
        self.backlog = Gauge("streamal_review_backlog", "Open review requests.", registry=r)
        self.event_seconds = Histogram(
            "streamal_event_processing_seconds",
            "Time from a transaction taken off the broker to its score produced.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.label_delay = Histogram(
            "streamal_label_delay_seconds",
            "Time from a review request to its label being learned.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.label_apply = Histogram(
            "streamal_label_apply_seconds",
            "Time from a label written to the labels topic to the model updated with it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        outcomes = Counter(
            "streamal_label_outcomes",
            "Labelled events by lane, predicted class (at scoring time) and true class.",
            ["lane", "predicted", "actual"],
            registry=r,
        )
        self.outcomes = {
            (lane, p, a): outcomes.labels(lane, ClassSet.name(p), ClassSet.name(a))
            for lane in LANES
            for p in classes.classes
            for a in classes.classes
        }
        self.accuracy = Gauge(
            "streamal_model_accuracy",
            "Prequential accuracy on labelled events: 'labeled' (biased towards hard cases) and "
            "'random_lane' (unbiased estimate for the whole stream).",
            ["estimator"],
            registry=r,
        )
        self.accuracy_labeled = self.accuracy.labels("labeled")
        self.accuracy_random = self.accuracy.labels("random_lane")
        source_outcomes = Counter(
            "streamal_label_source_outcomes",
            "Learned labels by label source, predicted class (at scoring time) and true class; "
            "requested and unrequested labels alike.",
            ["source", "predicted", "actual"],
            registry=r,
        )
        self._source_outcomes = {
            (s, p, a): source_outcomes.labels(s, ClassSet.name(p), ClassSet.name(a))
            for s in self.sources
            for p in classes.classes
            for a in classes.classes
        }
        by_source = Gauge(
            "streamal_model_accuracy_by_source",
            "Prequential accuracy on the labels learned from each source since this replica "
            "started (requested and unrequested labels; NaN before the first).",
            ["source"],
            registry=r,
        )
        self._accuracy_by_source = {s: (Proportion(), by_source.labels(s)) for s in self.sources}
        for _, gauge in self._accuracy_by_source.values():
            gauge.set(math.nan)
        self.fraud_amount_caught = Counter(
            "streamal_fraud_amount_caught",
            "Amount of the learned fraud labels whose transaction the gate had requested for "
            "review (amount field of the event; 0 where it has none).",
            registry=r,
        )
        self.fraud_amount_missed = Counter(
            "streamal_fraud_amount_missed",
            "Amount of the learned fraud labels nobody had requested (a chargeback carrying its "
            "event): fraud the gate let through, as far as labels tell.",
            registry=r,
        )
        r.register(_FraudCollector(self))
        self.updates = Counter("streamal_model_updates", "Learn steps of the model.", registry=r)
        self._lagging: set[tuple[str, str]] = set()
        self.lag = Gauge(
            "streamal_consumer_lag",
            "Records behind the log end, by topic and partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.checkpoint_success = Gauge(
            "streamal_checkpoint_last_success_timestamp_seconds",
            "Unix time of the last durable checkpoint.",
            registry=r,
        )
        self.pending_expired = Counter(
            "streamal_pending_expired", "Open review requests dropped by age or size.", registry=r
        )

    def source(self, name: str) -> str:
        """The metric label value for a label source (bounded to the configured names)."""
        return name if name in self.sources else "other"

    def count_label(self, source: str, outcome: str) -> None:
        self._labels[(self.source(source), outcome)].inc()

    def count_outcome(self, lane: str, predicted: Hashable, actual: Hashable) -> None:
        child = self.outcomes.get((lane, predicted, actual))
        if child is not None:
            child.inc()

    def count_learned(self, label: Label, result: LabelResult, item: PendingItem | None) -> None:
        """A learned label: its source's counts and accuracy, and the fraud figures. ``item`` is
        the review request it answered (score at request time, event), taken before learning."""
        lane = result.lane or UNREQUESTED
        s = self.source(label.source)
        child = self._source_outcomes.get((s, result.predicted, result.actual))
        if child is not None:
            child.inc()
        accuracy, gauge = self._accuracy_by_source[s]
        accuracy.update(result.predicted == result.actual)
        gauge.set(accuracy.value)
        fraud = result.actual == self.positive
        event = label.event
        score: float | None = None
        requested_at: float | None = None
        if item is not None and lane != UNREQUESTED:
            score = item.proba.get(self.positive)
            requested_at = item.requested_at
            event = item.event or event
        with self._fraud_lock:
            amount = self.fraud.learned(label.event_id, lane, fraud, score, event, requested_at)
        if fraud and amount:
            caught = lane != UNREQUESTED
            (self.fraud_amount_caught if caught else self.fraud_amount_missed).inc(amount)

    def fraud_figures(self) -> FraudFigures:
        """The live fraud figures, computed now (cached by the tracker until the next label)."""
        with self._fraud_lock:
            return self.fraud.figures()

    def set_lag(self, lags: Iterable[tuple[str, int, int]]) -> None:
        """Lag of the partitions this replica owns now; partitions that moved away after a
        rebalance are removed, or their last value would keep a lag alert firing forever."""
        current = set()
        for topic, partition, lag in lags:
            key = (topic, str(partition))
            self.lag.labels(*key).set(lag)
            current.add(key)
        for key in self._lagging - current:
            self.lag.remove(*key)
        self._lagging = current


class _FraudCollector(Collector):
    """The fraud gauges, computed at scrape time: ranking a window is O(n log n), too much for
    every label, and nothing at all when no label came in since the last scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families(None))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families(self._metrics.fraud_figures()))

    def _families(self, f: FraudFigures | None) -> list[GaugeMetricFamily]:
        t = self._metrics.fraud
        window = f"the last {t.window} labelled requests"
        families: list[tuple[str, str, str, Mapping[str, float]]] = [
            (
                "streamal_fraud_card_precision_at_k",
                f"Card precision@k (k={t.k}) by event day (UTC; 'current': the latest day with a "
                "labelled request, 'previous': the day before): of the k riskiest cards (score at "
                "request time) among the day's labelled requested cards, the share with a fraud "
                "label, over min(k, cards); cards known compromised from an earlier day left out.",
                "day",
                {d: f.card_precision_at_k[d] for d in DAYS} if f else {},
            ),
            (
                "streamal_fraud_reviewed_cards",
                "Labelled requested cards of the day that card precision@k ranks, by event day.",
                "day",
                {d: f.reviewed_cards[d] for d in DAYS} if f else {},
            ),
            (
                "streamal_fraud_score_auc",
                f"ROC AUC of the request-time scores over {window} ('labeled': every lane, biased "
                "towards what the gate picks) or the last as many random-lane ones ('random_lane': "
                "a uniform sample of the stream, unbiased).",
                "estimator",
                {e: f.auc[e] for e in ESTIMATORS} if f else {},
            ),
            (
                "streamal_fraud_score_average_precision",
                f"Average precision of the request-time scores over {window}, by estimator as for "
                "streamal_fraud_score_auc.",
                "estimator",
                {e: f.average_precision[e] for e in ESTIMATORS} if f else {},
            ),
            (
                "streamal_fraud_window_labels",
                "Labelled requests behind streamal_fraud_score_auc and _average_precision.",
                "estimator",
                {e: f.window_labels[e] for e in ESTIMATORS} if f else {},
            ),
        ]
        out = []
        for name, doc, label, values in families:
            family = GaugeMetricFamily(name, doc, labels=[label])
            for value_label, value in values.items():
                family.add_metric([value_label], value)
            out.append(family)
        for name, doc, single in (
            (
                "streamal_fraud_alert_precision",
                f"Share of fraud among the exploit-lane (alert) requests in {window}.",
                f.alert_precision if f else None,
            ),
            (
                "streamal_fraud_card_recall",
                f"Of the cards among the last {t.window} fraud labels learned (any source, "
                "chargebacks included), the share with a fraudulent transaction the gate "
                "requested. Frauds nobody labels are unseen.",
                f.card_recall if f else None,
            ),
        ):
            out.append(GaugeMetricFamily(name, doc, value=single))
        return out
