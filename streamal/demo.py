"""``streamal demo``: the whole system on one machine, measured end to end.

It starts an embedded broker (unless one is configured), produces a transaction stream whose
ground truth only the demo knows, runs the service and its HTTP app, and answers review requests
with a simulated reviewer. By default the stream is the card-fraud simulator
(:mod:`streamal.core.simulator`, scaled down to a few hundred cards and a month), the service
computes its per-card and per-terminal features and uses the ``fraud`` strategy, and every
fraud's label also arrives as a chargeback some simulated days later. What is shown is what a
fraud team judges a detector by: card precision@k per day (k cards reviewed a day), the share
of the day's compromised cards among them, AUC and average precision over the last week, and
the labels spent against the budget. ``--stream synthetic`` runs the older drifting stream of
feature vectors, judged by accuracy and fraud recall per window of events.

Time is compressed: the stream's timestamps are simulated time and the producer sends as fast
as ``--rate`` allows. Chargebacks are due in stream time (sent once the service has scored the
stream past the fraud's time plus ``--chargeback-days``); the reviewer answers in wall-clock
time, so its delay in stream time depends on the rate (the summary says how much it was).

Accuracy is measured honestly: every score read back from the scores topic is joined with the
true label of its event. At the end the same stream is replayed offline through the pure core,
with the same settings and features on the stream's clock: once as the service runs (a
like-for-like check of the live run) and once spending the whole budget at random (the baseline
that active learning has to beat).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from kafka import TopicPartition
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from streamal.adapters.kafka import ensure_topics, make_consumer, make_producer
from streamal.adapters.plot import pyplot, two_panels
from streamal.argtypes import fraction, non_negative, positive_int
from streamal.config import Settings
from streamal.core.evaluator import Report, StreamClock, Window, average_precision, prequential
from streamal.core.fraud_metrics import auc, card_precision_at_k
from streamal.core.learner import LabelResult, Scored
from streamal.core.messages import SCHEMA_VERSION, ClassSet, Label, to_iso
from streamal.core.simulator import DAY, SimulatorConfig, simulate
from streamal.core.synthetic import drifting_transactions
from streamal.reviewer import SimulatedReviewer

__all__ = ["CardDays", "configure", "run"]

log = logging.getLogger("streamal.demo")

TOPIC_FIELDS = ("topic_transactions", "topic_scores", "topic_reviews", "topic_labels")
REASONS = ("uncertainty", "random", "exploit")
STREAMS = ("cards", "synthetic")
#: The simulator's raw fields (the card is the customer's).
CARD, TERMINAL, AMOUNT = "customer_id", "terminal_id", "amount"
#: AUC and average precision are over this many last simulated days.
RECENT_DAYS = 7


# ---------------------------------------------------------------------------------- options


def configure(parser: argparse.ArgumentParser) -> None:
    """Demo options; the service settings (``--budget``, ``--seed``, ...) are added by the CLI."""
    group = parser.add_argument_group("demo")
    group.add_argument(
        "--stream",
        choices=STREAMS,
        default="cards",
        help="cards: the card-fraud simulator, judged by card precision@k per day; synthetic: "
        "drifting feature vectors, judged by accuracy per window [cards].",
    )
    group.add_argument(
        "--rate",
        type=non_negative,
        default=2000.0,
        help="Transactions per second; 0 = as fast as possible [2000].",
    )
    group.add_argument(
        "--review-delay",
        type=non_negative,
        default=0.5,
        help="Seconds (wall clock) the simulated reviewer takes to answer [0.5].",
    )
    group.add_argument(
        "--plot",
        type=Path,
        default=Path("streamal-demo.png"),
        help="Where to write the curves (PNG) [streamal-demo.png].",
    )
    cards = parser.add_argument_group("demo: --stream cards")
    cards.add_argument("--customers", type=positive_int, default=500, help="Simulated cards [500].")
    cards.add_argument(
        "--terminals", type=positive_int, default=1000, help="Simulated terminals [1000]."
    )
    cards.add_argument(
        "--days",
        type=positive_int,
        default=30,
        help="Simulated days; a card pays about twice a day [30].",
    )
    cards.add_argument(
        "--fraud-scale",
        type=non_negative,
        default=2.0,
        help="Compromised terminals and cards a day, times the handbook's (scaled to the "
        "population). A month is all build-up, so 2 brings it near the handbook's steady "
        "0.9%% fraud [2].",
    )
    cards.add_argument(
        "--cards-per-day",
        type=positive_int,
        help="k of card precision@k: cards the team reviews a day [customers / 50, like the "
        "handbook's 100 of 5,000].",
    )
    cards.add_argument(
        "--chargeback-days",
        type=non_negative,
        default=7.0,
        help="Every fraud's label also arrives (source chargeback) this many simulated days "
        "later; 0 = no chargebacks [7].",
    )
    synthetic = parser.add_argument_group("demo: --stream synthetic")
    synthetic.add_argument(
        "--events", type=positive_int, default=20_000, help="Transactions to produce [20000]."
    )
    synthetic.add_argument(
        "--fraud-rate", type=fraction, default=0.02, help="Share of fraud in the stream [0.02]."
    )
    synthetic.add_argument(
        "--window",
        type=positive_int,
        default=2000,
        help="Events per window of the summary and the learning curves [2000].",
    )


@dataclass(frozen=True, slots=True)
class Options:
    """The demo's own options (the service's are :class:`Settings`)."""

    stream: str
    rate: float
    review_delay: float
    plot: Path
    seed: int
    events: int = 20_000
    fraud_rate: float = 0.02
    window: int = 2000
    customers: int = 500
    terminals: int = 1000
    days: int = 30
    fraud_scale: float = 2.0
    cards_per_day: int | None = None
    chargeback_days: float = 7.0

    @property
    def cards(self) -> bool:
        return self.stream == "cards"

    @property
    def drift_at(self) -> int:
        return self.events // 2

    @property
    def k(self) -> int:
        """Cards reviewed a day: the handbook reviews 100 of its 5,000 cards."""
        return self.cards_per_day or max(1, round(self.customers / 50))

    @property
    def chargeback_seconds(self) -> float | None:
        return self.chargeback_days * DAY if self.chargeback_days > 0 else None

    def simulator(self) -> SimulatorConfig:
        """The scaled-down card simulator, its compromises per day times ``fraud_scale``."""
        base = SimulatorConfig.scaled(self.customers, self.terminals)
        return SimulatorConfig.scaled(
            self.customers,
            self.terminals,
            days=self.days,
            seed=self.seed,
            terminals_compromised_per_day=base.terminals_compromised_per_day * self.fraud_scale,
            customers_compromised_per_day=base.customers_compromised_per_day * self.fraud_scale,
        )

    def stream_pairs(
        self, start_time: float = 1_700_000_000.0
    ) -> Iterator[tuple[dict[str, Any], bool]]:
        """The demo's ``(event, fraud)`` stream; the same options give the same stream.

        ``start_time`` places the synthetic stream; the simulator has its own calendar.
        """
        if self.cards:
            return ((event, truth.fraud) for event, truth in simulate(self.simulator()))
        return drifting_transactions(
            self.events,
            fraud_rate=self.fraud_rate,
            drift_at=self.drift_at,
            seed=self.seed,
            start_time=start_time,
            events_per_second=self.rate or 2000.0,
        )


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a first pass over the stream tells: its size, its fraud and its calendar."""

    events: int
    frauds: int
    start_epoch: float = 0.0

    def day(self, timestamp: float) -> int:
        return int((timestamp - self.start_epoch) // DAY)


def stream_info(options: Options) -> StreamInfo:
    """Count the stream (the simulator is cheap: ~0.2 s for 25,000 events) for the display."""
    if not options.cards:
        return StreamInfo(options.events, round(options.events * options.fraud_rate))
    config = options.simulator()
    events = frauds = 0
    for _, truth in simulate(config):
        events += 1
        frauds += truth.fraud
    return StreamInfo(events, frauds, config.start_epoch)


def demo_settings(
    settings: Settings, external: bool, cards: bool = False, alert_cards: int | None = None
) -> Settings:
    """The service's settings for a demo run: quick group joins, a fresh group, binary classes.

    On the card stream, unless the user chose otherwise: the per-card and per-terminal features
    on the simulator's fields, and the ``fraud`` strategy (random, uncertainty, and the daily
    alert lane of ``alert_cards`` cards a day, the k the figures are judged by). Against
    a configured broker, topics the user did not name get a per-run suffix, so that old records
    never mix into the measurement.
    """
    given = settings.model_fields_set
    run_id = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "consumer_group": f"{settings.consumer_group}-demo-{run_id}",
        "classes": [],  # fraud / not fraud
    }
    if "session_timeout_ms" not in given:
        update["session_timeout_ms"] = 2000
    if "heartbeat_interval_ms" not in given:
        update["heartbeat_interval_ms"] = 500
    if cards:
        defaults: dict[str, Any] = {
            "card_field": CARD,
            "terminal_field": TERMINAL,
            "amount_field": AMOUNT,
            "strategy": "fraud",
        }
        if alert_cards:
            defaults["alert_cards_per_day"] = alert_cards
        update.update({k: v for k, v in defaults.items() if k not in given})
    if external and settings.create_topics:
        for name in (*TOPIC_FIELDS, "topic_dead_letter"):
            if name not in given:
                update[name] = f"{getattr(settings, name)}-demo-{run_id}"
    return settings.model_copy(update=update)


