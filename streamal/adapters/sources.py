"""Labelled streams for offline evaluation: files and River datasets as ``(event, label)`` pairs.

A :class:`Source` is read lazily, one row at a time (Parquet one record batch at a time), so a
file larger than memory replays in constant memory, and it can be iterated again from the start.
Each pair is a flat event dict, as the service would receive it from Kafka, and ``True`` when
the row belongs to the positive class.

CSV cells become what a JSON producer would have sent: numbers (integers too) are floats, empty
cells are absent, any other text stays a string (the core one-hot encodes it). The target column
and ``drop`` columns never reach the event; the time column is parsed to epoch seconds.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import importlib
import itertools
import math
import re
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from streamal.core.messages import InvalidMessage, parse_time
from streamal.core.synthetic import drifting_transactions

__all__ = [
    "GENERATED_LENGTH",
    "RIVER_DATASETS",
    "Source",
    "SourceError",
    "open_source",
    "parse_cell",
]

#: ``river:NAME`` sources; the names are matched case-insensitively.
RIVER_DATASETS = (
    "Phishing",
    "SEA",
    "Agrawal",
    "Hyperplane",
    "RandomRBFDrift",
    "SEA-drift",
    "Agrawal-drift",
)
#: Events drawn from an endless generator (River synthetic, ``synthetic:transactions``) by default.
GENERATED_LENGTH = 20_000
#: Rows read to guess the positive class.
SAMPLE_ROWS = 1000
#: Target values that name the positive class, compared case-insensitively.
POSITIVE_NAMES = ("1", "true", "yes", "fraud")
#: A target holding only one of these names the other as the positive class.
NEGATIVE_NAMES = {"0": "1", "false": "true", "no": "yes"}
PARQUET_BATCH_ROWS = 4096

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

Pair = tuple[dict[str, Any], bool]


class SourceError(ValueError):
    """The data cannot be read as asked; the message says why and what to do."""


def parse_cell(text: str) -> float | str | None:
    """One CSV cell as a JSON producer would have sent it.

    >>> parse_cell("12"), parse_cell(" -0.5 "), parse_cell("1e3"), parse_cell("")
    (12.0, -0.5, 1000.0, None)
    >>> parse_cell("UP"), parse_cell("nan"), parse_cell("1_000")
    ('UP', 'nan', '1_000')
    """
    stripped = text.strip()
    if not stripped:
        return None
    if _NUMBER.fullmatch(stripped):
        number = float(stripped)
        if math.isfinite(number):
            return number
    return stripped


def _class_key(value: Any) -> str:
    """How target values are compared: case-insensitively, ``1.0`` the same as ``1``.

    >>> _class_key("UP"), _class_key(" 1.0"), _class_key(True), _class_key(0)
    ('up', '1', 'true', '0')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
    return text.casefold()


