"""``streamal bench``: end-to-end events/s through the broker, against a bare Kafka relay.

Why a relay: on this kind of machine the Python Kafka client, not the broker, is the wall, so an
absolute events/s says little. The honest yardstick is the same client doing the least possible
work with the same messages: consume each one and produce one message for it, flushing and
committing per poll batch exactly as the service does. The service's overhead is then the ratio.

Both contenders read the same input topic, produced in full before any timing starts, each with
a fresh consumer group; they run alternately (relay, streamal, relay, ...) so machine noise hits
both. Each is timed from its first record to its last committed batch (group joins excluded).
While streamal runs, a simulated reviewer in a separate process (as reviewers are in real life,
so it does not compete for the service's GIL) answers every review request with the true label,
so the labels loop learns during the run; label-apply latency comes from the service's own
``streamal_label_apply_seconds`` histogram (quantiles interpolated within buckets).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import math
import os
import pstats
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from rich.console import Console
from rich.table import Table

from streamal.adapters.kafka import ensure_topics, make_consumer, make_producer
from streamal.config import CONNECTION_SETTINGS, Settings
from streamal.core.synthetic import drifting_transactions
from streamal.reviewer import SimulatedReviewer
from streamal.service import Service

__all__ = ["configure", "histogram_quantile", "run"]

TARGET_RATIO = 0.8
#: A returned label updates the model within this many seconds at p99 (issue 2's promise).
TARGET_APPLY_P99 = 0.1
RSS_POINTS = 10
#: How long one contender may take before the bench gives up (seconds per 1,000 events, + base).
TIMEOUT_PER_1000 = 2.0
TIMEOUT_BASE = 60.0

#: Functions whose cumulative time, per event, says where the events loop spends it.
PROFILE_STAGES: tuple[tuple[str, str, str], ...] = (
    ("whole batch (_process_batch)", "streamal/service.py", "_process_batch"),
    ("  decode (decode_transaction)", "streamal/core/messages.py", "decode_transaction"),
    ("  score (ActiveLearner.score)", "streamal/core/learner.py", "score"),
    ("    model predict_proba_one", "streamal/core/model.py", "predict_proba_one"),
    ("    gate decide", "streamal/core/gate.py", "decide"),
    ("  json encode (json.dumps)", "json/__init__.py", "dumps"),
    ("  producer.send", "kafka/producer/kafka.py", "send"),
    ("  histogram observe", "prometheus_client/metrics.py", "observe"),
    ("  producer.flush", "kafka/producer/kafka.py", "flush"),
    ("  consumer.commit", "kafka/consumer/group.py", "commit"),
    ("consumer.poll (outside the batch)", "kafka/consumer/group.py", "poll"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    """Bench options; model, budget, seed and the broker come from the service settings."""
    parser.add_argument(
        "--events", type=int, default=200_000, help="Events per run (default 200000)."
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="Relay/streamal pairs, run alternately (default 1)."
    )
    parser.add_argument("--json", metavar="OUT", help="Also write the figures as JSON to OUT.")
    parser.add_argument(
        "--profile",
        metavar="OUT",
        help="After the timed runs, run streamal once more with its events loop under cProfile; "
        "write the stats to OUT and print the top functions and per-event stage costs.",
    )


# --------------------------------------------------------------------------- small helpers


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Quantile ``q`` from cumulative ``(upper_bound, count)`` buckets, as Prometheus does it.

    Linear interpolation inside the bucket that holds the quantile; a quantile in the ``+Inf``
    bucket is reported as the largest finite bound. ``None`` when nothing was observed.

    >>> round(histogram_quantile(0.5, [(0.001, 0.0), (0.01, 10.0), (math.inf, 10.0)]), 6)
    0.0055
    >>> histogram_quantile(0.99, [(0.1, 5.0), (math.inf, 10.0)])
    0.1
    >>> histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None
    True
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def _histogram_buckets(registry: CollectorRegistry, name: str) -> list[tuple[float, float]]:
    buckets = []
    for metric in registry.restricted_registry([name + "_bucket"]).collect():
        for sample in metric.samples:
            if sample.name == name + "_bucket":
                buckets.append((float(sample.labels["le"]), float(sample.value)))
    return buckets


def _sum_samples(registry: CollectorRegistry, name: str) -> float:
    """The sum of a metric's samples over all its label values."""
    return sum(
        sample.value
        for metric in registry.restricted_registry([name]).collect()
        for sample in metric.samples
        if sample.name == name
    )


