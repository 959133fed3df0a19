"""The threads of a live demo run around the service: producer, score reader, chargebacks, HTTP.

Each records what the summary needs (the ground truth, the scores joined with it) and stops
cleanly; a failure is logged or kept for the main thread, never silent.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from kafka import TopicPartition
from rich.console import Console

from streamal.adapters.kafka import make_consumer, make_producer
from streamal.config import Settings
from streamal.core.evaluator import Report, Window
from streamal.core.messages import SCHEMA_VERSION, ClassSet, to_iso
from streamal.demo.cards import CardDays
from streamal.demo.options import CARD, Options, StreamInfo

__all__ = [
    "Chargebacks",
    "EventProducer",
    "Fact",
    "Ground",
    "HttpServer",
    "ScoreTally",
    "assign_all_from_end",
]

log = logging.getLogger("streamal.demo")


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
