"""The service: the pure core driven by two Kafka loops in one process.

Delivery guarantee and order of operations
-------------------------------------------
Transactions are processed **at least once**. For each batch the events loop polls, scores and
gates every record, produces one score message per record (and a review request where the gate
asks), waits until the broker has acknowledged all of them (``flush``), and only then commits
the batch's offsets. A crash between produce and commit replays the batch: downstream may see
a score twice and must dedupe by ``event_id``; nothing is ever skipped. If any produce fails, the
batch is not committed and the consumer seeks back to the batch start to process it again.

Labels are consumed without a consumer group, by assigning every partition of the labels topic,
so that every replica sees every label. Each label is joined with its open review request and
learned at once; a label is learned at most once (duplicates are recognised by id).

The two loops share the model through :class:`~streamal.core.model.OnlineModel`'s lock, so a
score is always computed on a whole model, never one half-way through an update.

Bad input never stops a loop: it is dead-lettered with its reason and counted. The labels loop
moves past a bad label (and so checkpoints past it) only once its dead letter is acknowledged.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)

from streamal.adapters import checkpoint
from streamal.adapters.kafka import (
    dead_letter_record,
    ensure_service_topics,
    make_consumer,
    make_producer,
)
from streamal.adapters.metrics import Metrics
from streamal.config import Settings
from streamal.core.class_balance import ClassBalance
from streamal.core.features import FeatureSpec, TransactionFeatures
from streamal.core.fraud_tracker import FraudTracker
from streamal.core.gate import Gate
from streamal.core.imbalance import ImbalanceAwareScorer
from streamal.core.label_policy import SourceSplit, parse_weights
from streamal.core.learner import UNREQUESTED, ActiveLearner
from streamal.core.messages import (
    SCHEMA_VERSION,
    ClassSet,
    InvalidMessage,
    Label,
    TransactionSchema,
    decode_label,
    decode_review,
    decode_transaction,
    encode,
    extract_features,
    review_message,
    score_message,
    to_iso,
)
from streamal.core.model import OnlineModel, make_model, takes_weights
from streamal.core.pending import PendingStore
from streamal.core.policy import MODEL_MEASURES, build_gate

__all__ = ["GATE_SETTINGS", "Service", "build_learner", "gate_from_settings", "gate_settings"]

log = logging.getLogger("streamal")

#: A loop that has not come back from poll for this long is reported dead by /livez.
STALL_SECONDS = 30.0
#: One event in this many has its processing time observed.
LATENCY_SAMPLE = 8
GATE_LANES = ("uncertainty", "random", "exploit")


def build_learner(
    settings: Settings, classes: ClassSet, clock: Callable[[], float] = time.time
) -> ActiveLearner:
    """The core objects a service (or an offline run) with these settings uses.

    ``clock`` is the wall clock in the service; offline runs pass the stream's clock, so that
    label delays in time, reviewer capacity per hour and time-to-live run on stream time.
    """
    features = None
    exclude = set(settings.exclude)
    if settings.card_field:
        features = TransactionFeatures(
            FeatureSpec(
                card_field=settings.card_field,
                terminal_field=settings.terminal_field,
                amount_field=settings.amount_field,
                time_field=settings.time_field,
                windows_days=tuple(settings.feature_windows_days),
                terminal_delay_days=settings.terminal_delay_days,
            )
        )
        exclude |= features.raw_fields  # ids feed the rolling features; never one-hot them
    schema = TransactionSchema(
        id_field=settings.id_field,
        time_field=settings.time_field,
        features=frozenset(settings.features) if settings.features else None,
        exclude=frozenset(exclude),
    )
    river_model: Any = make_model(settings.model, len(classes), settings.seed)
    if settings.label_policy == "split":
        if settings.measure in MODEL_MEASURES:
            raise ValueError(
                f"measure {settings.measure} reads one model's members or weights, and label "
                "policy split keeps one model per label source: use label policy pooled, or "
                "another measure"
            )
        river_model = SourceSplit(partial(make_model, settings.model, len(classes), settings.seed))
    source_weights = parse_weights(settings.source_weights)
    weighted = settings.class_balance > 0 or any(w != 1.0 for w in source_weights.values())
    if weighted and not takes_weights(river_model):
        raise ValueError(
            f"model {settings.model} cannot learn weighted labels (class_balance, "
            "source_weights): choose logreg, logreg-slow or hat, or drop the weights"
        )
    model = OnlineModel(river_model, classes.classes, settings.model)
    pending = PendingStore(settings.pending_max_items, settings.pending_ttl_seconds)
    return ActiveLearner(
        model,
        gate_from_settings(settings, model, pending, clock),
        pending,
        schema,
        clock=clock,
        features=features,
        source_weights=source_weights,
        card_field=settings.card_field,
        class_balance=ClassBalance(settings.class_balance),
    )


#: Written into every checkpoint. Bump it when a gate or strategy class changes its attributes:
#: a checkpoint of another format keeps its model, queue and features but gets a new gate.
CHECKPOINT_FORMAT = 3

#: Labels per budget window below which the gate's buckets are too small to spend the budget.
MIN_WINDOW_LABELS = 10

#: The settings a gate is built from, besides the budget (which a gate can change in place).
GATE_SETTINGS = (
    "strategy",
    "measure",
    "budget_window",
    "seed",
    "random_share",
    "exploit_share",
    "threshold_step",
    "labels_per_hour",
    "max_open_reviews",
    "alert_cards_per_day",
)


def gate_from_settings(
    settings: Settings,
    model: OnlineModel,
    pending: PendingStore,
    clock: Callable[[], float] = time.time,
) -> Gate:
    """The gate these settings describe, for ``model`` and its review queue ``pending``."""
    return build_gate(
        settings.strategy,
        settings.measure,
        settings.budget,
        settings.budget_window,
        model=model.model,
        n_classes=len(model.classes),
        positive=model.positive,
        seed=settings.seed,
        random_share=settings.random_share,
        exploit_share=settings.exploit_share,
        step=settings.threshold_step,
        labels_per_hour=settings.labels_per_hour,
        max_open_reviews=settings.max_open_reviews,
        open_reviews=pending.__len__,
        clock=clock,
        alert_cards_per_day=settings.alert_cards_per_day,
    )


def gate_settings(settings: Settings) -> dict[str, Any]:
    """What a checkpoint records of the gate's settings, to tell whether they changed."""
    return {name: getattr(settings, name) for name in GATE_SETTINGS}


