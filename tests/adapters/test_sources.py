"""Labelled sources: CSV parsing rules, the target and the positive class, files read lazily."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import pytest

from streamal.adapters.sources import SourceError, open_source, parse_cell

CSV = """\
event_id,amount,mcc,note,when,day,label
e1,12,5411,,2024-01-01T00:00:00Z,1,no
e2,3.50,  grocery ,hello,2024-01-01T01:00:00+00:00,2,YES
e3,-1e2,5411,nan,1704074400,3,no
"""


def write(path: Path, text: str) -> Path:
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", newline="") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def rows(source: Any) -> list[tuple[dict[str, Any], bool]]:
    return list(source)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12.0),
        ("007", 7.0),
        (" -0.5 ", -0.5),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("", None),
        ("   ", None),
        ("UP", "UP"),
        (" grocery ", "grocery"),
        ("nan", "nan"),
        ("inf", "inf"),
        ("1e999", "1e999"),
        ("1_000", "1_000"),
        ("5411a", "5411a"),
    ],
)
def test_parse_cell(text: str, expected: object) -> None:
    value = parse_cell(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz"])
def test_csv_rows_become_events_like_json_would(tmp_path: Path, name: str) -> None:
    source = open_source(str(write(tmp_path / name, CSV)), target="label")
    assert source.positive == "YES"  # auto-detected, case-insensitively
    assert source.columns == ("event_id", "amount", "mcc", "note", "when", "day")
    events = rows(source)
    assert [label for _, label in events] == [False, True, False]
    first, second, third = (event for event, _ in events)
    assert first == {
        "event_id": "e1",
        "amount": 12.0,
        "mcc": 5411.0,
        "when": "2024-01-01T00:00:00Z",
        "day": 1.0,
    }
    assert "note" not in first  # empty: absent
    assert "label" not in first  # the target is never a feature
    assert second["mcc"] == "grocery" and second["note"] == "hello"
    assert third["amount"] == -100.0 and third["note"] == "nan"


def test_drop_and_time_column(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", CSV)
    source = open_source(str(path), target="label", drop=["note", "day"], time_column="when")
    events = [event for event, _ in source]
    assert all("note" not in e and "day" not in e for e in events)
    assert [e["when"] for e in events] == [1704067200.0, 1704070800.0, 1704074400.0]


def test_a_source_reads_again_from_the_start_and_honours_the_limit(tmp_path: Path) -> None:
    source = open_source(str(write(tmp_path / "d.csv", CSV)), target="label", limit=2)
    assert rows(source) == rows(source)
    assert len(rows(source)) == 2


def test_files_are_read_lazily(tmp_path: Path) -> None:
    # A broken last line is only found when it is reached: rows are read one at a time.
    body = "a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(5000)) + "1,2,3\n"
    source = open_source(str(write(tmp_path / "big.csv", body)), target="y")
    assert len(list(itertools.islice(source, 10))) == 10
    with pytest.raises(SourceError, match="line 5002: 3 fields, the header has 2"):
        rows(source)


def test_the_positive_class(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n1,UP\n2,DOWN\n3,up\n")
    with pytest.raises(SourceError, match="cannot tell the positive class of 'y'.*--positive"):
        open_source(str(path), target="y")
    source = open_source(str(path), target="y", positive="up")
    assert [label for _, label in source] == [True, False, True]
    with pytest.raises(SourceError, match="--positive 'SIDEWAYS' never occurs in column 'y'"):
        open_source(str(path), target="y", positive="SIDEWAYS")


def test_a_rare_positive_class_is_found_past_the_sample(tmp_path: Path) -> None:
    body = "x,fraud\n" + "1,0\n" * 1500 + "2,1.0\n"
    path = write(tmp_path / "rare.csv", body)
    assert open_source(str(path), target="fraud").positive == "1"  # "0" only: the other is "1"
    source = open_source(str(path), target="fraud", positive="1")
    assert sum(label for _, label in source) == 1  # "1.0" is the class "1"


@pytest.mark.parametrize("positive", [None, "1"])
def test_a_file_without_rows_says_so(tmp_path: Path, positive: str | None) -> None:
    # It used to ask for --positive, which then "never occurs in column 'y'".
    for text in ("x,y\n", "x,y\n\n\n", "x,y\n1,\n"):
        with pytest.raises(SourceError, match="no rows with a value in the target column 'y'"):
            open_source(str(write(tmp_path / "d.csv", text)), target="y", positive=positive)


def test_an_empty_target_is_an_error(tmp_path: Path) -> None:
    source = open_source(str(write(tmp_path / "d.csv", "x,y\n1,1\n2,\n")), target="y")
    with pytest.raises(SourceError, match="row 2: the target 'y' is empty"):
        rows(source)


def test_a_bad_time_is_an_error_naming_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "t,y\n2024-01-01,1\nyesterday,0\n")
    source = open_source(str(path), target="y", time_column="t")
    with pytest.raises(SourceError, match="row 2: time column 't'"):
        rows(source)


def test_a_missing_time_is_an_error_naming_the_row(tmp_path: Path) -> None:
    # Without its time an event would get its label after --label-delay *events* and no
    # chargeback: the run would silently leave stream time.
    path = write(tmp_path / "d.csv", "t,y\n2024-01-01,1\n,0\n2024-01-02,0\n")
    source = open_source(str(path), target="y", time_column="t")
    with pytest.raises(SourceError, match="row 2: time column 't' is empty"):
        rows(source)


def test_the_time_column_stays_the_time_when_also_dropped(tmp_path: Path) -> None:
    # It is never a feature anyway; dropping it took the events' times away.
    path = write(tmp_path / "d.csv", CSV)
    source = open_source(str(path), target="label", time_column="when", drop=["when", "note"])
    assert [event["when"] for event, _ in source] == [1704067200.0, 1704070800.0, 1704074400.0]
    assert all("note" not in event for event, _ in source)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "--target COLUMN is required"),
        ({"target": "nope"}, "no target column 'nope' in .* \\(columns: 'event_id'"),
        ({"target": "label", "drop": ["nope"]}, "--drop: no column 'nope'"),
        ({"target": "label", "time_column": "nope"}, "--time-column: no column 'nope'"),
        ({"target": "label", "time_column": "label"}, "the time column cannot be the target"),
    ],
)
def test_usage_errors(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    path = write(tmp_path / "d.csv", CSV)
    with pytest.raises(SourceError, match=message):
        open_source(str(path), **kwargs)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unsupported data"):
        open_source(str(tmp_path / "d.json"), target="y")
    with pytest.raises(SourceError, match="cannot read"):
        open_source(str(tmp_path / "missing.csv"), target="y")
    with pytest.raises(SourceError, match="empty file"):
        open_source(str(write(tmp_path / "empty.csv", "")), target="y")
    with pytest.raises(SourceError, match="repeated column names 'a'"):
        open_source(str(write(tmp_path / "dup.csv", "a,a,y\n1,2,3\n")), target="y")
    (tmp_path / "notgz.csv.gz").write_text("a,y\n1,1\n")
    with pytest.raises(SourceError, match="cannot read"):
        open_source(str(tmp_path / "notgz.csv.gz"), target="y")


def test_an_unreadable_row_is_placed_after_the_last_good_line(tmp_path: Path) -> None:
    # A cell beyond the csv module's field limit on line 3: "after line 0" it said when it
    # came right after the header.
    for good, expected in ((0, "after line 1:"), (1, "after line 2:")):
        text = "a,y\n" + "1,1\n" * good + "x" * 200_000 + ",1\n"
        with pytest.raises(SourceError, match=expected):
            rows(open_source(str(write(tmp_path / "big.csv", text)), target="y"))


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    csv_source = open_source(str(write(tmp_path / "d.csv", CSV)), target="label")
    columns: dict[str, list[Any]] = {c: [] for c in (*csv_source.columns, "label")}
    for event, label in csv_source:
        for c in csv_source.columns:
            columns[c].append(event.get(c))
        columns["label"].append("YES" if label else "no")
    for mixed in ("mcc", "when"):  # a column of numbers and text is text in Parquet
        columns[mixed] = [str(v) for v in columns[mixed]]
    pq.write_table(pa.table(columns), tmp_path / "d.parquet")
    source = open_source(str(tmp_path / "d.parquet"), target="label")
    assert source.positive == "YES"
    events = rows(source)
    assert [label for _, label in events] == [False, True, False]
    assert events[1][0] == {
        "event_id": "e2",
        "amount": 3.5,
        "mcc": "grocery",
        "note": "hello",
        "when": "2024-01-01T01:00:00+00:00",
        "day": 2.0,
    }
    with pytest.raises(SourceError, match="cannot read as Parquet"):
        open_source(str(write(tmp_path / "bad.parquet", "not parquet")), target="y")


def test_parquet_timestamps_and_missing_values(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    from datetime import UTC, datetime

    table = pa.table(
        {
            "t": [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 1)],
            "x": [1.5, float("nan")],
            "n": [3, None],
            "y": [True, False],
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    source = open_source(str(tmp_path / "t.parquet"), target="y", time_column="t")
    assert rows(source) == [
        ({"t": 1704067200.0, "x": 1.5, "n": 3.0}, True),
        ({"t": 1704070800.0}, False),
    ]


def test_repeated_parquet_column_names_are_an_error_as_in_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.Table.from_arrays(
        [pa.array([1, 2]), pa.array([3, 4]), pa.array([1, 0])], ["a", "a", "y"]
    )
    pq.write_table(table, tmp_path / "dup.parquet")
    # Rows are dicts: one of the two columns was silently lost.
    with pytest.raises(SourceError, match="repeated column names 'a'"):
        open_source(str(tmp_path / "dup.parquet"), target="y")


def test_river_datasets() -> None:
    phishing = open_source("river:phishing")
    assert phishing.positive == "true" and phishing.limit is None
    events = rows(phishing)
    assert len(events) == 1250
    assert 0.3 < sum(label for _, label in events) / len(events) < 0.6
    sea = open_source("river:SEA", limit=50, seed=3)
    assert sea.columns == ("x0", "x1", "x2")
    assert rows(sea) == rows(open_source("river:SEA", limit=50, seed=3))
    assert rows(sea) != rows(open_source("river:SEA", limit=50, seed=4))
    assert open_source("river:Agrawal").limit == 20_000  # endless generators get a length
    assert open_source("synthetic:transactions").limit == 20_000  # as the demo's stream
    drift = rows(open_source("river:Agrawal-drift", limit=400, seed=1))
    assert len(drift) == 400 and all(isinstance(label, bool) for _, label in drift)


def test_generated_sources_reject_file_options() -> None:
    with pytest.raises(SourceError, match="unknown River dataset 'Nope'"):
        open_source("river:Nope")
    with pytest.raises(SourceError, match="has its own labels"):
        open_source("river:SEA", target="y")
    with pytest.raises(SourceError, match="synthetic:transactions"):
        open_source("synthetic:nope")
    source = open_source(
        "synthetic:transactions", limit=200, fraud_rate=0.2, time_column="timestamp"
    )
    events = rows(source)
    assert len(events) == 200 and 10 < sum(label for _, label in events) < 80
    assert all(isinstance(e["timestamp"], float) for e, _ in events)