class _Reader:
    """Reads one sample of a registry cheaply (collects only the metric that holds it)."""

    def __init__(self, registry: CollectorRegistry, name: str, labels: dict[str, str]) -> None:
        self._registry = registry.restricted_registry([name])
        self._name = name
        self._labels = labels

    def __call__(self) -> float:
        for metric in self._registry.collect():
            for sample in metric.samples:
                if sample.name == self._name and sample.labels == self._labels:
                    return float(sample.value)
        return 0.0


@dataclass
class RunResult:
    """One contender's run."""

    contender: str
    events: int
    seconds: float
    #: CPU time of this whole process over the run (all its threads): less noisy than wall time
    #: on a shared machine, and what decides throughput once a core is saturated.
    cpu_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def _bench_settings(settings: Settings, bootstrap: str) -> Settings:
    """The user's settings on the bench's broker, with fast group joins unless set explicitly."""
    update: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if "session_timeout_ms" not in settings.model_fields_set:
        update["session_timeout_ms"] = 2000
    if "heartbeat_interval_ms" not in settings.model_fields_set:
        update["heartbeat_interval_ms"] = 500
    return settings.model_copy(update=update)


@contextlib.contextmanager
def _broker(settings: Settings) -> Iterator[str]:
    if settings.bootstrap_servers:
        yield settings.bootstrap_servers
        return
    from streamal.adapters.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


# --------------------------------------------------------------------------- input


def produce_input(settings: Settings, topic: str, n: int) -> bytearray:
    """Write ``n`` synthetic transactions to ``topic``; returns the true labels by event index.

    Streams: one event is generated, encoded and handed to the producer at a time (the producer's
    own buffer bounds what is in flight), so a 1M-event run holds 1 MB of labels, not 1M events.
    """
    truth = bytearray(n)
    producer = make_producer(settings)
    try:
        send = producer.send
        for i, (event, fraud) in enumerate(drifting_transactions(n, seed=settings.seed)):
            truth[i] = fraud
            send(topic, key=event["event_id"].encode(), value=json.dumps(event).encode())
            if i % 50_000 == 49_999:
                producer.flush()
        producer.flush()
    finally:
        producer.close()
    return truth


# --------------------------------------------------------------------------- contender 1: relay


def run_relay(settings: Settings, topic: str, n: int, timeout: float) -> RunResult:
    """A bare kafka-python relay: consume each message, produce one, flush + commit per batch."""
    out_topic = f"{topic}-relay-{uuid.uuid4().hex[:6]}"
    ensure_topics(settings, [out_topic], 1)
    consumer = make_consumer(settings, group_id=f"bench-relay-{uuid.uuid4().hex[:8]}")
    producer = make_producer(settings)
    try:
        consumer.subscribe([topic])
        send = producer.send
        done = 0
        started: float | None = None
        cpu_started = 0.0
        deadline = time.monotonic() + timeout
        while done < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"relay processed {done} of {n} events in {timeout:.0f} s")
            batch = consumer.poll(timeout_ms=200)
            if not batch:
                continue
            if started is None:
                started, cpu_started = time.perf_counter(), time.process_time()
            futures = []
            for records in batch.values():
                for record in records:
                    futures.append(send(out_topic, key=record.key, value=record.value))
            producer.flush()
            if any(f.failed() for f in futures):
                raise RuntimeError("relay: produce failed")
            consumer.commit()
            done += len(futures)
        assert started is not None
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        return RunResult("relay", done, seconds, cpu)
    finally:
        consumer.close(autocommit=False)
        producer.close()


# --------------------------------------------------------------------------- simulated reviewer


def _oracle(truth: bytes) -> Callable[[str], bool | None]:
    """The true label of a synthetic event id ``tx-{seed}-{index}``, from labels by index."""

    def label(event_id: str) -> bool | None:
        try:
            return bool(truth[int(event_id.rsplit("-", 1)[1])])
        except (ValueError, IndexError):
            return None

    return label


