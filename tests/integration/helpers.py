"""Shared pieces of the integration tests: settings, a running service, topic readers, metrics.

Every Kafka client opened here is closed by its owner (``filterwarnings = error`` turns a leaked
socket into a failed test), and every wait is a bounded polling loop, never a fixed sleep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import uvicorn
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streamal.adapters.http import create_app
from streamal.config import Settings
from streamal.service import Service

__all__ = [
    "FreshTopics",
    "TopicReader",
    "histogram_quantile_bound",
    "http_client",
    "kafka_producer",
    "metric_sum",
    "produce_stream",
    "running_service",
    "service_settings",
    "wait_until",
]


class TopicNames(Protocol):
    """The ``topics`` fixture's shape (tests/conftest.py)."""

    @property
    def transactions(self) -> str: ...
    @property
    def scores(self) -> str: ...
    @property
    def reviews(self) -> str: ...
    @property
    def labels(self) -> str: ...
    @property
    def dead_letter(self) -> str: ...


@dataclass(frozen=True)
class FreshTopics:
    """Unique topic names, for fixtures wider than one test (the ``topics`` fixture's shape)."""

    transactions: str
    scores: str
    reviews: str
    labels: str
    dead_letter: str

    @classmethod
    def new(cls) -> FreshTopics:
        suffix = uuid.uuid4().hex[:8]
        return cls(
            *(
                f"{name}-{suffix}"
                for name in ("transactions", "scores", "reviews", "labels", "dead-letter")
            )
        )


def broker_values(bootstrap: str, topics: TopicNames, group: str | None = None) -> dict[str, Any]:
    """Setting values for a service on the test broker: the test's own topics and group (a fresh
    one unless given), and fast group joins."""
    return {
        "bootstrap_servers": bootstrap,
        "topic_transactions": topics.transactions,
        "topic_scores": topics.scores,
        "topic_reviews": topics.reviews,
        "topic_labels": topics.labels,
        "topic_dead_letter": topics.dead_letter,
        "consumer_group": group or f"g-{uuid.uuid4().hex[:8]}",
        "session_timeout_ms": 2000,
        "heartbeat_interval_ms": 500,
    }


def service_settings(bootstrap: str, topics: TopicNames, **overrides: Any) -> Settings:
    """Settings for an in-process service on the test broker (:func:`broker_values`)."""
    return Settings(**{**broker_values(bootstrap, topics), **overrides})


@contextmanager
def running_service(settings: Settings, ready_timeout: float = 30.0) -> Iterator[Service]:
    """A started service, ready (labels positioned, partitions assigned); stopped on exit."""
    service = Service(settings)
    service.start()
    try:
        assert service.wait_ready(ready_timeout), f"service not ready: {service.ready()}"
        yield service
    finally:
        service.stop()


@contextmanager
def kafka_producer(bootstrap: str, **overrides: Any) -> Iterator[KafkaProducer]:
    """A plain bytes producer (the test's stand-in for upstream systems and reviewers)."""
    config: dict[str, Any] = {"bootstrap_servers": bootstrap, "linger_ms": 0, **overrides}
    producer = KafkaProducer(**config)
    try:
        yield producer
    finally:
        producer.close(timeout=10)


@contextmanager
def http_client(service: Service) -> Iterator[httpx.Client]:
    """The service's real HTTP app under uvicorn on a free loopback port, and a client for it.

    The test owns the service's lifecycle (``manage_lifecycle=False``). A real server rather than
    Starlette's TestClient: the latter warns (an error here) when used with ``httpx``.
    """
    app = create_app(service, manage_lifecycle=False)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-http", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 10, what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


#: Produces ``drifting_transactions(n, seed=seed)`` at a steady rate; prints the seconds taken.
_PRODUCER_SCRIPT = """
import json, sys, time
from kafka import KafkaProducer
from streamal.core.synthetic import drifting_transactions

bootstrap, topic, n, seed, rate = sys.argv[1:6]
producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
started = time.monotonic()
for i, (event, _) in enumerate(drifting_transactions(int(n), seed=int(seed))):
    key = event["event_id"].encode()
    producer.send(topic, key=key, value=json.dumps(event).encode())
    if i % 50 == 49:  # steady pace: never ahead of `rate` events per second
        ahead = started + (i + 1) / float(rate) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
producer.flush(timeout=30)
producer.close(timeout=10)
print(time.monotonic() - started)
"""


