"""Pieces of the recovery tests: ``streamal serve`` as a real process, a steady producer, a
reviewer that answers every distinct review request once, and whole-topic readers.

The service under test runs as ``python -m streamal.cli serve`` (configured only through
``STREAMAL_*`` environment variables), so that ``SIGKILL`` and ``SIGTERM`` hit a real process
exactly as an orchestrator would. Every Kafka client opened here is closed by its owner.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
from helpers import TopicNames, broker_values, wait_until, whole_topic_consumer
from kafka import KafkaProducer

from streamal.adapters import checkpoint
from streamal.adapters.checkpoint import DirectoryStore
from streamal.core.messages import ClassSet, TransactionSchema, decode_review, extract_features
from streamal.core.model import OnlineModel, make_model
from streamal.core.synthetic import drifting_transactions

__all__ = [
    "CHECKPOINT_KEY",
    "Reviewer",
    "ServeProcess",
    "SteadyProducer",
    "free_port",
    "load_checkpoint",
    "predictions",
    "produce",
    "probe_features",
    "read_topic",
    "replay_reference",
    "rss_mb",
    "serve_env",
    "terminate",
    "whole_topic_consumer",
]

CHECKPOINT_KEY = "integration-test-checkpoint-key"


def free_port() -> int:
    """A free loopback port (racy, but the service binds it within a second)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_env(
    bootstrap: str,
    topics: TopicNames,
    checkpoint_dir: Path | str,
    group: str | None = None,
    **settings: Any,
) -> dict[str, str]:
    """``STREAMAL_*`` variables for one ``streamal serve`` on the test's topics and broker."""
    values: dict[str, Any] = {
        **broker_values(bootstrap, topics, group),
        "checkpoint_dir": str(checkpoint_dir),
        "checkpoint_key": CHECKPOINT_KEY,
        "checkpoint_interval_seconds": 0.5,
        "checkpoint_every_labels": 20,
        "http_port": free_port(),
        "log_level": "warning",
        **settings,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMAL_")}
    env.update({f"STREAMAL_{k.upper()}": str(v) for k, v in values.items()})
    return env


class ServeProcess:
    """One ``streamal serve`` process: start, probe over HTTP, signal, wait, restart.

    Its output goes to ``log_path`` (appended across restarts), the first thing to read when a
    test fails.
    """

    def __init__(
        self, env: Mapping[str, str], log_path: Path, command: list[str] | None = None
    ) -> None:
        self.command = command or [sys.executable, "-m", "streamal.cli", "serve"]
        self.env = dict(env)
        self.port = int(self.env["STREAMAL_HTTP_PORT"])
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=5)
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> ServeProcess:
        assert not self.running
        with open(self.log_path, "ab") as log:
            log.write(f"--- start at {time.time():.3f}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started_at = time.monotonic()
        return self

    def status(self, path: str) -> int | None:
        """The HTTP status of GET ``path``, or None while nothing answers."""
        try:
            return self.client.get(path).status_code
        except httpx.HTTPError:
            return None

    def get_json(self, path: str) -> Any:
        response = self.client.get(path)
        response.raise_for_status()
        return response.json()

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Block until ``/readyz`` answers 200; returns the seconds since :meth:`start`."""

        def ready() -> bool:
            if not self.running:
                raise AssertionError(f"streamal serve exited early:\n{self.log_tail()}")
            return self.status("/readyz") == 200

        try:
            wait_until(ready, timeout, interval=0.02, what="streamal serve to be ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
        return time.monotonic() - self.started_at

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL and reap: a crash, as the kernel's OOM killer or ``kill -9`` does it."""
        if self.running:
            self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "<no log>"
        return "\n".join(text[-lines:])

    def close(self) -> None:
        self.kill()
        self.client.close()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SteadyProducer(threading.Thread):
    """Produces ``events`` to ``topic`` at ``rate`` per second; remembers the ids it sent.

    Sends are acknowledged before an id counts as produced, so ``produced`` is exactly what the
    service must score.
    """

    def __init__(
        self, bootstrap: str, topic: str, events: Iterable[Mapping[str, Any]], rate: float
    ) -> None:
        super().__init__(name="test-producer", daemon=True)
        self.topic = topic
        self.events = list(events)
        self.rate = rate
        self.produced: list[str] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)

    def run(self) -> None:
        try:
            started = time.monotonic()
            chunk = max(1, int(self.rate / 20))
            for i in range(0, len(self.events), chunk):
                if self._halt.is_set():
                    break
                futures = []
                for event in self.events[i : i + chunk]:
                    key = str(event["event_id"]).encode()
                    value = json.dumps(event).encode()
                    futures.append((key, self._producer.send(self.topic, key=key, value=value)))
                for key, future in futures:
                    future.get(timeout=30)
                    self.produced.append(key.decode())
                ahead = started + (i + chunk) / self.rate - time.monotonic()
                if ahead > 0:
                    self._halt.wait(ahead)
        except BaseException as exc:  # noqa: BLE001 - re-raised by close()
            self.error = exc

    def close(self) -> None:
        self._halt.set()
        self.join(30)
        self._producer.close(timeout=10)
        if self.error is not None:
            raise self.error