# ---------------------------------------------------------------------------------- card figures


class DayResult(NamedTuple):
    """One simulated day as the fraud team sees it."""

    day: int
    transactions: int
    frauds: int
    #: Cards with fraud that day.
    fraud_cards: int
    #: Of those, the cards not known to be compromised before the day (this run's labels).
    new_fraud_cards: int
    #: Card precision@k: share of the k riskiest cards (known ones left out) that had fraud.
    precision: float
    #: Share of the day's ``new_fraud_cards`` among those k (the fraud the team gets to see).
    recall: float
    requested: int
    #: The best card precision@k any ranking could reach that day.
    best: float


@dataclass(slots=True)
class _Day:
    transactions: int = 0
    frauds: int = 0
    requested: int = 0
    card_max: dict[Hashable, float] = field(default_factory=dict)
    fraud_cards: set[Hashable] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)
    truths: list[bool] = field(default_factory=list)


class CardDays:
    """Card precision@k, fraud recall among the reviewed cards, AUC and AP, by simulated day.

    The definitions are those of ``streamal evaluate``'s card report
    (:class:`~streamal.core.fraud_metrics.DailyCardMetrics`, as the handbook's test week): each
    day the team reviews the ``k`` cards with the highest score that day, leaving out cards known
    to be compromised: a chargeback said so on an earlier day, or the card was among an earlier
    day's ``k`` and had fraud that day (the team reviewed it). Unlike it, scores may come in any
    order (the live scores topic may have several partitions), and it is thread-safe: the live
    display reads while the reader thread writes.

    >>> days = CardDays(k=1)
    >>> days.add(0, "a", 0.9, fraud=True, requested=True)
    >>> days.add(0, "b", 0.2, fraud=False, requested=False)
    >>> days.label("a", fraud=True, day=0, chargeback=False)  # a review: not known by it
    >>> days.add(1, "a", 0.8, fraud=True, requested=False)  # but reviewed on day 0: known
    >>> days.add(1, "b", 0.1, fraud=True, requested=False)
    >>> [(r.precision, r.recall) for r in days.results()]
    [(1.0, 1.0), (1.0, 1.0)]
    """

    def __init__(self, k: int) -> None:
        self.k = k
        self._days: dict[int, _Day] = {}
        self._known: dict[Hashable, int] = {}  # card -> day its first chargeback fraud arrived
        self._lock = threading.Lock()

    def add(self, day: int, card: Hashable, score: float, fraud: bool, requested: bool) -> None:
        """One scored transaction of ``day``."""
        with self._lock:
            d = self._days.get(day)
            if d is None:
                d = self._days[day] = _Day()
            d.transactions += 1
            d.requested += requested
            if score > d.card_max.get(card, -1.0):
                d.card_max[card] = score
            if fraud:
                d.frauds += 1
                d.fraud_cards.add(card)
            d.scores.append(score)
            d.truths.append(fraud)

    def label(self, card: Hashable, fraud: bool, day: int, chargeback: bool = True) -> None:
        """A label arrived while ``day`` was being scored: a chargeback's fraud makes the card
        known from the next day on (a reviewer's fraud does not: the team's own review is the
        day's top ``k``, as in the handbook)."""
        if fraud and chargeback and card is not None:
            with self._lock:
                self._known[card] = min(day, self._known.get(card, day))

    def results(self) -> list[DayResult]:
        """Every day's figures, in order: a day's reviewed cards are known on the next days."""
        with self._lock:
            days = [(day, self._days[day]) for day in sorted(self._days)]
            labelled = dict(self._known)
            figures = [
                (day, dict(d.card_max), set(d.fraud_cards), d.transactions, d.frauds, d.requested)
                for day, d in days
            ]
        k = self.k
        detected: dict[Hashable, int] = {}  # card -> day the team's review found its fraud
        out = []
        for day, cards, fraud_cards, transactions, frauds, requested in figures:
            known = {c for c, at in labelled.items() if at < day}
            known.update(c for c, at in detected.items() if at < day)
            precision = card_precision_at_k(cards, fraud_cards, k, known)
            reviewed = sorted(
                (c for c in cards if c not in known), key=cards.__getitem__, reverse=True
            )[:k]
            eligible = fraud_cards - known
            found = eligible.intersection(reviewed)
            for card in found:
                detected.setdefault(card, day)
            recall = len(found) / len(eligible) if eligible else math.nan
            best = min(k, len(eligible)) / k
            out.append(
                DayResult(
                    day,
                    transactions,
                    frauds,
                    len(fraud_cards),
                    len(eligible),
                    precision,
                    recall,
                    requested,
                    best,
                )
            )
        return out

    def ranking(self, first_day: int) -> tuple[float, float]:
        """AUC and average precision of the transaction scores from ``first_day`` on."""
        with self._lock:
            chosen = [d for day, d in self._days.items() if day >= first_day]
            scores = [s for d in chosen for s in d.scores]
            truths = [t for d in chosen for t in d.truths]
        if not scores:
            return math.nan, math.nan
        return auc(scores, truths), average_precision(scores, truths)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