def reviewer_main() -> None:
    """Entry point of the reviewer process: one JSON line of arguments on stdin, then answer
    review requests at once until stdin closes. (A plain subprocess rather than multiprocessing:
    spawn re-imports the caller's ``__main__``, which breaks scripts without a main guard.)"""
    spec = json.loads(sys.stdin.readline())
    truth = Path(spec["truth_path"]).read_bytes()
    reviewer = SimulatedReviewer(Settings(**spec["settings"]), _oracle(truth), delay=0.0)
    reviewer.start()
    try:
        print("ready", flush=True)
        sys.stdin.read()
    finally:
        reviewer.stop()


_REVIEWER_SETTINGS = set(CONNECTION_SETTINGS) | {
    "session_timeout_ms",
    "heartbeat_interval_ms",
    "topic_reviews",
    "topic_labels",
    "classes",
    "max_message_bytes",
}


@contextlib.contextmanager
def _reviewer_process(settings: Settings, truth_path: str) -> Iterator[None]:
    """The simulated reviewer in its own process, as real reviewers are: off the service's GIL."""
    # Only what the reviewer needs: connection, topics, classes (not every service setting).
    spec = {"settings": settings.model_dump(include=_REVIEWER_SETTINGS), "truth_path": truth_path}
    code = "from streamal.bench import reviewer_main; reviewer_main()"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(json.dumps(spec) + "\n")
            process.stdin.flush()
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(
                    f"the simulated reviewer did not start (status {process.wait()})"
                )
            yield
        finally:
            with contextlib.suppress(OSError):
                process.stdin.close()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --------------------------------------------------------------------------- contender 2: streamal


def run_streamal(
    settings: Settings,
    topic: str,
    n: int,
    truth_path: str,
    timeout: float,
    profiler: cProfile.Profile | None = None,
) -> RunResult:
    """The real service, default loops and metrics, with a reviewer answering its requests."""
    suffix = uuid.uuid4().hex[:6]
    s = settings.model_copy(
        update={
            "topic_transactions": topic,
            "topic_scores": f"{topic}-scores-{suffix}",
            "topic_reviews": f"{topic}-reviews-{suffix}",
            "topic_labels": f"{topic}-labels-{suffix}",
            "topic_dead_letter": f"{topic}-dead-letter-{suffix}",
            "consumer_group": f"bench-streamal-{suffix}",
            "create_topics": True,
        }
    )
    ensure_topics(s, [s.topic_scores, s.topic_reviews, s.topic_labels, s.topic_dead_letter], 1)
    service = Service(s)
    if profiler is not None:
        loop = service._events_loop

        def profiled_events_loop() -> None:
            profiler.enable()
            try:
                loop()
            finally:
                profiler.disable()

        # start() looks the loop up on the instance, so this profiles the events thread only.
        service._events_loop = profiled_events_loop  # type: ignore[method-assign]
    registry = service.metrics.registry
    seen = _Reader(registry, "streamal_event_processing_seconds_count", {})
    scored = _Reader(registry, "streamal_events_total", {"outcome": "scored"})
    rss: list[tuple[int, int]] = []
    with _reviewer_process(s, truth_path):
        service.start()
        try:
            if not service.wait_ready(60):
                raise RuntimeError(f"the service did not become ready: {service.ready()}")
            deadline = time.monotonic() + timeout
            while seen() == 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("streamal scored no event")
                time.sleep(0.001)
            started, cpu_started = time.perf_counter(), time.process_time()
            next_mark = 1
            while (done := int(scored())) < n:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"streamal scored {done} of {n} events in {timeout:.0f} s")
                while next_mark < RSS_POINTS and done >= next_mark * n // RSS_POINTS:
                    rss.append((done, rss_bytes()))
                    next_mark += 1
                time.sleep(0.01)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            rss.append((done, rss_bytes()))
            # Untimed: let the labels still in flight arrive, so every request's label is counted.
            settle = time.monotonic() + 5.0
            while time.monotonic() < settle and _sum_samples(
                registry, "streamal_labels_total"
            ) < _sum_samples(registry, "streamal_label_requests_total"):
                time.sleep(0.05)
        finally:
            service.stop()
    apply = _histogram_buckets(registry, "streamal_label_apply_seconds")
    extra = {
        "rss": rss,
        "label_apply_buckets": apply,
        "labels_learned": service.learner.model.n_learned,
        "label_requests": _sum_samples(registry, "streamal_label_requests_total"),
    }
    return RunResult("streamal", done, seconds, cpu, extra)


# --------------------------------------------------------------------------- report


