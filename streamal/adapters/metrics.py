"""Prometheus metrics: the names dashboards and alerts depend on (see the README's table).

Every labelled child that the hot path touches is bound once here, because ``.labels()`` costs
more than the increment itself. Label values are bounded: reasons, lanes, outcomes, classes and a
configured list of label sources; never event or customer ids.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from streamal.core.messages import REASONS, ClassSet

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
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sources = tuple(label_sources) + ("other",)
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