@dataclass
class CardRun:
    """One run's fraud figures, live or offline, for the summary and the plot."""

    report: Report
    days: list[DayResult]
    auc: float
    average_precision: float
    learned: dict[str, int]
    by_reason: dict[str, int]

    @classmethod
    def of(
        cls,
        report: Report,
        cards: CardDays,
        learned: dict[str, int],
        by_reason: dict[str, int],
    ) -> CardRun:
        days = cards.results()
        first = days[-1].day - RECENT_DAYS + 1 if days else 0
        roc, ap = cards.ranking(first)
        return cls(report, days, roc, ap, learned, by_reason)

    def recent(self) -> list[DayResult]:
        return self.days[-RECENT_DAYS:]


class OfflineCards:
    """The hooks that give an offline (:func:`prequential`) run the live run's card figures.

    A label delivered after the stream has ended taught nothing that was measured; chargebacks
    among those are not counted, as the live run never sends them (they are not due yet).
    """

    def __init__(self, info: StreamInfo, k: int) -> None:
        self.info = info
        self.cards = CardDays(k)
        self.learned: Counter[str] = Counter()
        self.ended = False
        self._day = 0
        self._asked: dict[str, Hashable] = {}

    def stream(
        self, pairs: Iterator[tuple[dict[str, Any], bool]]
    ) -> Iterator[tuple[dict[str, Any], bool]]:
        yield from pairs
        self.ended = True

    def on_event(self, event: Mapping[str, Any], truth: Hashable, scored: Scored) -> None:
        self._day = day = self.info.day(float(event["timestamp"]))
        card = event[CARD]
        ask = scored.decision.ask
        self.cards.add(day, card, scored.risk, truth is True, ask)
        if ask:
            self._asked[scored.event_id] = card

    def on_label(self, label: Label, result: LabelResult) -> None:
        asked = self._asked.pop(label.event_id, None)
        card = label.event[CARD] if label.event is not None else asked
        chargeback = label.source == "chargeback"
        # A chargeback makes its card known even when a reviewer had labelled it (a duplicate).
        self.cards.label(card, label.label is True, self._day, chargeback)
        if result.outcome != "learned":
            return
        if not (chargeback and self.ended):
            self.learned["chargeback" if chargeback else "reviewer"] += 1


# ---------------------------------------------------------------------------------- live parts


class Fact(NamedTuple):
    """The truth of one produced event: its position, its class, its card and its day."""

    position: int
    fraud: bool
    card: Hashable = None
    day: int = 0
    time: float = 0.0


class Ground:
    """The ground truth of every produced event."""

    def __init__(self) -> None:
        self.events: dict[str, Fact] = {}

    def label(self, event_id: str) -> Hashable | None:
        found = self.events.get(event_id)
        return None if found is None else found.fraud


