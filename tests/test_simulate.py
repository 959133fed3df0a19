"""``streamal simulate``: files with the truth for evaluation, Kafka without it."""

from __future__ import annotations

import csv
import gzip
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from streamal.adapters.kafka import make_consumer
from streamal.cli import main
from streamal.config import Settings
from streamal.core.simulator import SimulatorConfig, simulate
from streamal.simulate import COLUMNS, HANDBOOK_COLUMNS

SMALL = ["--days", "3", "--customers", "200", "--terminals", "400", "--seed", "7"]


def test_writes_a_csv_gz_with_the_truth_that_reads_back_as_the_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tx.csv.gz"
    assert main(["simulate", *SMALL, "--out", str(out)]) == 0
    with gzip.open(out, "rt", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS
    expected = list(simulate(SimulatorConfig.scaled(200, 400, days=3, seed=7)))
    assert len(rows) - 1 == len(expected) > 500
    for row, (event, truth) in zip(rows[1:], expected, strict=True):
        assert row[0] == event["event_id"]
        assert float(row[1]) == event["timestamp"]
        assert (int(row[2]), int(row[3])) == (event["customer_id"], event["terminal_id"])
        assert float(row[4]) == event["amount"]
        assert (row[5], row[6]) == (str(int(truth.fraud)), str(truth.scenario))
    assert f"{len(expected)} transactions to {out}" in capsys.readouterr().out


def test_handbook_columns_in_json_lines_and_a_limit(tmp_path: Path) -> None:
    out = tmp_path / "new" / "tx.jsonl"  # a folder that does not exist yet, as evaluate's --json
    assert main(["simulate", *SMALL, "--limit", "50", "--handbook-columns", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 50
    assert tuple(lines[0]) == HANDBOOK_COLUMNS
    assert [row["TRANSACTION_ID"] for row in lines] == list(range(50))
    assert lines[0]["TX_DATETIME"].startswith("2018-04-01 ")
    assert all(row["TX_TIME_DAYS"] == row["TX_TIME_SECONDS"] // 86_400 == 0 for row in lines)


def test_an_unknown_file_type_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", *SMALL, "--out", str(tmp_path / "tx.parquet")])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handbook-columns"], "--handbook-columns .* needs --out"),
        (["--rate", "100", "--out", "tx.csv"], "--rate paces the events sent to Kafka"),
    ],
)
def test_an_option_of_the_other_output_is_refused_not_ignored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    # Nothing listens here: the command must stop before it tries to produce.
    argv = ["simulate", *SMALL, "--bootstrap-servers", "127.0.0.1:1", "--no-create-topics"]
    assert main([*argv, *args]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "tx.csv").exists()


@pytest.mark.parametrize("handbook", [[], ["--handbook-columns"]])
def test_days_past_the_year_9999_are_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], handbook: list[str]
) -> None:
    # They ended in a ValueError traceback (handbook dates), or wrote times no reader takes.
    out = tmp_path / "tx.csv"
    argv = ["simulate", "--customers", "50", "--terminals", "100", "--out", str(out)]
    assert main([*argv, "--start", "9999-12-30", "--days", "5", *handbook]) == 2
    assert "ends after 9999-12-31" in capsys.readouterr().err
    assert not out.exists()
    assert main([*argv, "--start", "9999-12-30", "--days", "2", *handbook]) == 0


def test_an_unwritable_file_is_an_error_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    assert main(["simulate", *SMALL, "--out", str(tmp_path / "file" / "tx.csv")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("streamal simulate: error: cannot write the output")


def test_a_broker_that_does_not_answer_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # What kafka-python raises after 30 s when nothing listens at the address (a real
    # unreachable broker takes that long; the handling is what is tested here).
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")

    monkeypatch.setattr("streamal.adapters.kafka.ensure_topics", unreachable)
    assert main(["simulate", *SMALL, "--bootstrap-servers", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "127.0.0.1:1" in err and "Unable to bootstrap" in err and "Traceback" not in err


@pytest.mark.kafka
def test_produces_events_without_the_truth_keyed_by_card(kafka_bootstrap: str, topics: Any) -> None:
    args = ["--bootstrap-servers", kafka_bootstrap, "--topic-transactions", topics.transactions]
    assert main(["simulate", *SMALL, "--limit", "200", "--rate", "2000", *args]) == 0
    settings = Settings(
        bootstrap_servers=kafka_bootstrap,
        topic_transactions=topics.transactions,
        consumer_group="g-" + uuid.uuid4().hex,
    )
    consumer = make_consumer(settings, group_id=None)
    try:
        consumer.assign([TopicPartition(topics.transactions, 0)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while len(records) < 200 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
    finally:
        consumer.close(autocommit=False)
    assert len(records) == 200
    expected = [e for e, _ in simulate(SimulatorConfig.scaled(200, 400, days=3, seed=7))][:200]
    events = [json.loads(r.value) for r in records]
    assert events == expected  # the raw columns only: no fraud, no scenario
    assert [r.key for r in records] == [str(e["customer_id"]).encode() for e in expected]