def produce_stream(bootstrap: str, topic: str, n: int, seed: int, rate: float) -> float:
    """Produce the synthetic stream from another process, as an upstream system would.

    A separate process keeps the producer off the service's GIL, so the latencies the test
    measures are the service's own. Returns the seconds the stream took.
    """
    done = subprocess.run(
        [sys.executable, "-c", _PRODUCER_SCRIPT, bootstrap, topic, str(n), str(seed), str(rate)],
        capture_output=True,
        text=True,
        timeout=60 + n / rate,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return float(done.stdout.strip().splitlines()[-1])


def wait_until(
    condition: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def whole_topic_consumer(bootstrap: str, topic: str) -> KafkaConsumer:
    """A consumer assigned every partition of ``topic``, from the beginning, without a group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        max_poll_records=5000,
    )
    try:
        partitions: set[int] | None = None
        deadline = time.monotonic() + 15
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                time.sleep(0.05)
        assert partitions, f"topic {topic} does not exist"
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
    except BaseException:
        consumer.close()
        raise
    return consumer


class TopicReader:
    """Reads a whole topic from its first record, without a consumer group (no join wait).

    The topic must exist (the service creates its topics before it is ready).
    """

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = whole_topic_consumer(bootstrap, topic)

    def poll(self, timeout_ms: int = 100) -> list[Any]:
        """The next records (``ConsumerRecord``s, value as bytes), possibly none."""
        batch = self.consumer.poll(timeout_ms=timeout_ms)
        return [record for records in batch.values() for record in records]

    def read_json(
        self,
        until: Callable[[list[dict[str, Any]]], bool],
        timeout: float,
        skip_invalid: bool = False,
    ) -> list[dict[str, Any]]:
        """Decode records (adding ``_offset``) until ``until(seen_so_far)``; fail on timeout.

        ``skip_invalid`` passes over records that are not JSON objects (a test wrote them).
        """
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not until(seen):
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: timed out with {len(seen)} records read")
            for record in self.poll():
                try:
                    body = json.loads(record.value)
                except ValueError:
                    if skip_invalid:
                        continue
                    raise
                body["_offset"] = record.offset
                seen.append(body)
        return seen

    def close(self) -> None:
        self.consumer.close(autocommit=False)

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _exposition(source: str | CollectorRegistry) -> str:
    return source if isinstance(source, str) else generate_latest(source).decode()


def metric_sum(source: str | CollectorRegistry, sample: str, /, **labels: str) -> float:
    """Sum of the samples named ``sample`` whose labels include ``labels`` (parsed exposition).

    >>> text = 'x_total{a="1",b="p"} 2.0\\nx_total{a="1",b="q"} 3.0\\nx_total{a="2",b="p"} 5.0\\n'
    >>> metric_sum(text, "x_total", a="1"), metric_sum(text, "x_total", b="p")
    (5.0, 7.0)
    """
    total = 0.0
    for family in text_string_to_metric_families(_exposition(source)):
        for s in family.samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def histogram_quantile_bound(
    source: str | CollectorRegistry, name: str, quantile: float
) -> tuple[float, int]:
    """The smallest bucket bound ``le`` holding ``quantile`` of the observations, and the count.

    This is an upper bound on the true quantile (the observation lies somewhere in that bucket).

    >>> text = ('h_bucket{le="0.1"} 98.0\\nh_bucket{le="0.5"} 100.0\\n'
    ...         'h_bucket{le="+Inf"} 100.0\\nh_count 100.0\\n')
    >>> histogram_quantile_bound(text, "h", 0.99)
    (0.5, 100)
    """
    buckets: list[tuple[float, float]] = []
    count = 0.0
    for family in text_string_to_metric_families(_exposition(source)):
        for s in family.samples:
            if s.name == f"{name}_bucket":
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name == f"{name}_count":
                count = s.value
    for bound, cumulative in sorted(buckets):
        if count and cumulative >= quantile * count:
            return bound, int(count)
    return float("inf"), int(count)