def assign_all_from_end(consumer: Any, topics: list[str], timeout: float = 10.0) -> None:
    """Assign every partition of ``topics`` at its end (like the reviewer does for one topic)."""
    deadline = time.monotonic() + timeout
    assigned: list[TopicPartition] = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        while not partitions:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"topic {topic!r} has no partitions after {timeout:.0f} s")
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        assigned += [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    consumer.seek_to_end(*assigned)
    for tp in assigned:
        consumer.position(tp)


class Chargebacks:
    """Sends every fraud's label (source ``chargeback``, with its event, so that the service
    learns it unrequested) once the stream has passed the fraud's time plus the delay.

    The delay is stream time and the position is the service's: the latest event time read back
    from the scores topic, not the producer's. The producer may run far ahead (``--rate 0``),
    and a chargeback must not reach the service before the transactions that precede it in
    stream time have been scored, or it would tell the model about the future.
    """

    def __init__(self, settings: Settings, delay: float, position: Callable[[], float]) -> None:
        self.settings = settings
        self.delay = delay
        self.position = position
        #: Chargebacks acknowledged by the broker, and failed sends.
        self.sent = 0
        self.failed = 0
        self._due: deque[tuple[float, dict[str, Any]]] = deque()  # frauds in stream-time order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-chargebacks", daemon=True)
        self._producer: Any = None

    def add(self, event: dict[str, Any], timestamp: float) -> None:
        """A fraud produced at stream time ``timestamp`` (called in time order)."""
        self._due.append((timestamp + self.delay, event))

    def caught_up(self) -> bool:
        """Every chargeback due at the current position has been sent."""
        try:
            return self._due[0][0] > self.position()
        except IndexError:  # none left (the sender may empty the queue at any moment)
            return True

    def start(self) -> None:
        self._producer = make_producer(self.settings)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(5)
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self._send_due()
            except Exception:  # noqa: BLE001 - a silent death would stall the demo
                log.exception("sending chargebacks failed; retrying in 1 s")
                self._stop.wait(1.0)

    def _send_due(self) -> None:
        now, due = self.position(), self._due
        n = 0
        while n < len(due) and due[n][0] <= now:
            n += 1
        if not n:
            return
        futures = []
        for i in range(n):
            event = due[i][1]
            event_id = event["event_id"]
            message = {
                "schema_version": SCHEMA_VERSION,
                "event_id": event_id,
                "label": ClassSet.name(True),
                "source": "chargeback",
                "labelled_at": to_iso(time.time()),
                "event": event,
            }
            futures.append(
                self._producer.send(
                    self.settings.topic_labels,
                    key=event_id.encode(),
                    value=json.dumps(message).encode(),
                )
            )
        self._producer.flush()
        for future in futures:
            due.popleft()
            if future.failed():
                self.failed += 1
            else:
                self.sent += 1


class EventProducer:
    """Produces the stream at ``rate`` events/s in a thread, recording the truth, and hands
    every fraud of the card stream to ``chargebacks``."""

    def __init__(
        self,
        settings: Settings,
        options: Options,
        info: StreamInfo,
        ground: Ground,
        chargebacks: Chargebacks | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.info = info
        self.ground = ground
        self.chargebacks = chargebacks
        self.produced = 0
        self.first_time = self.last_time = math.nan
        self.started_at = self.finished_at = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-producer", daemon=True)

    @property
    def day(self) -> int:
        """The simulated day being produced."""
        return 0 if math.isnan(self.last_time) else self.info.day(self.last_time)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def _run(self) -> None:
        o = self.options
        producer = make_producer(self.settings)
        topic = self.settings.topic_transactions
        truth = self.ground.events
        chargebacks = self.chargebacks
        try:
            self.started_at = time.monotonic()
            for i, (event, fraud) in enumerate(o.stream_pairs(start_time=time.time())):
                if i % 50 == 0:
                    if self._stop.is_set():
                        break
                    if o.rate > 0:
                        ahead = self.started_at + i / o.rate - time.monotonic()
                        if ahead > 0 and self._stop.wait(ahead):
                            break
                event_id = event["event_id"]
                # The truth is recorded before the send: a score may come back at once.
                if o.cards:
                    now = float(event["timestamp"])
                    truth[event_id] = Fact(i, fraud, event[CARD], self.info.day(now), now)
                    if fraud and chargebacks is not None:
                        chargebacks.add(event, now)
                    if i == 0:
                        self.first_time = now
                    self.last_time = now
                else:
                    truth[event_id] = Fact(i, fraud)
                producer.send(topic, key=event_id.encode(), value=json.dumps(event).encode())
                self.produced += 1
            producer.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            producer.close(timeout=5)


class ScoreTally:
    """Reads the scores topic and joins every score with its event's true label.

    Windows are by the event's position in the stream, like the offline evaluator's, so the
    live and offline learning curves line up window by window. With ``cards`` it also keeps
    the fraud team's daily figures, and reads the labels topic to know which cards the team
    already knows to be compromised (labels arriving while day ``d`` is scored count from
    ``d + 1`` on, as offline).
    """

    def __init__(
        self, settings: Settings, ground: Ground, window: int, cards: CardDays | None = None
    ) -> None:
        self.settings = settings
        self.ground = ground
        self.window = window
        self.cards = cards
        self.windows: dict[int, Window] = {}
        self.scored = 0
        self.requested = 0
        self.unknown = 0
        self.first_at = self.last_at = 0.0
        #: The latest simulated day and event time scored (card stream).
        self.day = 0
        self.time = -math.inf
        #: (correct, fraud, caught) of the most recent scores, for the live display.
        self.recent: deque[tuple[bool, bool, bool]] = deque(maxlen=window)
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-scores", daemon=True)
        self._consumer: Any = None

    def start(self) -> None:
        s = self.settings
        self._consumer = make_consumer(
            s, group_id=None, fetch_max_wait_ms=50, max_poll_records=2000
        )
        topics = [s.topic_scores] + ([s.topic_labels] if self.cards is not None else [])
        try:
            assign_all_from_end(self._consumer, topics)
        except BaseException:
            self._consumer.close(autocommit=False)
            self._consumer = None
            raise
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(5)
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    def rate(self) -> float:
        """Scores per second between the first and the last one read."""
        span = self.last_at - self.first_at
        return (self.scored - 1) / span if span > 0 and self.scored > 1 else 0.0

    def _loop(self) -> None:
        labels = self.settings.topic_labels
        while not self._stop.is_set():
            try:
                batch = self._consumer.poll(timeout_ms=100)
            except Exception:  # noqa: BLE001 - keep measuring through a broker hiccup
                log.exception("reading scores failed; retrying in 1 s")
                self._stop.wait(1.0)
                continue
            for tp, records in batch.items():
                add = self._label if tp.topic == labels else self._add
                for record in records:
                    add(record.value)

    def _add(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            event_id = str(body["event_id"])
            proba = body["probabilities"]
            risk = float(proba["true"])
            predicted = risk > float(proba["false"])
        except (ValueError, KeyError, TypeError):
            self.unknown += 1
            return
        found = self.ground.events.get(event_id)
        if found is None:
            self.unknown += 1
            return
        if event_id in self._seen:  # at-least-once delivery: count each event once
            return
        self._seen.add(event_id)
        fraud = found.fraud
        start = found.position // self.window * self.window
        w = self.windows.get(start)
        if w is None:
            w = self.windows[start] = Window(start=start)
        correct = predicted == fraud
        requested = bool(body.get("label_requested"))
        w.events += 1
        w.correct += correct
        if fraud:
            w.positives += 1
            w.true_positives += predicted
        if requested:
            w.requested += 1
            self.requested += 1
        if self.cards is not None:
            self.day = max(self.day, found.day)
            self.time = max(self.time, found.time)
            self.cards.add(found.day, found.card, risk, fraud, requested)
        self.recent.append((correct, fraud, fraud and predicted))
        now = time.monotonic()
        if not self.scored:
            self.first_at = now
        self.last_at = now
        self.scored += 1

    def _label(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            event_id = str(body["event_id"])
            fraud = str(body["label"]).lower() in ("true", "1")
            chargeback = body.get("source") == "chargeback"
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        found = self.ground.events.get(event_id)
        if found is not None and self.cards is not None:
            self.cards.label(found.card, fraud, self.day, chargeback)

    def report(self) -> Report:
        """The live figures in the offline evaluator's shape."""
        windows = [self.windows[k] for k in sorted(self.windows)]
        return Report(events=self.scored, requested=self.requested, windows=windows)


class HttpServer:
    """The service's FastAPI app under uvicorn in a background thread (``/metrics`` et al.)."""

    def __init__(self, app: Any, host: str, port: int, console: Console) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.console = console
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return sock

    def start(self) -> str | None:
        """Bind (falling back to a free port if taken) and serve; returns the base URL."""
        import uvicorn

        try:
            sock = self._bind(self.port)
        except OSError as exc:
            if self.port == 0:
                self.console.print(f"[yellow]HTTP disabled: cannot bind {self.host}: {exc}")
                return None
            try:
                sock = self._bind(0)
            except OSError:
                self.console.print(f"[yellow]HTTP disabled: cannot bind {self.host}: {exc}")
                return None
            self.console.print(
                f"[yellow]port {self.port} is in use; serving HTTP on a free port instead"
            )
        self._sock = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="demo-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# ---------------------------------------------------------------------------------- display


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _fmt(value: float, pct: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:.0f}%" if pct else f"{value:.3f}"


class LiveView:
    """What the demo shows while it runs: progress bars and the recent figures."""

    def __init__(
        self,
        options: Options,
        info: StreamInfo,
        settings: Settings,
        producer: EventProducer,
        tally: ScoreTally,
        reviewer: SimulatedReviewer,
        labels: Callable[[], Counter[tuple[str, str]]],
        url: str | None,
        chargebacks: Chargebacks | None = None,
    ) -> None:
        self.options = options
        self.info = info
        self.producer = producer
        self.tally = tally
        self.reviewer = reviewer
        self.labels = labels
        self.chargebacks = chargebacks
        self.url = url
        self.phase = "producing…"
        self.budget_labels = max(1, round(settings.budget * info.events))
        self._figures = Text()
        self._figures_at = 0.0
        self.progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            auto_refresh=False,
        )
        add = self.progress.add_task
        n = info.events
        self._produced: TaskID = add("events produced", total=n, note="")
        self._scored: TaskID = add("events scored", total=n, note="")
        self._requested: TaskID = add("labels requested", total=self.budget_labels, note="")
        self._learned: TaskID = add("labels learned", total=1, note="")

    def update(self) -> None:
        p, t, r = self.producer, self.tally, self.reviewer
        elapsed = (p.finished_at or time.monotonic()) - p.started_at if p.started_at else 0.0
        rate = f"{p.produced / elapsed:,.0f}/s" if elapsed > 0 else ""
        self.progress.update(self._produced, completed=p.produced, note=rate)
        behind = p.produced - t.scored
        self.progress.update(self._scored, completed=t.scored, note=f"{behind:,} behind")
        self.progress.update(
            self._requested, completed=t.requested, note=f"of budget {self.budget_labels:,}"
        )
        # A chargeback for a fraud the reviewer has already labelled is not learned twice.
        handled = self.labels()
        learned = sum(n for (_, outcome), n in handled.items() if outcome == "learned")
        note = f"{r.outstanding} with the reviewer"
        total = t.requested
        if self.chargebacks is not None:
            sent = self.chargebacks.sent
            note = f"reviewer {r.outstanding}, chargebacks {sent:,}"
            total += sent - handled[("chargeback", "duplicate")]
        self.progress.update(self._learned, completed=learned, total=max(1, total), note=note)

    def _card_figures(self) -> Text:
        """Yesterday's and the running card figures; recomputed at most twice a second."""
        now = time.monotonic()
        cards = self.tally.cards
        if cards is None or now - self._figures_at < 0.5:
            return self._figures
        self._figures_at = now
        k = self.options.k
        closed = [r for r in cards.results() if r.day < self.tally.day]
        text = Text(f"simulated day {self.producer.day + 1} of {self.options.days} produced\n")
        if not closed:
            text.append(f"card precision@{k}: after the first simulated day")
            self._figures = text
            return text
        last = closed[-1]
        text.append(f"day {last.day + 1:<3} card precision@{k} ")
        text.append(_fmt(last.precision), style="bold")
        text.append(f" (best {_fmt(last.best)})  fraud recall {_fmt(last.recall, pct=True)}")
        text.append(f" of {last.new_fraud_cards} cards\n")
        text.append(f"{len(closed)} days: card precision@{k} ")
        text.append(_fmt(_mean([d.precision for d in closed])), style="bold")
        text.append(f" (mean)  fraud recall {_fmt(_mean([d.recall for d in closed]), pct=True)}")
        roc, ap = cards.ranking(max(0, self.tally.day - RECENT_DAYS + 1))
        text.append(f"\nlast {RECENT_DAYS} days: AUC {_fmt(roc)}, average precision {_fmt(ap)}")
        self._figures = text
        return text

    def __rich__(self) -> RenderableType:
        line = Text()
        if self.options.cards:
            line.append_text(self._card_figures())
        else:
            recent = list(self.tally.recent)
            correct = sum(c for c, _, _ in recent)
            frauds = sum(f for _, f, _ in recent)
            caught = sum(k for _, _, k in recent)
            line.append(f"recent accuracy (last {len(recent):,} scored): ")
            line.append(_fmt(_ratio(correct, len(recent))), style="bold")
            line.append(f"   fraud recall: {_fmt(_ratio(caught, frauds), pct=True)} ")
            line.append(f"({caught}/{frauds})")
        if self.url:
            line.append(f"\nmetrics: {self.url}/metrics", style="dim")
        line.append(f"\n{self.phase}", style="dim")
        return Group(self.progress, line)


# ---------------------------------------------------------------------------------- summary


def _header(name: str) -> str:
    """``streamal (live)`` over two lines, so that the tables fit 80 columns."""
    return name.replace(" (", "\n(")


STYLES: dict[str, dict[str, Any]] = {
    "streamal (live)": {"color": "tab:blue", "marker": "o"},
    "streamal (offline)": {"color": "tab:blue", "linestyle": "--", "marker": "."},
    "random (offline)": {"color": "tab:orange", "marker": "s"},
}


def card_tables(
    options: Options, info: StreamInfo, settings: Settings, runs: dict[str, CardRun], delay: str
) -> list[Table]:
    """The fraud team's figures of every run, overall and per simulated day."""
    names = list(runs)
    k = options.k
    budget = round(settings.budget * info.events)
    chargebacks = (
        f"chargebacks after {options.chargeback_days:g} days"
        if options.chargeback_seconds
        else "no chargebacks"
    )
    overall = Table(
        title=f"streamal demo: {info.events:,} card transactions, {info.frauds:,} frauds "
        f"({_ratio(info.frauds, info.events):.2%})",
        title_justify="left",
        caption=f"{options.customers:,} cards over {options.days} simulated days; budget "
        f"{settings.budget:.1%} ({budget:,} labels), strategy {settings.strategy}; review delay "
        f"{delay}; {chargebacks}",
        caption_justify="left",
    )
    overall.add_column("")
    for name in names:
        overall.add_column(_header(name), justify="right")

    def row(label: str, cell: Callable[[CardRun], str]) -> None:
        overall.add_row(label, *(cell(runs[name]) for name in names))

    recent = f"last {RECENT_DAYS} days"
    row("events scored", lambda r: f"{r.report.events:,}")
    row(
        "labels requested",
        lambda r: f"{r.report.requested:,} ({_ratio(r.report.requested, r.report.events):.1%})",
    )
    for reason in REASONS:
        overall.add_row(f"  {reason}", *(f"{runs[n].by_reason.get(reason, 0):,}" for n in names))
    row("labels learned: reviewer", lambda r: f"{r.learned.get('reviewer', 0):,}")
    row("labels learned: chargeback", lambda r: f"{r.learned.get('chargeback', 0):,}")
    row(f"card precision@{k}, all days", lambda r: _fmt(_mean([d.precision for d in r.days])))
    row(f"card precision@{k}, {recent}", lambda r: _fmt(_mean([d.precision for d in r.recent()])))
    row("fraud recall, all days", lambda r: _fmt(_mean([d.recall for d in r.days]), pct=True))
    row(
        f"fraud recall, {recent}",
        lambda r: _fmt(_mean([d.recall for d in r.recent()]), pct=True),
    )
    row(f"AUC, {recent}", lambda r: _fmt(r.auc))
    row(f"average precision, {recent}", lambda r: _fmt(r.average_precision))

    start = options.simulator().start_date
    daily = Table(
        title=f"card precision@{k} / fraud recall by day (day 1: {start})",
        title_justify="left",
        caption=f"fraud recall: share of the day's new fraud cards among the {k} reviewed; "
        "fraud cards: all, new to streamal (live)",
        caption_justify="left",
    )
    for column in ("day", "txns", "frauds", "fraud\ncards"):
        daily.add_column(column, justify="right")
    for name in names:
        daily.add_column(_header(name), justify="right")
    by_day = {name: {d.day: d for d in r.days} for name, r in runs.items()}
    for day in sorted({d for days in by_day.values() for d in days}):
        first = next(by_day[n][day] for n in names if day in by_day[n])
        cells = []
        for name in names:
            d = by_day[name].get(day)
            cells.append("" if d is None else f"{d.precision:.2f} {_fmt(d.recall, pct=True):>4}")
        daily.add_row(
            str(day + 1),
            f"{first.transactions:,}",
            str(first.frauds),
            f"{first.fraud_cards}, {first.new_fraud_cards}",
            *cells,
        )
    return [overall, daily]


def plot_cards(
    path: Path, options: Options, info: StreamInfo, settings: Settings, runs: dict[str, CardRun]
) -> bool:
    """Card precision@k and fraud recall per simulated day as a PNG; ``False`` without
    matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    k = options.k
    path.parent.mkdir(parents=True, exist_ok=True)
    with two_panels(plt, path) as (cp_ax, rec_ax):
        for name, run in runs.items():
            xs = [d.day + 1 for d in run.days]
            style = STYLES.get(name, {})
            cp_ax.plot(xs, [d.precision for d in run.days], label=name, **style)
            rec_ax.plot(xs, [d.recall for d in run.days], label=name, **style)
        reference = next(iter(runs.values())).days
        cp_ax.plot(
            [d.day + 1 for d in reference],
            [d.best for d in reference],
            color="grey",
            linestyle=":",
            label="perfect ranking (live)",
        )
        for ax in (cp_ax, rec_ax):
            if options.chargeback_seconds:
                ax.axvline(options.chargeback_days + 1, color="red", alpha=0.5, linestyle="-.")
            ax.grid(alpha=0.3)
            ax.set_ylim(-0.02, 1.02)
        if options.chargeback_seconds:
            cp_ax.text(
                options.chargeback_days + 1,
                1.0,
                f" first chargebacks ({options.chargeback_days:g} days late)",
                color="red",
                va="top",
                alpha=0.7,
            )
        cp_ax.set_ylabel(f"card precision@{k}")
        rec_ax.set_ylabel(f"fraud recall (new fraud cards in the top {k})")
        rec_ax.set_xlabel("simulated day")
        cp_ax.legend(loc="upper left", fontsize="small")
        cp_ax.set_title(
            f"streamal vs random sampling at a {settings.budget:.1%} label budget\n"
            f"{info.events:,} transactions, {options.customers:,} cards, "
            f"{_ratio(info.frauds, info.events):.2%} fraud, {k} cards reviewed a day, "
            f"review delay {options.review_delay:g} s",
            fontsize="medium",
        )
    return True


def _total(windows: list[Window], start: int = 0) -> Window:
    total = Window(start=start)
    for w in windows:
        if w.start >= start:
            total.events += w.events
            total.correct += w.correct
            total.positives += w.positives
            total.true_positives += w.true_positives
            total.requested += w.requested
    return total


def _recall_text(w: Window) -> str:
    return f"{_fmt(w.recall, pct=True)} ({w.true_positives}/{w.positives})"


def summary_tables(
    options: Options,
    settings: Settings,
    runs: dict[str, Report],
    learned: dict[str, int],
    by_reason: dict[str, dict[str, int]],
) -> list[Table]:
    """The overall comparison and the per-window learning curves, as tables."""
    names = list(runs)
    budget = round(settings.budget * options.events)
    overall = Table(
        title=f"streamal demo: {options.events:,} events, budget {settings.budget:.1%} "
        f"({budget:,} labels), review delay {options.review_delay:g} s",
        title_justify="left",
        caption=f"after drift: events {options.drift_at:,}–{options.events:,}",
        caption_justify="left",
    )
    overall.add_column("")
    for name in names:
        overall.add_column(_header(name), justify="right")

    def row(label: str, cell: Callable[[str, Report], str]) -> None:
        overall.add_row(label, *(cell(name, runs[name]) for name in names))

    row("events scored", lambda _, r: f"{r.events:,}")
    row("labels requested", lambda _, r: f"{r.requested:,} ({_ratio(r.requested, r.events):.1%})")
    for reason in REASONS:
        overall.add_row(f"  {reason}", *(f"{by_reason[n].get(reason, 0):,}" for n in names))
    row("labels learned", lambda n, _: f"{learned[n]:,}")
    row("accuracy", lambda _, r: _fmt(_total(r.windows).accuracy))
    row("fraud recall", lambda _, r: _recall_text(_total(r.windows)))
    after = options.drift_at
    row("accuracy after drift", lambda _, r: _fmt(_total(r.windows, after).accuracy))
    row("fraud recall after drift", lambda _, r: _recall_text(_total(r.windows, after)))

    curves = Table(
        title="accuracy / fraud recall per window",
        title_justify="left",
        caption=f"* concept drift: the fraud pattern changes at event {options.drift_at:,}",
        caption_justify="left",
    )
    curves.add_column("events")
    curves.add_column("fraud", justify="right")
    for name in names:
        curves.add_column(_header(name), justify="right")
    starts = sorted({w.start for r in runs.values() for w in r.windows})
    by_start = {name: {w.start: w for w in r.windows} for name, r in runs.items()}
    for start in starts:
        first = next(by_start[n][start] for n in names if start in by_start[n])
        end = start + first.events
        drift = " *" if start <= options.drift_at < end else ""
        cells = []
        for name in names:
            w = by_start[name].get(start)
            cells.append("" if w is None else f"{_fmt(w.accuracy)} / {_fmt(w.recall, pct=True)}")
        curves.add_row(f"{start:,}–{end:,}{drift}", str(first.positives), *cells)
    return [overall, curves]


def plot_curves(path: Path, options: Options, settings: Settings, runs: dict[str, Report]) -> bool:
    """Write the learning curves as a PNG; ``False`` (with nothing written) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with two_panels(plt, path) as (acc_ax, rec_ax):
        for name, report in runs.items():
            xs = [w.start + w.events / 2 for w in report.windows]
            style = STYLES.get(name, {})
            acc_ax.plot(xs, [w.accuracy for w in report.windows], label=name, **style)
            rec_ax.plot(xs, [w.recall for w in report.windows], label=name, **style)
        reference = next(iter(runs.values())).windows
        acc_ax.plot(
            [w.start + w.events / 2 for w in reference],
            [1 - _ratio(w.positives, w.events) for w in reference],
            color="grey",
            linestyle=":",
            label="always 'not fraud'",
        )
        for ax in (acc_ax, rec_ax):
            ax.axvline(options.drift_at, color="red", alpha=0.5, linestyle="-.")
            ax.grid(alpha=0.3)
        acc_ax.text(options.drift_at, 1.0, " drift", color="red", va="top", alpha=0.7)
        acc_ax.set_ylabel("accuracy")
        rec_ax.set_ylabel("fraud recall")
        rec_ax.set_ylim(-0.02, 1.02)
        rec_ax.set_xlabel(f"event (windows of {options.window:,})")
        acc_ax.legend(loc="lower right", fontsize="small")
        acc_ax.set_title(
            f"streamal vs random sampling at a {settings.budget:.1%} label budget "
            f"({options.events:,} events, {options.fraud_rate:.1%} fraud, "
            f"review delay {options.review_delay:g} s)",
            fontsize="medium",
        )
    return True


# ---------------------------------------------------------------------------------- run


def _wait_until(
    done: Callable[[], bool], timeout: float, tick: Callable[[], None], what: str
) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            log.warning("demo: gave up waiting for %s after %.0f s", what, timeout)
            return False
        tick()
        time.sleep(0.1)
    return True


def _duration(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _labels(registry: Any) -> Counter[tuple[str, str]]:
    """Labels the service has handled, by (source, outcome), from its Prometheus counters."""
    counts: Counter[tuple[str, str]] = Counter()
    for metric in registry.collect():
        if metric.name == "streamal_labels":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["source"], sample.labels["outcome"])
                    counts[key] += int(sample.value)
    return counts


def run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    options = Options(
        stream=args.stream,
        rate=args.rate,
        review_delay=args.review_delay,
        plot=args.plot,
        seed=settings.seed,
        events=args.events,
        fraud_rate=args.fraud_rate,
        window=args.window,
        customers=args.customers,
        terminals=args.terminals,
        days=args.days,
        fraud_scale=args.fraud_scale,
        cards_per_day=args.cards_per_day,
        chargeback_days=args.chargeback_days,
    )
    # kafka-python narrates connections and slow loop turns, matplotlib its font cache: both
    # would bury the display, so they are quiet unless asked for with --log-level debug.
    noisy = [logging.getLogger(name) for name in ("kafka", "matplotlib")]
    levels = [logger.level for logger in noisy]
    if settings.log_level != "debug":
        for logger in noisy:
            logger.setLevel(logging.ERROR)
    try:
        return _run(options, settings, console)
    except KeyboardInterrupt:
        if not console.is_terminal:
            console.line()
        console.print("[yellow]interrupted: stopped the producer, reviewer, service and broker")
        return 130
    finally:
        for logger, level in zip(noisy, levels, strict=True):
            logger.setLevel(level)


@dataclass
class LiveResult:
    """What the live run leaves for the summary."""

    report: Report
    cards: CardDays | None
    learned: dict[str, int]
    by_reason: dict[str, int]
    produced: int
    produced_rate: float
    scored_rate: float
    #: Stream seconds per event (card stream), to turn the review delay into stream time.
    stream_step: float
    seconds: float


def _run(options: Options, settings: Settings, console: Console) -> int:
    began = time.monotonic()
    with console.status("simulating the stream once to size it…"):
        info = stream_info(options)
    live = _live(options, info, settings, console)
    if isinstance(live, int):
        return live
    settings, result = live
    if options.cards:
        _cards_summary(options, info, settings, result, console)
    else:
        _synthetic_summary(options, settings, result, console)
    console.print(
        f"live: {result.produced:,} events produced at {result.produced_rate:,.0f}/s, scored at "
        f"{result.scored_rate:,.0f}/s; live run {result.seconds:.1f} s, total "
        f"{time.monotonic() - began:.1f} s."
    )
    return 0


def _live(
    options: Options, info: StreamInfo, settings: Settings, console: Console
) -> int | tuple[Settings, LiveResult]:
    """Broker, service, HTTP, producer, reviewer: run the stream through them and measure."""
    from streamal.adapters.http import create_app
    from streamal.service import Service

    with ExitStack() as stack:
        external = bool(settings.bootstrap_servers)
        if not external:
            from streamal.adapters.broker import EmbeddedBroker

            broker = EmbeddedBroker()
            stack.callback(broker.stop)
            try:
                broker.start()
            except (RuntimeError, OSError) as exc:
                console.print(f"[red]cannot start the embedded broker: {exc}")
                return 1
            settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
            console.print(f"embedded broker (tansu) on [bold]{broker.bootstrap_servers}[/]")
        else:
            console.print(f"broker: [bold]{settings.bootstrap_servers}[/]")
        settings = demo_settings(settings, external, options.cards, options.k)
        names = [getattr(settings, f) for f in (*TOPIC_FIELDS, "topic_dead_letter")]
        if settings.create_topics:
            ensure_topics(settings, names, settings.topic_partitions)

        service = Service(settings)
        service.start()
        stack.callback(service.stop)
        http = HttpServer(
            create_app(service, manage_lifecycle=False),
            settings.http_host,
            settings.http_port,
            console,
        )
        stack.callback(http.stop)
        url = http.start()
        if url:
            console.print(f"metrics while it runs: [bold]{url}/metrics[/]  (also /v1/model)")
        if not service.wait_ready(30):
            console.print(f"[red]the service did not become ready in 30 s: {service.ready()}")
            return 1
        ready_at = time.monotonic()

        ground = Ground()
        cards = CardDays(options.k) if options.cards else None
        tally = ScoreTally(settings, ground, options.window, cards)
        tally.start()
        stack.callback(tally.stop)
        reviewer = SimulatedReviewer(settings, ground.label, options.review_delay, "reviewer")
        reviewer.start()
        stack.callback(reviewer.stop)
        chargebacks = None
        if options.cards and options.chargeback_seconds:
            chargebacks = Chargebacks(settings, options.chargeback_seconds, lambda: tally.time)
            chargebacks.start()
            stack.callback(chargebacks.stop)
        producer = EventProducer(settings, options, info, ground, chargebacks)
        stack.callback(producer.stop)
        registry = service.metrics.registry

        def labels() -> Counter[tuple[str, str]]:
            return _labels(registry)

        view = LiveView(
            options, info, settings, producer, tally, reviewer, labels, url, chargebacks
        )
        view.update()
        with Live(view, console=console, refresh_per_second=8, transient=False):
            producer.start()
            while producer.alive():
                view.update()
                time.sleep(0.1)
            if producer.error is not None:
                console.print(f"[red]producing transactions failed: {producer.error!r}")
                return 1
            view.phase = "waiting for the last scores…"
            _wait_until(
                lambda: tally.scored >= producer.produced,
                max(30.0, producer.produced / 500),
                view.update,
                "the last scores",
            )
            view.phase = "waiting for the reviewer…"
            _wait_until(
                lambda: reviewer.seen >= tally.requested and reviewer.outstanding == 0,
                options.review_delay + 15,
                view.update,
                "the reviewer",
            )
            if chargebacks is not None:
                view.phase = "waiting for the last chargebacks…"
                _wait_until(chargebacks.caught_up, 10, view.update, "the last chargebacks")
            sent = 0 if chargebacks is None else chargebacks.sent
            view.phase = "waiting for the service to learn the last labels…"
            _wait_until(
                lambda: _labels(registry).total() >= reviewer.answered + sent,
                15,
                view.update,
                "the last labels",
            )
            view.update()
            view.phase = "live run finished"
        if not console.is_terminal:
            console.line()  # a non-terminal Live leaves its last line open
        handled = _labels(registry)
        span = producer.last_time - producer.first_time
        result = LiveResult(
            report=tally.report(),
            cards=cards,
            learned={s: handled[(s, "learned")] for s in ("reviewer", "chargeback")},
            by_reason=dict(reviewer.by_reason),
            produced=producer.produced,
            produced_rate=producer.produced / max(1e-9, producer.finished_at - producer.started_at),
            scored_rate=tally.rate(),
            stream_step=span / (producer.produced - 1) if producer.produced > 1 else 0.0,
            seconds=time.monotonic() - ready_at,
        )
        # Stop the live system before the offline runs: they want the CPU.
    return settings, result


#: The baseline: the same budget, every label bought at random.
RANDOM = {
    "strategy": "random",
    "random_share": 1.0,
    "exploit_share": 0.0,
    "alert_cards_per_day": None,
}


def _cards_summary(
    options: Options, info: StreamInfo, settings: Settings, live: LiveResult, console: Console
) -> None:
    """Replay the card stream offline (the service's settings, then random) and report."""
    from streamal.service import build_learner

    assert live.cards is not None
    stream_speed = live.scored_rate * live.stream_step if not math.isnan(live.stream_step) else 0
    delay = options.review_delay * stream_speed
    delay_text = f"{options.review_delay:g} s ≈ {_duration(delay)} of stream time"
    runs = {"streamal (live)": CardRun.of(live.report, live.cards, live.learned, live.by_reason)}
    with console.status(f"replaying the stream offline (review delay {_duration(delay)})…"):
        for name, update in (("streamal (offline)", {}), ("random (offline)", RANDOM)):
            clock = StreamClock()
            learner = build_learner(settings.model_copy(update=update), ClassSet(), clock=clock)
            hooks = OfflineCards(info, options.k)
            report = prequential(
                hooks.stream(options.stream_pairs()),
                learner,
                window=options.window,
                label_delay_seconds=delay,
                clock=clock,
                spend_window=settings.budget_window,
                chargeback_delay_seconds=options.chargeback_seconds,
                on_event=hooks.on_event,
                on_label=hooks.on_label,
            )
            runs[name] = CardRun.of(report, hooks.cards, dict(hooks.learned), report.by_reason)
    for table in card_tables(options, info, settings, runs, delay_text):
        console.print(table)
    console.print(
        f"The offline runs replay the same stream with the same settings and features on the "
        f"stream's clock; the reviewer's {delay_text} (scoring rate × stream time per event)."
    )
    _plotted(plot_cards(options.plot, options, info, settings, runs), options.plot, console)


def _synthetic_summary(
    options: Options, settings: Settings, live: LiveResult, console: Console
) -> None:
    """Replay the synthetic stream offline (the service's settings, then random) and report."""
    from streamal.service import build_learner

    delay_events = round(options.review_delay * live.scored_rate)
    with console.status(f"replaying the stream offline (label delay {delay_events:,} events)…"):
        offline = {}
        for name, update in (("streamal (offline)", {}), ("random (offline)", RANDOM)):
            learner = build_learner(settings.model_copy(update=update), ClassSet())
            offline[name] = prequential(
                options.stream_pairs(), learner, label_delay=delay_events, window=options.window
            )
    runs = {"streamal (live)": live.report, **offline}
    live_learned = live.learned.get("reviewer", 0)
    learned_by = {"streamal (live)": live_learned, **{n: r.requested for n, r in offline.items()}}
    reasons = {"streamal (live)": live.by_reason, **{n: r.by_reason for n, r in offline.items()}}
    for table in summary_tables(options, settings, runs, learned_by, reasons):
        console.print(table)
    console.print(
        f"Offline runs use a label delay of {delay_events:,} events (review delay × scoring rate)."
    )
    _plotted(plot_curves(options.plot, options, settings, runs), options.plot, console)


def _plotted(drawn: bool, path: Path, console: Console) -> None:
    if drawn:
        console.print(f"curves: [bold]{path.resolve()}[/]")
    else:
        console.print(
            "[yellow]matplotlib is not installed, so no plot was drawn: "
            "pip install 'streamal[demo]' (or matplotlib)"
        )