#: Produce errors that a retry cannot cure for the record that caused them.
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordListTooLargeError)


class Service:
    """streamal's events and labels loops, their Kafka clients, and their metrics.

    ``start()`` returns at once; the loops connect (and retry) in their threads, and
    :meth:`wait_ready` tells when both are consuming.
    """

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.classes = ClassSet(settings.classes or None)
        self.learner = build_learner(settings, self.classes)
        self._dropped_seen = 0  # the pending store's drops already counted
        if settings.budget * settings.budget_window < MIN_WINDOW_LABELS:
            # With a few labels per window the buckets hold one token, and tokens the lanes
            # could not use in time are lost (measured: 0.92 B at 1-4 labels per window).
            log.warning(
                "budget %.4g x budget_window %d is %.3g labels per window: spend may fall to "
                "about 0.92 of the budget; a budget_window of at least %d keeps it",
                settings.budget,
                settings.budget_window,
                settings.budget * settings.budget_window,
                math.ceil(MIN_WINDOW_LABELS / settings.budget),
            )
        self.metrics = metrics or Metrics(
            self.classes,
            settings.label_sources,
            fraud=FraudTracker(
                k=settings.alert_cards_per_day or 100,
                card_field=settings.card_field,
                amount_field=settings.amount_field,
                time_field=settings.time_field,
            ),
        )
        self.metrics.budget_ratio.set(settings.budget)
        self._names = [(c, ClassSet.name(c)) for c in self.classes.classes]
        self._stop = threading.Event()
        self._labels_positioned = threading.Event()
        self._events_assigned = threading.Event()
        self._threads: list[threading.Thread] = []
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        self.heartbeat: dict[str, float] = {}
        self._connecting: set[str] = set()  # loops setting up their clients (see alive)
        self.broker_ok = False
        self.started_at = time.time()
        # Positions in the reviews and labels topics up to which the learner is current.
        self._positions: dict[str, dict[int, int]] = {}
        self._wait_started: float | None = None
        self._labels_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._checkpoint_retry_at = 0.0  # after a failed write: not again before this
        self._restored = False
        self._key: bytes | None = None
        self._store: checkpoint.CheckpointStore | None = None
        if settings.checkpoint_dir:
            try:
                self._key = settings.checkpoint_secret()
            except ValueError as exc:  # empty, or a file that cannot be read
                raise checkpoint.CheckpointError(str(exc)) from None
            if self._key is None:
                raise checkpoint.CheckpointError(
                    "checkpoints are signed: set STREAMAL_CHECKPOINT_KEY or "
                    "STREAMAL_CHECKPOINT_KEY_FILE along with STREAMAL_CHECKPOINT_DIR"
                )
            self._store = checkpoint.DirectoryStore(settings.checkpoint_dir)

    # ------------------------------------------------------------------ lifecycle

    def restore(self) -> None:
        """Load the checkpoint, if any, once; raises :class:`CheckpointError` for one that must
        be refused. ``start`` calls it; ``serve`` calls it first, to refuse with one line."""
        if not self._restored:
            self._restore()
            self._restored = True

    def start(self) -> None:
        """Restore the checkpoint (raising if it must be refused), then start both loops."""
        self.restore()
        # Move what exists by now (imported modules, the model) out of the cyclic collector's
        # sight: a full collection over it stops every thread for ~70-170 ms, which alone broke
        # the 100 ms p99 of label apply. Collections then scan only what the loops allocate.
        gc.freeze()
        for name, target in (("labels", self._labels_loop), ("events", self._events_loop)):
            thread = threading.Thread(
                target=self._guard, args=(name, target), name=name, daemon=True
            )
            self.heartbeat[name] = time.monotonic()
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float | None = None) -> None:
        """Stop consuming, finish the batch in flight (produce, flush, commit), checkpoint and
        close, within ``timeout`` (default: the shutdown grace period)."""
        self._stop.set()
        grace = self.settings.shutdown_grace_seconds if timeout is None else timeout
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        if self._threads and not any(t.is_alive() for t in self._threads):
            self.checkpoint()  # the loops are done: nothing can change the state any more
        if self._producer is not None:
            self._producer.close(timeout=max(0.1, deadline - time.monotonic()))
            self._producer = None

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until both loops consume (labels positioned, transactions assigned)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready()["ready"]:
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        """Both loops are running and came back from poll recently (no broker round trip).

        A loop still connecting (bootstrapping its clients, finding its partitions) counts as
        alive however long that takes: with the broker down at start, a restart would not bring
        it back sooner, and the pod would crash-loop through the outage. ``ready`` says no.
        """
        now = time.monotonic()
        return all(t.is_alive() for t in self._threads) and all(
            name in self._connecting or now - beat < STALL_SECONDS
            for name, beat in self.heartbeat.items()
        )

    @contextmanager
    def _connecting_phase(self, name: str) -> Iterator[None]:
        """Mark loop ``name`` as connecting to the broker (see :meth:`alive`)."""
        self._connecting.add(name)
        try:
            yield
        finally:
            self._connecting.discard(name)
            self.heartbeat[name] = time.monotonic()

    def ready(self) -> dict[str, bool]:
        checks = {
            "model_loaded": self.learner.model is not None,
            "labels_positioned": self._labels_positioned.is_set(),
            "partitions_assigned": self._events_assigned.is_set(),
            "broker_reachable": self.broker_ok,
        }
        return {**checks, "ready": all(checks.values())}

    @property
    def producer(self) -> Any:
        with self._producer_lock:
            if self._producer is None:
                self._producer = make_producer(self.settings)
            return self._producer

    def _guard(self, name: str, target: Any) -> None:
        """Run a loop until stopped; a failure is logged and the loop is rebuilt after a pause."""
        while not self._stop.is_set():
            try:
                target()
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("%s loop failed; restarting it in 1 s", name)
                self.broker_ok = False
                self._stop.wait(1.0)

    # ------------------------------------------------------------------ labels

    def submit_label(self, body: Mapping[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Validate a label and write it to the labels topic; returns once the broker acked it.

        Raises :class:`InvalidMessage` for a bad label, or one carrying an event whose features
        do not decode (nothing is written), and ``KafkaError`` when the broker does not
        acknowledge in time or is known not to answer (``broker_ok``, as ``/readyz`` shows).
        """
        label = decode_label(body, self.classes, self.settings.max_message_bytes)
        message = {
            "schema_version": SCHEMA_VERSION,
            "event_id": label.event_id,
            "label": body["label"],
            "source": label.source,
            "labelled_at": to_iso(label.labelled_at or time.time()),
        }
        if label.event is not None:
            message["event"] = label.event
        payload = encode(message)
        if len(payload) > self.settings.max_message_bytes:
            raise InvalidMessage("oversize", "label with its event exceeds the message size limit")
        if label.event is not None:
            self._check_carried_event(label.event)
        if not self.broker_ok:
            # Fail fast (503) rather than hold a request thread for the producer's metadata wait
            # (up to a minute) while the loops already know the broker does not answer.
            raise KafkaConnectionError("the broker does not answer; try again shortly")
        meta = self.producer.send(
            self.settings.topic_labels, key=label.event_id.encode(), value=payload
        ).get(timeout=timeout)
        return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}

    def _check_carried_event(self, event: Mapping[str, Any]) -> None:
        """Learning reads a carried event's features: one whose features do not compute would be
        accepted by the API and then dead-lettered by every replica, so it is refused now."""
        extract_features(event, self.learner.schema)
        features = self.learner.features
        if features is None:
            return
        try:
            with self.learner.model.lock:  # the loops change the rolling windows under it
                features.transform_one(dict(event), learn=False)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidMessage):
                raise
            raise InvalidMessage(
                "bad_value", f"the event's card features do not compute ({type(exc).__name__})"
            ) from None

    def _labels_loop(self) -> None:
        """Read the whole reviews and labels topics, in order, from the checkpointed positions.

        Review requests (from any replica) open pending items; labels are learned strictly in
        the order of the labels topic, so every replica's model sees the same sequence. A label
        whose request this replica has not read yet waits, for at most ``label_wait_seconds``,
        while the reviews topic is behind; it is an orphan only after that.
        """
        s = self.settings
        with self._connecting_phase("labels"):
            if s.create_topics:
                ensure_service_topics(s)
            consumer = make_consumer(s, group_id=None, fetch_max_wait_ms=20, max_poll_records=500)
        try:
            with self._connecting_phase("labels"):
                assigned = self._assign_inputs(consumer)
            if not assigned:
                return
            self._labels_positioned.set()
            self.broker_ok = True
            probe = assigned[0]
            reviews = [tp for tp in assigned if tp.topic == s.topic_reviews]
            waiting: deque[ConsumerRecord] = deque()
            next_housekeeping = 0.0
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=100)
                self.heartbeat["labels"] = time.monotonic()
                for tp, records in batch.items():
                    if tp.topic == s.topic_reviews:
                        for record in records:
                            self._open_review(record)
                    else:
                        waiting.extend(records)
                if waiting:
                    self._learn_waiting(consumer, waiting, reviews)
                now = time.monotonic()
                if now >= next_housekeeping:
                    self._probe_broker(consumer, probe)
                    next_housekeeping = time.monotonic() + 1.0
                    self._housekeeping()
        finally:
            consumer.close(autocommit=False)

    def _probe_broker(self, consumer: Any, tp: TopicPartition) -> None:
        """Readiness: does the broker answer now? A poll comes back empty whether the broker is
        idle or gone, so ask it for a partition's first offset (cheap), with a short timeout."""
        try:
            consumer.beginning_offsets([tp], timeout_ms=1000)
        except KafkaError:
            if self.broker_ok:
                log.warning("broker unreachable: not ready until it answers again")
            self.broker_ok = False
        else:
            self.broker_ok = True

    def _assign_inputs(self, consumer: Any) -> list[TopicPartition]:
        """Assign every partition of reviews and labels; seek to the checkpointed positions."""
        s = self.settings
        assigned: list[TopicPartition] = []
        for topic in (s.topic_reviews, s.topic_labels):
            partitions: set[int] | None = None
            while not partitions and not self._stop.is_set():
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    self._stop.wait(0.2)
            if not partitions:
                return []
            assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        for tp in assigned:
            offset = self._positions.get(tp.topic, {}).get(tp.partition)
            if offset is None:
                consumer.seek_to_beginning(tp)  # no checkpoint: replay all, catch up
            else:
                consumer.seek(tp, offset)
        return assigned

    def _advance(self, record: ConsumerRecord) -> None:
        self._positions.setdefault(record.topic, {})[record.partition] = record.offset + 1

    def _open_review(self, record: ConsumerRecord) -> None:
        try:
            item = decode_review(record.value, self.classes, 4 * self.settings.max_message_bytes)
        except Exception as exc:  # noqa: BLE001 - else this record would stall every replica
            # Not dead-lettered: every replica reads every review, so each would write a copy.
            # Counted and logged (the place, not the data); its label will count as an orphan.
            reason = exc.reason if isinstance(exc, InvalidMessage) else "processing_error"
            self.metrics.reviews_unreadable.labels(reason).inc()
            log.warning(
                "unreadable review request at %s/%s: %s",
                record.partition,
                record.offset,
                reason if isinstance(exc, InvalidMessage) else f"{reason} ({type(exc).__name__})",
            )
        else:
            self.learner.pending.add(item)
        self._advance(record)

    def _learn_waiting(
        self, consumer: Any, waiting: deque[ConsumerRecord], reviews: list[TopicPartition]
    ) -> None:
        while waiting:
            record = waiting[0]
            try:
                label = decode_label(record.value, self.classes, self.settings.max_message_bytes)
            except InvalidMessage as exc:
                if not self._delivered(self._dead_letter(record, exc.reason, exc.detail, "labels")):
                    return  # the label stays first in line; its dead letter is written again
                self.metrics.count_label("other", "invalid")
            else:
                if self._must_wait(consumer, label, reviews) or not self._apply_label(
                    record, label
                ):
                    return
            self._wait_started = None
            waiting.popleft()
            self._advance(record)
            self._labels_since_checkpoint += 1

    def _delivered(self, future: Any) -> bool:
        """Wait until a label's dead letter is acknowledged: only then may the loop move past
        the label (and a checkpoint record that it did).

        False when it failed (or the service is stopping): the label stays first in line and is
        tried again a second later, so a bad label is never passed without its dead letter.
        Waiting stays alive for /livez, as the events loop's flush does.
        """
        while not future.is_done:
            try:
                future.get(timeout=1.0)
            except KafkaTimeoutError:
                self.heartbeat["labels"] = time.monotonic()
                if self._stop.is_set():
                    return False
        if future.failed():
            log.warning(
                "a label's dead letter was not written (%s): trying again in 1 s",
                type(future.exception).__name__,
            )
            self.broker_ok = False
            self._stop.wait(1.0)
            return False
        return True

    def _must_wait(self, consumer: Any, label: Label, reviews: list[TopicPartition]) -> bool:
        """Hold a label whose request may still be on its way through the reviews topic."""
        pending = self.learner.pending
        if (
            label.event is not None
            or label.event_id in pending
            or pending.was_resolved(label.event_id)
        ):
            return False
        behind = any(
            consumer.highwater(tp) is None or consumer.position(tp) < consumer.highwater(tp)
            for tp in reviews
        )
        if not behind:
            return False
        now = time.monotonic()
        if self._wait_started is None:
            self._wait_started = now
        return now - self._wait_started < self.settings.label_wait_seconds

    def _apply_label(self, record: ConsumerRecord, label: Label) -> bool:
        """Learn a label (or dead-letter it); False if its dead letter was not written."""
        m = self.metrics
        item = self.learner.pending.get(label.event_id)  # its request-time score, for metrics
        try:
            result = self.learner.learn(label)
        except InvalidMessage as exc:  # a carried event that does not decode
            if not self._delivered(self._dead_letter(record, exc.reason, exc.detail, "labels")):
                return False
            m.count_label(label.source, "invalid")
            return True
        except Exception as exc:  # noqa: BLE001 - else this label would stall every replica
            log.warning(
                "learning the label at %s/%s failed: %s",
                record.partition,
                record.offset,
                type(exc).__name__,
            )
            if not self._delivered(
                self._dead_letter(record, "processing_error", type(exc).__name__, "labels")
            ):
                return False
            m.count_label(label.source, "invalid")
            return True
        m.count_label(label.source, result.outcome)
        if result.outcome != "learned":
            return True
        now = time.time()
        m.label_apply.observe(max(0.0, now - record.timestamp / 1000.0))
        m.updates.inc()
        if result.delay is not None:
            m.label_delay.observe(max(0.0, result.delay))
        assert result.lane is not None
        m.count_outcome(result.lane, result.predicted, result.actual)
        m.count_learned(label, result, item)
        m.backlog.set(len(self.learner.pending))
        self._update_accuracy()
        return True

    # ------------------------------------------------------------------ state

    def _restore(self) -> None:
        """Load the checkpoint, if any; refuse one that does not verify (unless resetting)."""
        store, key = self._store, self._key
        if store is None or key is None:
            return
        if self.settings.reset_state:  # not even read: an unreadable one is ignored too
            log.warning(
                "--reset-state: ignoring any checkpoint in %s", self.settings.checkpoint_dir
            )
            return
        try:
            blob = store.read()
        except OSError as exc:
            raise checkpoint.CheckpointError(
                f"checkpoint in {store!r} cannot be read ({exc}); fix the volume, or start "
                "with --reset-state to discard it"
            ) from exc
        if blob is None:
            log.info("no checkpoint in %s: starting fresh", self.settings.checkpoint_dir)
            return
        state = checkpoint.loads(blob, key)
        learner = state.get("learner") if isinstance(state, dict) else None
        if not isinstance(learner, ActiveLearner):
            raise checkpoint.CheckpointError(
                "checkpoint holds no learner; start with --reset-state to discard it"
            )
        wanted = (self.settings.model, self.classes.classes)
        found = (learner.model.kind, learner.model.classes)
        if found != wanted:
            raise checkpoint.CheckpointError(
                f"checkpoint is for model {found[0]} with classes {found[1]}, settings say "
                f"{wanted[0]} with {wanted[1]}; start with --reset-state to discard it"
            )
        # The learning weights come from the settings (the learner built from them in
        # __init__), like the gate; the class counts are kept, and a checkpoint from before
        # they existed starts counting now.
        fresh = self.learner
        learner.source_weights = fresh.source_weights
        saved = getattr(learner, "class_balance", None)
        if saved is not None:
            saved.power = fresh.class_balance.power
        learner.class_balance = saved or fresh.class_balance
        # So do how events are read (id, time and feature fields) and how long and how many
        # requests stay open; the open requests themselves are kept. Card features keep their
        # rolling state while their settings are unchanged, and start afresh otherwise.
        learner.schema = fresh.schema
        learner.pending.max_items = fresh.pending.max_items
        learner.pending.ttl_seconds = fresh.pending.ttl_seconds
        learner.card_field = fresh.card_field
        spec = None if fresh.features is None else fresh.features.spec
        if (None if learner.features is None else learner.features.spec) != spec:
            log.info("card features rebuilt from the settings (their settings changed)")
            learner.features = fresh.features
        self.learner = learner
        self._dropped_seen = learner.pending.dropped  # counted by the replica that saved it
        recorded = state.get("gate_settings")
        wanted_gate = gate_settings(self.settings)
        if recorded != wanted_gate or state.get("format") != CHECKPOINT_FORMAT:
            # A strategy (or lane mix, capacity, ...) chosen in the settings wins over the one
            # saved; so does this version's gate over one pickled by an older version, whose
            # objects may lack what the code now needs. The model and the queue are kept; the
            # gate's own state (thresholds, windows) is re-learned in a few hundred events.
            changed = sorted(
                name
                for name in GATE_SETTINGS
                if not isinstance(recorded, dict) or recorded.get(name) != wanted_gate[name]
            )
            log.info(
                "gate rebuilt from the settings (checkpoint format %s, this version's %s; "
                "changed: %s)",
                state.get("format"),
                CHECKPOINT_FORMAT,
                ", ".join(changed) or "none",
            )
            learner.gate = gate_from_settings(self.settings, learner.model, learner.pending)
        if learner.gate.budget.fraction != self.settings.budget:
            log.info(
                "budget from the settings (%s) replaces the checkpoint's (%s)",
                self.settings.budget,
                learner.gate.budget.fraction,
            )
            learner.gate.set_budget(self.settings.budget)
        self._positions = {t: dict(p) for t, p in state.get("positions", {}).items()}
        created = state.get("created_at")
        if isinstance(created, int | float):
            # The last durable checkpoint is this one until a new one is written: so a replica
            # that cannot write any more (a volume turned read-only) still ages, and alerts.
            self.metrics.checkpoint_success.set(created)
        log.info(
            "restored checkpoint: %d labels learned, positions %s",
            learner.model.n_learned,
            self._positions,
        )

    def checkpoint(self) -> bool:
        """Write a checkpoint now (from the labels loop or after the loops stopped)."""
        if self._store is None or self._key is None:
            return False
        with self.learner.model.lock:
            state = {
                "format": CHECKPOINT_FORMAT,
                "created_at": time.time(),
                "learner": self.learner,
                "gate_settings": gate_settings(self.settings),
                "positions": {t: dict(p) for t, p in self._positions.items()},
            }
            blob = checkpoint.dumps(state, self._key)
        try:
            self._store.write(blob)
        except OSError:
            log.exception("checkpoint could not be written")
            return False
        self._labels_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self.metrics.checkpoint_success.set(time.time())
        return True

    def _update_accuracy(self) -> None:
        accuracy = self.learner.accuracy
        hits = sum(accuracy[lane].hits for lane in GATE_LANES if lane in accuracy)
        total = sum(accuracy[lane].total for lane in GATE_LANES if lane in accuracy)
        if total:
            self.metrics.accuracy_labeled.set(hits / total)
        if "random" in accuracy:
            self.metrics.accuracy_random.set(accuracy["random"].value)

    def _housekeeping(self) -> None:
        pending = self.learner.pending
        pending.expire(time.time())
        # Dropped by age just now, or by size (pending_max_items) since the last look.
        dropped = pending.dropped - self._dropped_seen
        self._dropped_seen = pending.dropped
        if dropped:
            self.metrics.pending_expired.inc(dropped)
        self.metrics.backlog.set(len(pending))
        s = self.settings
        now = time.monotonic()
        if now < self._checkpoint_retry_at:
            return
        due = now - self._last_checkpoint >= s.checkpoint_interval_seconds
        if not due and self._labels_since_checkpoint < s.checkpoint_every_labels:
            return
        if not self.checkpoint():
            # A failed write is retried after the interval, not at every round: each attempt
            # pickles the learner under the model's lock, which stops the scoring meanwhile.
            self._checkpoint_retry_at = now + s.checkpoint_interval_seconds

    # ------------------------------------------------------------------ events

    def _events_loop(self) -> None:
        s = self.settings
        with self._connecting_phase("events"):
            while not self._labels_positioned.is_set():
                if self._stop.wait(0.05):
                    return
            consumer = make_consumer(s, group_id=s.consumer_group)
            consumer.subscribe([s.topic_transactions])
        try:
            next_gauges = 0.0
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=200)
                self.heartbeat["events"] = time.monotonic()
                if consumer.assignment():
                    self._events_assigned.set()
                if batch:
                    self._process_batch(consumer, batch)
                if time.monotonic() >= next_gauges:
                    next_gauges = time.monotonic() + 1.0
                    self._update_gauges(consumer)
        finally:
            try:
                consumer.close(autocommit=False)
            except KafkaError:
                log.warning("events consumer did not close cleanly", exc_info=True)

    def _process_batch(self, consumer: Any, batch: Mapping[TopicPartition, list[Any]]) -> None:
        s = self.settings
        m = self.metrics
        learner = self.learner
        schema = learner.schema
        producer = self.producer
        send = producer.send
        names = self._names
        max_bytes = s.max_message_bytes
        topic_scores, topic_reviews = s.topic_scores, s.topic_reviews
        emit_scores = s.emit_scores
        observe = m.event_seconds.observe
        scored_count = invalid_count = 0
        futures = []
        outputs = []  # (future, record) of every score and review request sent
        perf = time.perf_counter
        for records in batch.values():
            for record in records:
                # Latency is sampled, one event in LATENCY_SAMPLE: the histogram's quantiles are
                # the same and the clock and observe calls stay off most of the hot path.
                timed = not scored_count % LATENCY_SAMPLE
                started = perf() if timed else 0.0
                try:
                    txn = decode_transaction(record.value, schema, max_bytes)
                    scored = learner.score(txn)
                except InvalidMessage as exc:
                    invalid_count += 1
                    futures.append(
                        self._dead_letter(record, exc.reason, exc.detail, "transactions")
                    )
                    continue
                except Exception as exc:  # noqa: BLE001 - one bad record must not stop the stream
                    log.warning(
                        "scoring failed at %s/%s: %s",
                        record.partition,
                        record.offset,
                        type(exc).__name__,
                    )
                    invalid_count += 1
                    futures.append(
                        self._dead_letter(
                            record, "processing_error", type(exc).__name__, "transactions"
                        )
                    )
                    continue
                decision = scored.decision
                key = txn.event_id.encode()
                proba = scored.proba
                probabilities = {name: proba[c] for c, name in names}
                try:
                    if emit_scores:
                        value = score_message(
                            txn.event_id,
                            probabilities,
                            scored.risk,
                            decision.ask,
                            scored.model_version,
                        )
                        outputs.append((send(topic_scores, key=key, value=value), record))
                    if decision.ask:
                        reason = decision.reason
                        assert reason is not None
                        value = review_message(
                            txn,
                            probabilities,
                            scored.predicted,
                            reason,
                            decision.probability,
                            decision.uncertainty,
                            scored.model_version,
                            time.time(),
                        )
                        outputs.append((send(topic_reviews, key=key, value=value), record))
                        m.requests[reason].inc()
                except REFUSED_FOR_GOOD as exc:  # larger than the producer may send
                    invalid_count += 1
                    futures.append(self._dead_letter_refused(record, exc))
                    continue
                scored_count += 1
                if timed:
                    observe(perf() - started)
        self._wait_alive(producer.flush, timeout=1.0)
        # A score or review request the broker refuses for good (larger than it accepts) would
        # be refused again at every replay of the batch, stalling the stream for ever: its
        # transaction goes to the dead-letter topic instead, and the batch goes on.
        refused = {
            id(r): (f, r)
            for f, r in outputs
            if f.failed() and isinstance(f.exception, REFUSED_FOR_GOOD)
        }
        for future, record in refused.values():
            futures.append(self._dead_letter_refused(record, future.exception))
        if refused:
            invalid_count += len(refused)
            scored_count -= len(refused)
            self._wait_alive(producer.flush, timeout=1.0)
        futures += (f for f, r in outputs if id(r) not in refused)
        if any(f.failed() for f in futures):
            # Not acknowledged: do not commit; process the batch again from its first record.
            log.error("produce failed for part of a batch; it will be processed again")
            for tp, records in batch.items():
                consumer.seek(tp, records[0].offset)
            self.broker_ok = False
            return
        self._wait_alive(consumer.commit, timeout_ms=1000)
        m.events_scored.inc(scored_count)
        if invalid_count:
            m.events_invalid.inc(invalid_count)

    def _wait_alive(self, call: Any, **timeout: float) -> None:
        """Repeat a blocking broker call until it completes, staying alive for /livez meanwhile.

        While the broker is away, a flush waits up to the producer's delivery timeout and a
        commit up to the request timeout, both longer than a probe tolerates; a restart would not
        bring the broker back sooner. Given up only when stopping (the batch is then replayed).
        """
        while True:
            try:
                call(**timeout)
                return
            except KafkaTimeoutError:
                self.heartbeat["events"] = time.monotonic()
                if self._stop.is_set():
                    raise

    def _update_gauges(self, consumer: Any) -> None:
        m = self.metrics
        gate = self.learner.gate
        m.spend_ratio.set(gate.budget.spend_ratio)
        m.threshold.set(gate.threshold)
        auto = next(
            (ln.scorer for ln in gate.lanes if isinstance(ln.scorer, ImbalanceAwareScorer)), None
        )
        m.rare_class_share.set(math.nan if auto is None else auto.rarest_share())
        m.rare_mode.set(auto is not None and auto.rare_mode)
        m.budget_ratio.set(gate.budget.fraction)
        m.backlog.set(len(self.learner.pending))
        lags = []
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = consumer.position(tp) if high is not None else None
            if high is not None and position is not None:
                lags.append((tp.topic, tp.partition, max(0, high - position)))
        m.set_lag(lags)

    # ------------------------------------------------------------------ shared

    def _dead_letter_refused(self, record: Any, exc: BaseException) -> Any:
        """Dead-letter a transaction whose score or review request Kafka refuses for good."""
        name = type(exc).__name__
        log.warning(
            "output refused at %s/%s (%s): dead-lettered", record.partition, record.offset, name
        )
        detail = f"its score or review request was refused: {name}"
        return self._dead_letter(record, "oversize", detail, "transactions")

    def _dead_letter(self, record: Any, reason: str, detail: str, kind: str) -> Any:
        self.metrics.dead_letters.labels(kind, reason).inc()
        value = dead_letter_record(
            record.value, reason, detail, record.topic, record.partition, record.offset, time.time()
        )
        key = f"{record.topic}:{record.partition}:{record.offset}".encode()
        return self.producer.send(self.settings.topic_dead_letter, key=key, value=value)

    def model_info(self) -> dict[str, Any]:
        model = self.learner.model
        balance = self.learner.class_balance
        return {
            "kind": model.kind,
            "classes": [ClassSet.name(c) for c in model.classes],
            "labels_learned": model.n_learned,
            "version": model.version,
            # The learned labels' class mix and the weight the next label of each class gets.
            "class_balance": {
                "power": balance.power,
                "labels": {ClassSet.name(c): balance.counts.get(c, 0) for c in model.classes},
                "weights": {ClassSet.name(c): balance.weight(c) for c in model.classes},
            },
        }

    @property
    def lanes(self) -> tuple[str, ...]:
        return (*GATE_LANES, UNREQUESTED)