def _summary(
    settings: Settings, n: int, relay: list[RunResult], streamal: list[RunResult]
) -> dict[str, Any]:
    def rate(runs: list[RunResult]) -> float:
        # Total events over total time: the mean rate that weights every run by its length.
        return sum(r.events for r in runs) / sum(r.seconds for r in runs)

    def cpu(runs: list[RunResult]) -> float:
        return sum(r.cpu_seconds for r in runs) / sum(r.events for r in runs) * 1e6

    def figures(runs: list[RunResult]) -> list[dict[str, float]]:
        return [
            {"events": r.events, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds} for r in runs
        ]

    relay_rate, streamal_rate = rate(relay), rate(streamal)
    buckets: dict[float, float] = {}
    for r in streamal:
        for bound, count in r.extra["label_apply_buckets"]:
            buckets[bound] = buckets.get(bound, 0.0) + count
    merged = sorted(buckets.items())
    rss_runs = [r.extra["rss"] for r in streamal]
    last_rss = rss_runs[-1]
    # The first sample (10 % in) is after warm-up: imports, connections, first batches.
    rss_values = [v for _, v in last_rss]
    return {
        "events": n,
        "model": settings.model,
        "budget": settings.budget,
        "repeats": len(streamal),
        "relay": {
            "events_per_second": relay_rate,
            "cpu_us_per_event": cpu(relay),
            "runs": figures(relay),
        },
        "streamal": {
            "events_per_second": streamal_rate,
            "cpu_us_per_event": cpu(streamal),
            "runs": figures(streamal),
            "label_requests": sum(r.extra["label_requests"] for r in streamal),
            "labels_learned": sum(r.extra["labels_learned"] for r in streamal),
        },
        "ratio": streamal_rate / relay_rate if relay_rate else 0.0,
        # The same comparison in CPU per event: what the ratio tends to on an idle core.
        "cpu_ratio": cpu(relay) / cpu(streamal),
        "target_ratio": TARGET_RATIO,
        "label_apply_seconds": {
            "p50": histogram_quantile(0.5, merged),
            "p99": histogram_quantile(0.99, merged),
            "count": merged[-1][1] if merged else 0.0,
            "method": "interpolated within streamal_label_apply_seconds buckets",
            "target_p99": TARGET_APPLY_P99,
        },
        "rss_bytes": {
            "samples": [{"events_scored": e, "rss": v} for e, v in last_rss],
            "first": rss_values[0],
            "middle": rss_values[len(rss_values) // 2],
            "last": rss_values[-1],
            "drift": rss_values[-1] - rss_values[0],
            "spread": max(rss_values) - min(rss_values),
            "spread_ratio": (max(rss_values) - min(rss_values)) / rss_values[0]
            if rss_values[0]
            else 0.0,
        },
    }


def _mb(value: float) -> str:
    return f"{value / 2**20:.1f} MB"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.2f} ms"


