"""``streamal simulate``: card transactions with fraud scenarios, to Kafka or to a file.

The stream is :mod:`streamal.core.simulator`'s (the handbook's customers, terminals and three
fraud scenarios), seeded by ``--seed``. To Kafka it sends the events only, keyed by customer so a
card's transactions stay in order on one partition, at ``--rate`` events a second: the service
must learn the truth from reviewers, never from the feed. A file is for offline evaluation, so it
also holds the truth (``fraud`` 0/1 and ``scenario`` 0-3): CSV, CSV.gz or JSON lines, chosen by
the extension; ``--handbook-columns`` names the columns as the handbook's published dataset does.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

from kafka.errors import KafkaError

from streamal.argtypes import non_negative, positive_int
from streamal.config import Settings
from streamal.core.messages import encode
from streamal.core.simulator import SimulatorConfig, Truth, simulate

__all__ = ["configure", "file_rows", "run"]

log = logging.getLogger("streamal.simulate")

_DEFAULTS = SimulatorConfig()
#: Extensions of the files ``--out`` writes.
_CSV = (".csv", ".csv.gz")
_JSONL = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz")
#: File columns: streamal's names and the handbook dataset's.
COLUMNS = ("event_id", "timestamp", "customer_id", "terminal_id", "amount", "fraud", "scenario")
HANDBOOK_COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be a date, YYYY-MM-DD") from exc


def _out(text: str) -> Path:
    if not text.lower().endswith(_CSV + _JSONL):
        raise argparse.ArgumentTypeError("give a .csv, .csv.gz, .jsonl or .jsonl.gz file")
    return Path(text)


def configure(parser: argparse.ArgumentParser) -> None:
    """Simulation options; ``--seed`` and the Kafka settings come from the service settings."""
    group = parser.add_argument_group("simulate")
    group.add_argument(
        "--days", type=positive_int, default=_DEFAULTS.days, help="Days to simulate [183]."
    )
    group.add_argument(
        "--customers",
        type=positive_int,
        default=_DEFAULTS.n_customers,
        help="Customers (cards) [5000]; compromises per day scale with the population, so "
        "the fraud rates stay the handbook's.",
    )
    group.add_argument(
        "--terminals", type=positive_int, default=_DEFAULTS.n_terminals, help="Terminals [10000]."
    )
    group.add_argument(
        "--start",
        type=_date,
        default=_DEFAULTS.start_date,
        metavar="YYYY-MM-DD",
        help="First simulated day, UTC [2018-04-01].",
    )
    group.add_argument(
        "--limit", type=positive_int, help="Stop after this many transactions [all days]."
    )
    group.add_argument(
        "--out",
        type=_out,
        metavar="FILE",
        help="Write to this .csv, .csv.gz or .jsonl(.gz) file, with the truth columns, instead "
        "of producing to Kafka (--bootstrap-servers, --topic-transactions).",
    )
    group.add_argument(
        "--handbook-columns",
        action="store_true",
        help="In the file, name the columns as the handbook's dataset does (TRANSACTION_ID, "
        "TX_DATETIME, ..., TX_FRAUD, TX_FRAUD_SCENARIO).",
    )
    group.add_argument(
        "--rate",
        type=non_negative,
        help="Events per second to Kafka; 0 = as fast as possible [0].",
    )


def simulator_config(args: argparse.Namespace, settings: Settings) -> SimulatorConfig:
    """The simulator's configuration from the options and ``settings.seed``."""
    return SimulatorConfig.scaled(
        args.customers,
        args.terminals,
        days=args.days,
        start_date=args.start,
        seed=settings.seed,
    )


def file_rows(
    pairs: Iterable[tuple[dict[str, Any], Truth]], config: SimulatorConfig, handbook: bool = False
) -> Iterator[tuple[Any, ...]]:
    """Rows of the output file, in :data:`COLUMNS` (or :data:`HANDBOOK_COLUMNS`) order.

    >>> from itertools import islice
    >>> config = SimulatorConfig(n_customers=20, n_terminals=50)
    >>> row = next(file_rows(simulate(config), config, handbook=True))
    >>> row[0], row[1][:11], row[6], row[8] in (0, 1, 2, 3)
    (0, '2018-04-01 ', 0, True)
    """
    start = config.start_epoch
    for n, (event, truth) in enumerate(pairs):
        fraud = int(truth.fraud)
        if not handbook:
            yield (
                event["event_id"],
                event["timestamp"],
                event["customer_id"],
                event["terminal_id"],
                event["amount"],
                fraud,
                truth.scenario,
            )
            continue
        ts = event["timestamp"]
        seconds = int(ts - start)
        when = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        yield (
            n,
            when,
            event["customer_id"],
            event["terminal_id"],
            event["amount"],
            seconds,
            seconds // 86_400,
            fraud,
            truth.scenario,
        )