def produce(
    bootstrap: str, topic: str, events: Iterable[Mapping[str, Any]], rate: float
) -> list[str]:
    """Produce ``events`` at ``rate`` and wait until all are acknowledged; returns their ids."""
    producer = SteadyProducer(bootstrap, topic, events, rate)
    producer.start()
    producer.join(60 + len(producer.events) / rate)
    producer.close()
    return producer.produced


class Reviewer(threading.Thread):
    """Reads the whole reviews topic (no group) and labels each distinct event exactly once.

    Duplicate review requests (a batch processed again after a crash) get no second label, so
    ``len(labelled)`` is the number of distinct labels produced, each produced once.
    """

    def __init__(
        self,
        bootstrap: str,
        reviews: str,
        labels: str,
        truth: Mapping[str, bool] | Mapping[str, str],
        source: str = "reviewer",
        already: Iterable[str] = (),
    ) -> None:
        super().__init__(name="test-reviewer", daemon=True)
        self.truth = truth
        self.labels_topic = labels
        self.source = source
        self.requests = 0
        # ``already``: labelled by a reviewer before this one (it carries on from there).
        self.labelled: list[str] = list(already)
        self._seen: set[str] = set(already)
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._consumer = whole_topic_consumer(bootstrap, reviews)
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                batch = self._consumer.poll(timeout_ms=50)
                sent = []
                for records in batch.values():
                    for record in records:
                        self.requests += 1
                        event_id = json.loads(record.value)["event_id"]
                        if event_id in self._seen:
                            continue
                        self._seen.add(event_id)
                        label = {
                            "event_id": event_id,
                            "label": self.truth[event_id],
                            "source": self.source,
                        }
                        future = self._producer.send(
                            self.labels_topic,
                            key=event_id.encode(),
                            value=json.dumps(label).encode(),
                        )
                        sent.append((event_id, future))
                for event_id, future in sent:
                    future.get(timeout=30)  # counted only once the broker has it
                    self.labelled.append(event_id)
        except BaseException as exc:  # noqa: BLE001 - re-raised by close()
            self.error = exc

    def close(self) -> None:
        self._halt.set()
        self.join(30)
        self._consumer.close(autocommit=False)
        self._producer.close(timeout=10)
        if self.error is not None:
            raise self.error


def read_topic(bootstrap: str, topic: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every record of ``topic`` up to its current end, decoded (``_partition``, ``_offset``).

    Undecodable records come back as ``{"_raw": bytes}``.
    """
    consumer = whole_topic_consumer(bootstrap, topic)
    try:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        assigned = list(consumer.assignment())
        while True:
            batch = consumer.poll(timeout_ms=100)
            for tp, records in batch.items():
                for record in records:
                    try:
                        body = json.loads(record.value)
                    except ValueError:
                        body = {"_raw": record.value}
                    if not isinstance(body, dict):
                        body = {"_raw": record.value}
                    body["_partition"], body["_offset"] = tp.partition, record.offset
                    seen.append(body)
            highs = [consumer.highwater(tp) for tp in assigned]
            if not batch and all(
                h is not None and consumer.position(tp) >= h
                for tp, h in zip(assigned, highs, strict=True)
            ):
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: not read to its end within {timeout:.0f} s")
    finally:
        consumer.close(autocommit=False)


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def terminate(process: ServeProcess, timeout: float) -> tuple[int, float]:
    """SIGTERM; returns the exit status and the seconds it took to exit."""
    sent = time.monotonic()
    process.signal(signal.SIGTERM)
    code = process.wait(timeout)
    return code, time.monotonic() - sent


def load_checkpoint(directory: Path) -> Any:
    """The learner state a service left in ``directory`` (verified with the test key)."""
    blob = DirectoryStore(directory).read()
    assert blob is not None, f"no checkpoint in {directory}"
    return checkpoint.loads(blob, CHECKPOINT_KEY.encode())


def replay_reference(
    labels: Iterable[Mapping[str, Any]], reviews: Iterable[Mapping[str, Any]]
) -> OnlineModel:
    """A fresh model taught each label once, in labels-topic order, with its requested features.

    This is what "every label learned exactly once, in order" means; a service model that
    predicts differently lost a label, learned one twice, or learned out of order.
    """
    classes = ClassSet()
    features: dict[str, dict[str, float]] = {}
    for review in reviews:
        if "_raw" not in review and review["event_id"] not in features:
            features[review["event_id"]] = decode_review(json.dumps(review), classes).features
    model = OnlineModel(make_model("logreg", 2, 42), classes.classes, "logreg")
    for label in labels:
        model.learn_one(features[label["event_id"]], bool(label["label"]))
    return model


def probe_features(n: int = 300, seed: int = 987) -> list[dict[str, float]]:
    """Feature vectors of a probe set the model never saw."""
    schema = TransactionSchema()
    return [extract_features(e, schema) for e, _ in drifting_transactions(n, seed=seed)]


def predictions(model: OnlineModel, probes: Iterable[Mapping[str, float]]) -> list[Any]:
    """The model's class probabilities on every probe (compared exactly, not approximately)."""
    return [model.predict_proba_one(x) for x in probes]