def _print(console: Console, summary: dict[str, Any]) -> None:
    table = Table(
        title=f"streamal bench: {summary['events']:,} events, model {summary['model']}, "
        f"budget {summary['budget']}, {summary['repeats']} pair(s)"
    )
    table.add_column("contender")
    table.add_column("run", justify="right")
    table.add_column("events", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("events/s", justify="right")
    table.add_column("CPU µs/event", justify="right")
    for name in ("relay", "streamal"):
        runs = summary[name]["runs"]
        for i, r in enumerate(runs, 1):
            rate, cpu = r["events"] / r["seconds"], r["cpu_seconds"] / r["events"] * 1e6
            table.add_row(
                name,
                str(i),
                f"{r['events']:,}",
                f"{r['seconds']:.2f}",
                f"{rate:,.0f}",
                f"{cpu:.1f}",
            )
        if len(runs) > 1:
            events = sum(r["events"] for r in runs)
            seconds = sum(r["seconds"] for r in runs)
            rate, cpu = summary[name]["events_per_second"], summary[name]["cpu_us_per_event"]
            table.add_row(
                name, "all", f"{events:,}", f"{seconds:.2f}", f"{rate:,.0f}", f"{cpu:.1f}"
            )
    console.print(table)
    ratio = summary["ratio"]
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    console.print(
        f"streamal/relay = {ratio:.2f} (target >= {TARGET_RATIO}: {verdict}); "
        f"relay {summary['relay']['events_per_second']:,.0f} events/s, "
        f"streamal {summary['streamal']['events_per_second']:,.0f} events/s"
    )
    console.print(
        f"in CPU per event (this process, all threads): relay/streamal = "
        f"{summary['cpu_ratio']:.2f}; to meet the target streamal may spend at most "
        f"{summary['relay']['cpu_us_per_event'] / TARGET_RATIO:.1f} µs/event"
    )
    apply = summary["label_apply_seconds"]
    p99 = apply["p99"]
    verdict = "met" if p99 is not None and p99 <= TARGET_APPLY_P99 else "NOT met"
    console.print(
        f"label apply (label produced -> model updated): p50 {_ms(apply['p50'])}, "
        f"p99 {_ms(p99)} (target <= {_ms(TARGET_APPLY_P99)}: {verdict}) "
        f"over {apply['count']:.0f} labels "
        f"({summary['streamal']['label_requests']:.0f} review requests; "
        "bucket-interpolated from streamal_label_apply_seconds)"
    )
    rss = summary["rss_bytes"]
    samples = ", ".join(_mb(s["rss"]) for s in rss["samples"])
    console.print(
        f"resident memory over the last streamal run: first {_mb(rss['first'])}, "
        f"middle {_mb(rss['middle'])}, last {_mb(rss['last'])}; last-first {_mb(rss['drift'])}, "
        f"max-min {_mb(rss['spread'])} = {rss['spread_ratio']:.1%} of the first sample"
    )
    console.print(f"  samples at each 10 % of the run: {samples}")


def _profile_report(
    console: Console, profiler: cProfile.Profile, result: RunResult, out: str
) -> None:
    profiler.dump_stats(out)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("cumulative").print_stats(25)
    console.print(
        f"[bold]profile[/bold] of the events thread ({result.events:,} events, "
        f"{result.rate:,.0f} events/s under cProfile); stats written to {out}"
    )
    console.print(text.getvalue(), markup=False, highlight=False)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]]
    raw = stats.stats  # type: ignore[attr-defined]
    table = Table(title="events thread: time per event, by stage (cProfile, inflated by it)")
    table.add_column("stage", no_wrap=True)
    table.add_column("calls/event", justify="right")
    table.add_column("µs/ev cum", justify="right")
    table.add_column("µs/ev own", justify="right")
    n = max(result.events, 1)
    for label, path, name in PROFILE_STAGES:
        calls = own = cumulative = 0.0
        for (filename, _, funcname), (_, nc, tt, ct, _) in raw.items():
            if funcname == name and filename.replace(os.sep, "/").endswith(path):
                calls, own, cumulative = calls + nc, own + tt, cumulative + ct
        table.add_row(
            label, f"{calls / n:.3f}", f"{cumulative / n * 1e6:.1f}", f"{own / n * 1e6:.1f}"
        )
    console.print(table)