def _open(path: Path) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "wt", encoding="utf-8", newline="", compresslevel=6)
    return path.open("w", encoding="utf-8", newline="")


def write_file(
    path: Path,
    pairs: Iterable[tuple[dict[str, Any], Truth]],
    config: SimulatorConfig,
    handbook: bool = False,
) -> int:
    """Write the stream with its truth; returns the number of transactions written."""
    header = HANDBOOK_COLUMNS if handbook else COLUMNS
    rows = file_rows(pairs, config, handbook)
    n = 0
    with _open(path) as f:
        if path.name.lower().endswith(_CSV):
            writer = csv.writer(f)
            writer.writerow(header)
            for row in rows:
                writer.writerow(row)
                n += 1
        else:
            for row in rows:
                f.write(encode(dict(zip(header, row, strict=True))).decode())
                f.write("\n")
                n += 1
    return n


def produce(
    settings: Settings,
    pairs: Iterable[tuple[dict[str, Any], Truth]],
    rate: float,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[int, int]:
    """Send the events (never the truth) to ``settings.topic_transactions`` at ``rate`` a
    second; returns ``(sent, failed)`` once the broker has acknowledged or refused them all."""
    from streamal.adapters.kafka import ensure_topics, make_producer

    if settings.create_topics:
        ensure_topics(settings, [settings.topic_transactions], settings.topic_partitions)
    failures: list[BaseException] = []
    producer = make_producer(settings)
    sent = 0
    try:
        started = clock()
        for event, _truth in pairs:
            if rate > 0:
                ahead = started + sent / rate - clock()
                if ahead > 0:
                    time.sleep(ahead)
            future = producer.send(
                settings.topic_transactions,
                key=str(event["customer_id"]).encode(),
                value=encode(event),
            )
            future.add_errback(failures.append)
            sent += 1
        producer.flush()
    finally:
        producer.close(timeout=10)
    return sent, len(failures)


def _error(message: str, code: int = 1) -> int:
    print(f"streamal simulate: error: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the stream and write it to the file or the topic; prints a one-line summary."""
    # Each belongs to one of the two outputs: refused with the other, not ignored.
    if args.out is None and args.handbook_columns:
        return _error("--handbook-columns names the columns of a file: it needs --out", 2)
    if args.out is not None and args.rate is not None:
        return _error("--rate paces the events sent to Kafka: a file is written at once", 2)
    try:  # times past 9999-12-31 are no times (the handbook columns' dates cannot be written)
        args.start + dt.timedelta(days=args.days - 1)
    except OverflowError:
        return _error(f"--start {args.start} with --days {args.days} ends after 9999-12-31", 2)
    try:
        config = simulator_config(args, settings)
    except ValueError as exc:
        return _error(str(exc), 2)
    tally: Counter[int] = Counter()

    def counted() -> Iterator[tuple[dict[str, Any], Truth]]:
        for pair in islice(simulate(config), args.limit):
            tally[pair[1].scenario] += 1
            yield pair

    started = time.perf_counter()
    failed = 0
    try:
        if args.out is not None:
            n = write_file(args.out, counted(), config, args.handbook_columns)
            where = str(args.out)
        else:
            n, failed = produce(settings, counted(), args.rate or 0.0)
            where = f"topic {settings.topic_transactions!r}"
    except OSError as exc:
        return _error(f"cannot write the output: {exc}")
    except KafkaError as exc:  # an unreachable broker, a refused topic, bad credentials...
        return _error(f"Kafka at {settings.bootstrap_servers or '127.0.0.1:9092'}: {exc}")
    except KeyboardInterrupt:
        print("interrupted")
        return 130
    elapsed = time.perf_counter() - started
    frauds = n - tally[0]
    mix = ", ".join(f"{s}: {tally[s]}" for s in (1, 2, 3))
    print(
        f"{n} transactions to {where} in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f}/s); "
        f"{frauds} fraud ({frauds / max(n, 1):.3%}; by scenario {mix})"
        + (f"; {failed} FAILED" if failed else "")
    )
    return 1 if failed else 0