def _plain(value: Any) -> Any:
    """A Parquet value as a JSON producer would have sent it (``None`` for missing)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime | date):
        return _epoch(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value  # nested values: the core rejects them with a message naming the column


def _epoch(value: date) -> float:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@dataclass(frozen=True, slots=True)
class Source:
    """A labelled stream; iterate it (as often as needed) for ``(event, is_positive)`` pairs.

    Attributes
    ----------
    name
        What was asked for: a path, ``river:NAME`` or ``synthetic:transactions``.
    columns
        The event fields before ``drop`` (the target is not among them).
    positive
        The positive class as written in the data.
    """

    name: str
    columns: tuple[str, ...]
    positive: str
    read: Callable[[], Generator[Pair]] = field(repr=False)
    target: str | None = None
    time_column: str | None = None
    drop: frozenset[str] = frozenset()
    limit: int | None = None

    def __iter__(self) -> Iterator[Pair]:
        drop, time_column = self.drop, self.time_column
        with contextlib.closing(self.read()) as rows:
            for n, (event, label) in enumerate(itertools.islice(rows, self.limit), start=1):
                for column in drop:
                    event.pop(column, None)
                if time_column is not None:
                    event[time_column] = self._time(event.get(time_column), n)
                yield event, label

    def _time(self, value: Any, n: int) -> float | None:
        if value is None:
            # Without its time an event's label would come --label-delay *events* later and
            # a fraud would get no chargeback: the run would leave stream time unnoticed.
            raise SourceError(
                f"{self.name}: row {n}: time column {self.time_column!r} is empty "
                "(every event needs its time)"
            )
        if isinstance(value, datetime | date):
            return _epoch(value)
        try:
            return parse_time(value)
        except InvalidMessage as exc:
            raise SourceError(
                f"{self.name}: row {n}: time column {self.time_column!r}: {exc.detail} "
                "(expected ISO-8601 or epoch seconds)"
            ) from None


def open_source(
    data: str,
    *,
    target: str | None = None,
    positive: str | None = None,
    drop: Sequence[str] = (),
    time_column: str | None = None,
    limit: int | None = None,
    seed: int = 42,
    fraud_rate: float = 0.02,
) -> Source:
    """Open ``data`` and check what was asked of it, before any event is read.

    ``data`` is a ``.csv``, ``.csv.gz`` or ``.parquet`` path (``target`` required), ``river:NAME``
    (one of :data:`RIVER_DATASETS`) or ``synthetic:transactions``. Raises :class:`SourceError`
    with a message for the user when something does not fit.

    >>> source = open_source("synthetic:transactions", limit=3, drop=["category"])
    >>> [sorted(event) for event, _ in source][0]
    ['amount', 'card_age_days', 'distance_km', 'event_id', 'hour', 'online', 'timestamp', \
'tx_last_hour']
    """
    kind, _, name = data.partition(":")
    if kind in ("river", "synthetic") and name:
        if target is not None or positive is not None:
            raise SourceError(f"{data} has its own labels: --target and --positive are for files")
        if kind == "river":
            source = _river(data, name, limit, seed)
        elif name.casefold() == "transactions":
            n = limit or GENERATED_LENGTH
            made = _generated(data, lambda: drifting_transactions(n, fraud_rate, seed=seed))
            # Its length is the limit, as for River's generators (the JSON's config says so).
            source = Source(made.name, made.columns, made.positive, made.read, limit=n)
        else:
            raise SourceError(
                f"unknown source {data!r}; the synthetic one is synthetic:transactions"
            )
    else:
        source = _file(data, target, positive)
    columns = set(source.columns)
    unknown = [c for c in drop if c not in columns and c != target]
    if unknown:
        raise SourceError(
            f"--drop: no column {_names(unknown)} in {data} (columns: {_names(source.columns)})"
        )
    if time_column is not None:
        if time_column == target:
            raise SourceError("the time column cannot be the target")
        if time_column not in columns:
            raise SourceError(f"--time-column: no column {time_column!r} in {data}")
    return Source(
        source.name,
        source.columns,
        source.positive,
        source.read,
        target,
        time_column,
        # The time column is never a feature; dropping it too would take the events' times.
        frozenset(drop) - {time_column},
        limit if limit is not None else source.limit,
    )


def _names(names: Iterable[str], most: int = 20) -> str:
    """Names for a message: in their order (sets sorted), at most ``most`` of them."""
    items = sorted(names) if isinstance(names, set | frozenset) else list(names)
    shown = ", ".join(repr(n) for n in items[:most])
    return shown + (f", ... ({len(items)} in all)" if len(items) > most else "")


# ---------------------------------------------------------------------------------- generators


def _generated(name: str, make: Callable[[], Iterable[tuple[dict[Any, Any], Any]]]) -> Source:
    """A source over a generator of ``(x, y)``: integer feature names become ``x0``, ``x1``..."""

    def read() -> Generator[Pair]:
        for x, y in make():
            event = {(f"x{k}" if isinstance(k, int) else str(k)): v for k, v in x.items()}
            yield event, y is True or (isinstance(y, int) and y == 1)

    with contextlib.closing(read()) as pairs:
        first = next(pairs, None)
    if first is None:
        raise SourceError(f"{name} is empty")
    return Source(name, tuple(first[0]), "true", read)


def _river(data: str, name: str, limit: int | None, seed: int) -> Source:
    try:
        from river import datasets
        from river.datasets import synth
    except ImportError:  # pragma: no cover - river is a dependency
        raise SourceError("river datasets need river: pip install river") from None
    key = name.casefold()
    n = limit or GENERATED_LENGTH
    # Drifting variants: the concept changes at the middle, over 1 % of the stream (a narrower
    # ConceptDriftStream overflows River's sigmoid far from the drift point).
    width = max(1, n // 100)
    make: Callable[[], Iterable[tuple[dict[Any, Any], Any]]]
    if key == "phishing":
        return _generated(data, datasets.Phishing)
    if key == "sea":
        make = lambda: synth.SEA(variant=0, seed=seed)  # noqa: E731
    elif key == "agrawal":
        make = lambda: synth.Agrawal(classification_function=0, seed=seed)  # noqa: E731
    elif key == "hyperplane":
        make = lambda: synth.Hyperplane(seed=seed, mag_change=0.001)  # noqa: E731
    elif key == "randomrbfdrift":
        make = lambda: synth.RandomRBFDrift(  # noqa: E731
            seed_model=seed, seed_sample=seed, change_speed=0.001
        )
    elif key == "sea-drift":
        make = lambda: synth.ConceptDriftStream(  # noqa: E731
            synth.SEA(variant=0, seed=seed),
            synth.SEA(variant=2, seed=seed),
            seed=seed,
            position=n // 2,
            width=width,
        )
    elif key == "agrawal-drift":
        make = lambda: synth.ConceptDriftStream(  # noqa: E731
            synth.Agrawal(classification_function=0, seed=seed),
            synth.Agrawal(classification_function=2, seed=seed),
            seed=seed,
            position=n // 2,
            width=width,
        )
    else:
        raise SourceError(f"unknown River dataset {name!r}; choose one of {list(RIVER_DATASETS)}")
    source = _generated(data, make)
    # Generators never end: without --limit, take the default length.
    return Source(source.name, source.columns, source.positive, source.read, limit=n)


# ---------------------------------------------------------------------------------- files


def _file(data: str, target: str | None, positive: str | None) -> Source:
    path = Path(data)
    lower = path.name.lower()
    if lower.endswith((".csv", ".csv.gz")):
        header, rows = _csv_header(path), _csv_rows
    elif lower.endswith(".parquet"):
        header, rows = _parquet_header(path), _parquet_rows
    else:
        raise SourceError(
            f"{data}: unsupported data; give a .csv, .csv.gz or .parquet file, "
            f"river:NAME ({', '.join(RIVER_DATASETS)}) or synthetic:transactions"
        )
    if target is None:
        raise SourceError(f"--target COLUMN is required for files (columns: {_names(header)})")
    if target not in header:
        raise SourceError(f"no target column {target!r} in {data} (columns: {_names(header)})")

    def targets() -> Generator[Any]:
        for row in rows(path, [target], target):
            value = row.get(target)
            if value is not None and str(value).strip():
                yield value

    chosen = _positive_class(data, target, positive, targets)
    wanted = _class_key(chosen)

    def read() -> Generator[Pair]:
        for n, row in enumerate(rows(path, None, target), start=1):
            label = row.pop(target, None)
            if label is None or not str(label).strip():
                raise SourceError(f"{data}: row {n}: the target {target!r} is empty")
            yield {k: v for k, v in row.items() if v is not None}, _class_key(label) == wanted

    columns = tuple(c for c in header if c != target)
    return Source(data, columns, chosen, read, target)


def _positive_class(
    data: str, target: str, positive: str | None, targets: Callable[[], Generator[Any]]
) -> str:
    """``positive`` if the target holds it, else the value that names the positive class."""
    seen: dict[str, str] = {}
    with contextlib.closing(targets()) as values:
        for value in itertools.islice(values, SAMPLE_ROWS):
            seen.setdefault(_class_key(value), str(value).strip())
    if not seen:  # neither --positive nor anything else could help: say what is wrong
        raise SourceError(f"{data}: no rows with a value in the target column {target!r}")
    if positive is not None:
        if _class_key(positive) in seen:
            return positive
        key = _class_key(positive)
        with contextlib.closing(targets()) as values:  # a rare class: look through the file
            if any(_class_key(v) == key for v in values):
                return positive
        raise SourceError(
            f"--positive {positive!r} never occurs in column {target!r} of {data} "
            f"(values in the first {SAMPLE_ROWS} rows: {_names(set(seen.values()))})"
        )
    for name in POSITIVE_NAMES:
        if name in seen:
            return seen[name]
    if len(seen) == 1 and next(iter(seen)) in NEGATIVE_NAMES:
        return NEGATIVE_NAMES[next(iter(seen))]  # only negatives so far: a rare positive class
    raise SourceError(
        f"cannot tell the positive class of {target!r} from its values "
        f"({_names(set(seen.values()))}); pass --positive VALUE"
    )


def _open_text(path: Path) -> Any:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error)


def _csv_header(path: Path) -> list[str]:
    try:
        with _open_text(path) as f:
            header = next(csv.reader(f), None)
    except _READ_ERRORS as exc:
        raise SourceError(f"{path}: cannot read: {exc}") from None
    if not header:
        raise SourceError(f"{path}: empty file, no header row")
    return _unique([h.strip() for h in header], path)


def _unique(header: list[str], path: Path) -> list[str]:
    """``header``, unless a name repeats: rows become dicts, so one of the columns would be lost."""
    duplicates = {h for h in header if header.count(h) > 1}
    if duplicates:
        raise SourceError(f"{path}: repeated column names {_names(duplicates)}")
    return header


def _csv_rows(path: Path, columns: list[str] | None, raw: str) -> Iterator[dict[str, Any]]:
    """Rows as dicts of parsed cells, the ``raw`` column as written; only ``columns`` if given."""
    line = 0
    try:
        with _open_text(path) as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            line = reader.line_num
            keep = [i for i, h in enumerate(header) if columns is None or h in columns]
            width = len(header)
            for fields in reader:
                line = reader.line_num
                if not fields:
                    continue
                if len(fields) != width:
                    raise SourceError(
                        f"{path}, line {line}: {len(fields)} fields, the header has {width}"
                    )
                row = {header[i]: parse_cell(fields[i]) for i in keep}
                if raw in row:
                    row[raw] = fields[header.index(raw)].strip()
                yield row
    except _READ_ERRORS as exc:
        raise SourceError(f"{path}: cannot read after line {line}: {exc}") from None


def _parquet() -> Any:
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise SourceError("reading Parquet needs pyarrow: pip install pyarrow") from None


def _parquet_errors() -> tuple[type[BaseException], ...]:
    arrow_error = importlib.import_module("pyarrow").ArrowException
    return (OSError, arrow_error)


def _parquet_header(path: Path) -> list[str]:
    pq = _parquet()
    try:
        with pq.ParquetFile(path) as f:
            names = list(f.schema_arrow.names)
    except _parquet_errors() as exc:
        raise SourceError(f"{path}: cannot read as Parquet: {exc}") from None
    return _unique(names, path)


def _parquet_rows(path: Path, columns: list[str] | None, raw: str) -> Iterator[dict[str, Any]]:
    """Rows as dicts of plain values, the ``raw`` column as stored; only ``columns`` if given."""
    pq = _parquet()
    try:
        with pq.ParquetFile(path) as f:
            for batch in f.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
                for row in batch.to_pylist():
                    yield {k: (v if k == raw else _plain(v)) for k, v in row.items()}
    except _parquet_errors() as exc:
        raise SourceError(f"{path}: cannot read as Parquet: {exc}") from None