def stage_costs(settings: Settings, topic: str, n: int = 20_000) -> list[tuple[str, float]]:
    """Per-event cost (µs) of each step of the events loop, each timed alone on this thread.

    Complements the profile, which inflates small functions: these are the steps as the service
    runs them, without a profiler and without the other threads competing for the GIL.
    """
    from streamal.adapters.metrics import Metrics
    from streamal.core.messages import SCHEMA_VERSION, ClassSet, decode_transaction
    from streamal.service import build_learner

    stream = list(drifting_transactions(n, seed=settings.seed + 1))
    raws = [json.dumps(event).encode() for event, _ in stream]
    classes = ClassSet(settings.classes or None)
    learner = build_learner(settings, classes)
    schema, model = learner.schema, learner.model
    for event, fraud in stream[:500]:  # a model that has learned something, as in the run
        model.learn_one(decode_transaction(json.dumps(event), schema).features, fraud)
    names = [(c, ClassSet.name(c)) for c in classes.classes]
    observe = Metrics(classes, settings.label_sources).event_seconds.observe
    perf = time.perf_counter
    costs: list[tuple[str, float]] = []

    def timed(label: str, step: Callable[[], object]) -> Any:
        started = perf()
        result = step()
        costs.append((label, (perf() - started) / n * 1e6))
        return result

    txns = timed(
        "decode (json.loads + validate + features)",
        lambda: [decode_transaction(r, schema, settings.max_message_bytes) for r in raws],
    )
    probas = timed(
        "  model predict_proba_one", lambda: [model.predict_proba_one(t.features) for t in txns]
    )
    timed("  gate decide", lambda: [learner.gate.decide(p) for p in probas])
    scored = timed("score (predict + gate + pending)", lambda: [learner.score(t) for t in txns])

    def encode() -> list[bytes]:
        out = []
        for t, sc in zip(txns, scored, strict=True):
            body = {
                "schema_version": SCHEMA_VERSION,
                "event_id": t.event_id,
                "probabilities": {name: sc.proba[c] for c, name in names},
                "score": sc.risk,
                "label_requested": sc.decision.ask,
                "model_version": sc.model_version,
            }
            out.append(json.dumps(body).encode())
        return out

    values = timed("encode score message (dict + json.dumps)", encode)
    timed("histogram observe (+ 2 perf_counter)", lambda: [observe(perf() - perf()) for _ in txns])
    producer = make_producer(settings)
    try:
        out_topic = f"{topic}-stages-{uuid.uuid4().hex[:6]}"
        ensure_topics(settings, [out_topic], 1)
        send = producer.send

        def produce(items: list[bytes]) -> None:
            for t, value in zip(txns, items, strict=False):
                send(out_topic, key=t.event_id.encode(), value=value)
            producer.flush()

        produce(values[:1000])  # metadata and connection, outside the timing
        timed("producer.send + flush, score message (both contenders)", lambda: produce(values))
        timed("producer.send + flush, raw event (the relay's message)", lambda: produce(raws))
    finally:
        producer.close()
    return costs


def _print_stage_costs(
    console: Console, costs: list[tuple[str, float]], summary: dict[str, Any]
) -> None:
    table = Table(title="events loop steps, each timed alone (µs per event, no profiler)")
    table.add_column("step", no_wrap=True)
    table.add_column("µs/event", justify="right")
    for label, value in costs:
        table.add_row(label, f"{value:.1f}")
    console.print(table)
    own = sum(v for label, v in costs if not label.startswith(("  ", "producer")))
    relay_cpu = summary["relay"]["cpu_us_per_event"]
    console.print(
        f"streamal's own steps (decode + score + encode + observe) cost {own:.1f} µs/event alone; "
        f"the relay spends {relay_cpu:.1f} µs/event of CPU in all, so the 0.8 target leaves "
        f"{relay_cpu / TARGET_RATIO - relay_cpu:.1f} µs/event for everything streamal adds"
    )


# --------------------------------------------------------------------------- entry point


def run(args: argparse.Namespace, settings: Settings) -> int:
    n: int = args.events
    repeats: int = args.repeats
    if n < 1 or repeats < 1:
        print("streamal bench: --events and --repeats must be at least 1")
        return 2
    console = Console(soft_wrap=True)
    timeout = TIMEOUT_BASE + TIMEOUT_PER_1000 * n / 1000
    with _broker(settings) as bootstrap, tempfile.TemporaryDirectory() as tmp:
        s = _bench_settings(settings, bootstrap)
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        ensure_topics(s, [topic], 1)
        console.print(f"producing {n:,} transactions to {topic} on {bootstrap} ...")
        t0 = time.perf_counter()
        truth_path = os.path.join(tmp, "truth.bin")
        Path(truth_path).write_bytes(produce_input(s, topic, n))
        console.print(f"  done in {time.perf_counter() - t0:.1f} s")
        relay: list[RunResult] = []
        streamal: list[RunResult] = []
        for i in range(repeats):
            console.print(f"pair {i + 1}/{repeats}: relay ...")
            relay.append(run_relay(s, topic, n, timeout))
            console.print(f"  relay    {relay[-1].rate:,.0f} events/s; streamal ...")
            streamal.append(run_streamal(s, topic, n, truth_path, timeout))
            console.print(f"  streamal {streamal[-1].rate:,.0f} events/s")
        summary = _summary(s, n, relay, streamal)
        _print(console, summary)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        if args.profile:
            console.print("profiling one more streamal run (not part of the figures above) ...")
            profiler = cProfile.Profile()
            result = run_streamal(s, topic, n, truth_path, timeout * 3, profiler)
            _profile_report(console, profiler, result, args.profile)
            _print_stage_costs(console, stage_costs(s, topic), summary)
    return 0
