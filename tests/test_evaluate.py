"""``streamal evaluate``: the JSON it writes, the options that shape the run, its usage errors."""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamal import cli
from streamal.core.synthetic import drifting_transactions

N = 3000
FLAG = re.compile(r"--[a-z][a-z-]*")
NAME = re.compile(r"`([a-z_0-9]+)`")
FRAUD_RATE = 0.1
TOP_KEYS = {
    "config",
    "events",
    "labels_requested",
    "labels_learned",
    "labels_expired",
    "positives_learned",
    "spend_ratio",
    "max_window_spend_ratio",
    "spend_window",
    "by_reason",
    "accuracy",
    "kappa",
    "precision",
    "recall",
    "f1",
    "average_precision",
    "labeled_accuracy",
    "unbiased_accuracy",
    "us_per_event",
    "windows",
    "positives",
}
CONFIG_KEYS = {
    "data",
    "target",
    "positive",
    "time_column",
    "drop",
    "limit",
    "strategy",
    "measure",
    "model",
    "budget",
    "budget_window",
    "random_share",
    "exploit_share",
    "labels_per_hour",
    "pending_ttl_seconds",
    "class_balance",
    "label_delay",
    "label_delay_events",
    "label_delay_seconds",
    "window",
    "seed",
    "streamal_version",
}
WINDOW_KEYS = {
    "start",
    "events",
    "accuracy",
    "recall",
    "precision",
    "requested",
    "positives",
    "cumulative_requested",
}


def transactions(hourly: bool = False) -> Iterator[dict[str, Any]]:
    """The synthetic stream as file rows: ``fraud`` 0/1, a ``leak`` equal to it, and the channel
    as 0/1 (as the generator's bool reaches the model); ``hourly`` spaces events an hour apart."""
    for i, (event, fraud) in enumerate(drifting_transactions(N, fraud_rate=FRAUD_RATE, seed=42)):
        row = {**event, "online": int(event["online"]), "fraud": int(fraud), "leak": int(fraud)}
        if hourly:
            row["timestamp"] = 1_700_000_000 + 3600 * i
        yield row


def write_csv(path: Path, rows: Iterator[dict[str, Any]]) -> Path:
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", newline="") as f:
        writer: Any = None
        for row in rows:
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("evaluate") / "tx.csv", transactions())


def evaluate(
    tmp_path: Path, *args: str, capsys: pytest.CaptureFixture[str] | None = None
) -> dict[str, Any]:
    out = tmp_path / "out.json"
    assert cli.main(["evaluate", *args, "--json", str(out)]) == 0
    if capsys is not None:
        capsys.readouterr()

    def no_nan(name: str) -> None:
        raise AssertionError(f"{name} is not JSON")

    result: dict[str, Any] = json.loads(out.read_text(), parse_constant=no_nan)
    return result


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    """What depends on the stream and the learner only (not on file names or timing)."""
    return {k: v for k, v in doc.items() if k not in ("config", "us_per_event")}


def fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["evaluate", *args]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


def test_json_has_every_field_and_adds_up(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = evaluate(
        tmp_path,
        "--data",
        str(data),
        "--target",
        "fraud",
        "--drop",
        "leak",
        "--budget",
        "0.05",
        "--seed",
        "7",
        "--window",
        "500",
    )
    summary = capsys.readouterr().out
    for row in ("labels spent", "accuracy", "Cohen's kappa", "F1", "unbiased accuracy", "µs"):
        assert row in summary
    assert set(doc) == TOP_KEYS
    assert set(doc["config"]) == CONFIG_KEYS
    assert doc["config"] | {"streamal_version": None} == {
        "data": str(data),
        "target": "fraud",
        "positive": "1",
        "time_column": None,
        "drop": ["leak"],
        "limit": None,
        "strategy": "balanced",
        "measure": "auto",
        "model": "logreg",
        "budget": 0.05,
        "budget_window": 1000,
        "random_share": None,
        "exploit_share": None,
        "labels_per_hour": None,
        "pending_ttl_seconds": 7 * 24 * 3600.0,
        "class_balance": 0.0,
        "label_delay": "0",
        "label_delay_events": 0,
        "label_delay_seconds": None,
        "window": 500,
        "seed": 7,
        "streamal_version": None,
    }
    assert doc["events"] == N
    assert 0.8 * 0.05 <= doc["spend_ratio"] <= 0.05
    assert doc["labels_requested"] == doc["labels_learned"] == sum(doc["by_reason"].values())
    assert doc["max_window_spend_ratio"] >= doc["spend_ratio"]
    windows = doc["windows"]
    assert len(windows) == N // 500
    assert all(set(w) == WINDOW_KEYS for w in windows)
    assert sum(w["events"] for w in windows) == N
    assert [w["start"] for w in windows] == list(range(0, N, 500))
    assert sum(w["requested"] for w in windows) == doc["labels_requested"]
    assert windows[-1]["cumulative_requested"] == doc["labels_requested"]
    assert sum(w["positives"] for w in windows) == doc["positives"]
    assert 0.05 * N < doc["positives"] < 0.15 * N
    assert 0 < doc["positives_learned"] <= min(doc["positives"], doc["labels_learned"])
    low, high = doc["unbiased_accuracy"]["ci95"]
    assert 0.0 <= low <= doc["unbiased_accuracy"]["estimate"] <= high <= 1.0
    for key in ("accuracy", "kappa", "precision", "recall", "f1", "average_precision"):
        assert isinstance(doc[key], float), key
    assert doc["us_per_event"] > 0


def test_csv_gz_parquet_and_the_generator_agree(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    gz = write_csv(tmp_path / "tx.csv.gz", transactions())
    rows = list(transactions())
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "tx.parquet")
    common = ["--target", "fraud", "--drop", "leak", "--budget", "0.05"]
    plain = figures(evaluate(tmp_path, "--data", str(data), *common, capsys=capsys))
    assert figures(evaluate(tmp_path, "--data", str(gz), *common, capsys=capsys)) == plain
    parquet = tmp_path / "tx.parquet"
    assert figures(evaluate(tmp_path, "--data", str(parquet), *common, capsys=capsys)) == plain
    generated = evaluate(
        tmp_path,
        *("--data", "synthetic:transactions", "--limit", str(N)),
        *("--fraud-rate", str(FRAUD_RATE), "--budget", "0.05"),
        capsys=capsys,
    )
    assert figures(generated) == plain  # a file replays exactly what the service would see


def test_a_leaky_column_is_dropped(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data", str(data), "--target", "fraud", "--budget", "0.5"]
    leaky = evaluate(tmp_path, *common, capsys=capsys)
    honest = evaluate(tmp_path, *common, "--drop", "leak", capsys=capsys)
    assert leaky["accuracy"] > 0.98 and leaky["windows"][-1]["accuracy"] == 1.0
    # The leak removes most errors: the honest run makes several times as many.
    assert 1 - honest["accuracy"] > 5 * (1 - leaky["accuracy"])
    assert honest["f1"] < leaky["f1"] - 0.1


def test_label_delay_in_events_and_in_stream_time(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data", str(data), "--target", "fraud", "--drop", "leak", "--budget", "0.05"]
    prompt = evaluate(tmp_path, *common, capsys=capsys)
    assert prompt["recall"] > 0.2
    # Labels later than the stream is long: nothing is learned until the end.
    late = evaluate(tmp_path, *common, "--label-delay", str(10 * N), capsys=capsys)
    assert late["config"]["label_delay_events"] == 10 * N
    assert late["recall"] == 0.0
    assert late["labels_learned"] == late["labels_requested"]  # delivered after the last event
    # The stream spans about a minute of stream time (50 events/s): a day is never.
    timed = ["--time-column", "timestamp"]
    day = evaluate(tmp_path, *common, *timed, "--label-delay", "1d", capsys=capsys)
    assert day["config"]["label_delay_seconds"] == 86400.0
    assert day["config"]["label_delay_events"] is None
    assert figures(day) == figures(late)
    # No delay in stream time is the next event, as with no delay in events.
    now = evaluate(tmp_path, *common, *timed, "--label-delay", "0s", capsys=capsys)
    assert figures(now) == figures(prompt)
    seconds = evaluate(tmp_path, *common, *timed, "--label-delay", "5s", capsys=capsys)
    assert figures(seconds) != figures(prompt)


def test_reviewer_capacity_runs_on_stream_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hourly = write_csv(tmp_path / "hourly.csv", transactions(hourly=True))
    common = ["--data", str(hourly), "--target", "fraud", "--drop", "leak", "--budget", "0.05"]
    # Two labels an hour over 3,000 hours of stream time: the budget binds, not the capacity.
    on_stream = evaluate(
        tmp_path, *common, "--labels-per-hour", "2", "--time-column", "timestamp", capsys=capsys
    )
    assert on_stream["labels_requested"] > 0.8 * 0.05 * N
    # Without event times the bucket would refill on the wall clock of a run that replays
    # 3,000 hours in seconds (one label in all): refused, with what to pass.
    err = fails([*common, "--labels-per-hour", "2"], capsys)
    assert "--labels-per-hour" in err and "--time-column" in err


def test_labels_later_than_the_pending_time_to_live_expire_as_in_the_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hourly = write_csv(tmp_path / "hourly.csv", transactions(hourly=True))
    common = ["--data", str(hourly), "--target", "fraud", "--drop", "leak", "--budget", "0.05"]
    timed = [*common, "--time-column", "timestamp", "--label-delay", "8d"]
    # Reviewers answer after 8 days, the open requests live 7: every label is an orphan.
    assert cli.main(["evaluate", *timed, "--json", str(tmp_path / "late.json")]) == 0
    assert "labels expired" in capsys.readouterr().out  # the summary says so, and what to do
    late = json.loads((tmp_path / "late.json").read_text())
    assert late["labels_expired"] == late["labels_requested"] > 0
    assert late["labels_learned"] == 0
    # Requests that live 9 days get their labels.
    kept = evaluate(tmp_path, *timed, "--pending-ttl-seconds", str(9 * 86400), capsys=capsys)
    assert kept["labels_expired"] == 0
    assert kept["labels_learned"] == kept["labels_requested"]
    assert kept["config"]["pending_ttl_seconds"] == 9 * 86400
    assert kept["accuracy"] > late["accuracy"]
    # A queue of 3 open requests with labels 8 days late: most are dropped by size first.
    small = evaluate(
        tmp_path,
        *timed,
        "--pending-ttl-seconds",
        str(9 * 86400),
        "--pending-max-items",
        "3",
        capsys=capsys,
    )
    assert small["labels_expired"] == small["labels_requested"] - small["labels_learned"] > 0


def test_river_phishing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = evaluate(tmp_path, "--data", "river:Phishing", "--budget", "0.1", capsys=capsys)
    assert doc["events"] == 1250
    assert doc["config"]["positive"] == "true" and doc["config"]["target"] is None
    # A short stream still draws a curve: nine windows of 150 events, not two of 1,000.
    assert doc["config"]["window"] == 150
    assert [w["events"] for w in doc["windows"]] == [150] * 8 + [50]
    assert sum(w["requested"] for w in doc["windows"]) == doc["labels_requested"]
    assert 0.9 * 0.1 <= doc["spend_ratio"] <= 1.05 * 0.1  # the acceptance's bounds
    assert doc["accuracy"] > 0.6


def test_river_generator_with_a_strategy_and_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = evaluate(
        tmp_path,
        "--data",
        "river:SEA-drift",
        "--limit",
        "2000",
        "--budget",
        "0.1",
        "--strategy",
        "fraud",
        "--model",
        "gnb",
        capsys=capsys,
    )
    assert doc["events"] == 2000
    assert (doc["config"]["strategy"], doc["config"]["model"]) == ("fraud", "gnb")
    assert set(doc["by_reason"]) <= {"random", "exploit", "uncertainty"}
    assert doc["by_reason"].get("exploit", 0) > 0


def test_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "plots" / "curve.png"
    args = ["evaluate", "--data", "river:SEA", "--limit", "2000", "--plot", str(png)]
    assert cli.main(args) == 0
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "curve.png" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["curve.foo", "curve", "curve.pgf"])
def test_a_plot_name_matplotlib_cannot_write_is_refused_before_the_run(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no TeX, so no .pgf
    out = tmp_path / "out.json"
    args = ["--data", "river:SEA", "--limit", "300", "--json", str(out)]
    err = fails([*args, "--plot", str(tmp_path / name)], capsys)
    assert "--plot" in err and ".png" in err
    assert not out.exists()  # refused at the start, not after the run
    assert list(tmp_path.iterdir()) == []  # and no curve.png behind the user's back


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], "no target column 'nope'"),
        ([], "--target COLUMN is required"),
        (["--target", "category"], "cannot tell the positive class of 'category'.*--positive"),
        (["--target", "fraud", "--positive", "yes"], "--positive 'yes' never occurs"),
        (["--target", "fraud", "--label-delay", "7d"], "needs --time-column"),
        (
            ["--target", "fraud", "--labels-per-hour", "10"],
            "capacity in stream time.*--time-column",
        ),
        (
            ["--target", "fraud", "--alert-cards-per-day", "5", "--card-field", "card"],
            "per day of event time.*--time-column",
        ),
        (["--target", "fraud", "--time-column", "when"], "--time-column: no column 'when'"),
        (["--target", "fraud", "--drop", "nope"], "--drop: no column 'nope'"),
        (["--target", "fraud", "--measure", "vote_entropy"], "committee|ensemble|vote"),
        # Options of a part of the run that does not run: refused, not ignored.
        (["--target", "fraud", "--report-from", "2024-01-01"], "--report-from.*--cards-per-day"),
        (["--target", "fraud", "--report-to", "2024-01-01"], "--report-to.*--cards-per-day"),
        (["--target", "fraud", "--compromised-days", "3"], "--compromised-days.*--cards-per"),
        (
            [
                *("--target", "fraud", "--time-column", "timestamp", "--card-field", "category"),
                *(
                    "--cards-per-day",
                    "5",
                    "--report-from",
                    "2024-01-09",
                    "--report-to",
                    "2024-01-02",
                ),
            ],
            "--report-from 2024-01-09 is after --report-to 2024-01-02",
        ),
        (["--target", "fraud", "--chargeback-negatives"], "needs --chargeback-delay"),
        (["--target", "fraud", "--fraud-rate", "0.1"], "synthetic:transactions only"),
        # Service settings a replay would have ignored.
        (["--target", "fraud", "--classes", "low,mid,high"], "--classes.*--positive"),
        (["--target", "fraud", "--features", "amount,nope"], "--features: 'nope': no feature"),
        (
            ["--target", "fraud", "--features", "amount,leak", "--drop", "leak"],
            "--features: 'leak': no feature column",
        ),
        (["--target", "fraud", "--features", "timestamp"], "--features: 'timestamp': no feature"),
        (["--target", "fraud", "--card-field", "nope"], "--card-field: no column 'nope'"),
        (
            ["--target", "fraud", "--source-weights", "reviewer=2,chargeback=0.5"],
            "--source-weights: no labels come from reviewer in evaluate; its sources are evaluator",
        ),
        (
            ["--target", "fraud", "--card-field", "category", "--time-field", "when"],
            "--card-field: .* need event times: --time-column",
        ),
    ],
)
def test_usage_errors_exit_2_with_a_message(
    data: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = fails(["--data", str(data), *args], capsys)
    assert err.startswith("streamal evaluate: error: ")

    assert re.search(message, err), err


def test_unreadable_data_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "cannot read" in fails(["--data", str(tmp_path / "none.csv"), "--target", "y"], capsys)
    assert "unsupported data" in fails(["--data", str(tmp_path / "x.txt")], capsys)
    assert "unknown River dataset" in fails(["--data", "river:Nope"], capsys)
    broken = tmp_path / "broken.csv"
    broken.write_text("a,y\n1,1\n2,0\n1,2,3\n")
    assert "line 4: 3 fields" in fails(["--data", str(broken), "--target", "y"], capsys)
    long_text = tmp_path / "long.csv"
    long_text.write_text("a,y\n" + "x" * 300 + ",1\n")
    err = fails(["--data", str(long_text), "--target", "y"], capsys)
    assert "event 1: string feature 'a' too long (--drop the column?)" in err


@pytest.mark.parametrize("flag", ["--json", "--plot"])
def test_an_output_that_is_a_directory_is_refused_before_the_run(
    tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "out.png").mkdir()
    err = fails(["--data", "river:SEA", "--limit", "300", flag, str(tmp_path / "out.png")], capsys)
    assert "it is a directory" in err
    assert capsys.readouterr().out == ""  # no run, no summary


def test_a_bought_label_and_a_chargeback_due_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Reviewers and chargebacks both an hour late: an event's two labels fall due at once.
    # The heap of due labels then compared the Label objects: a TypeError traceback.
    rows = ({"t": 1_700_000_000 + 10 * i, "x": i % 7, "y": int(i % 5 > 0)} for i in range(2000))
    data = write_csv(tmp_path / "timed.csv", rows)
    doc = evaluate(
        tmp_path,
        *("--data", str(data), "--target", "y", "--time-column", "t", "--strategy", "random"),
        *("--budget", "0.5", "--label-delay", "1h", "--chargeback-delay", "1h"),
        capsys=capsys,
    )
    # The bought label comes first, so every one is learned (the chargeback is the duplicate).
    assert doc["labels_learned"] == doc["labels_requested"] > 500


def test_repeated_event_ids_are_an_error_not_lost_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {"event_id": i % 10, "x": (i * 37 % 100) / 100, "y": int(i % 3 == 0)} for i in range(500)
    ]
    repeated = write_csv(tmp_path / "ids.csv", iter(rows))
    common = ["--data", str(repeated), "--target", "y", "--budget", "0.1"]
    # Ten ids for 500 events: the pending store learns each id once and the other bought
    # labels were lost, neither learned nor expired.
    err = fails(common, capsys)
    assert re.search(r"two events have the id '\d(\.0)?' \(column 'event_id'\)", err)
    assert "--drop" in err
    # Numbered rows instead: every bought label is learned.
    doc = evaluate(tmp_path, *common, "--drop", "event_id", capsys=capsys)
    assert doc["labels_learned"] == doc["labels_requested"] > 10


def test_a_bad_label_delay_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "--data", "river:SEA", "--label-delay", "7 weeks"])
    assert exit_info.value.code == 2
    assert "neither a number of events" in capsys.readouterr().err


def test_the_time_column_keeps_the_run_on_stream_time_when_also_dropped(
    tmp_path: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--data", str(data), "--target", "fraud", "--drop", "leak", "--budget", "0.05"]
    timed = [*common, "--time-column", "timestamp", "--label-delay", "1d"]
    day = evaluate(tmp_path, *timed, capsys=capsys)
    assert day["recall"] == 0.0  # no label comes within the stream's minute
    # Dropping the time column too used to take the times away: labels came the next event.
    dropped = evaluate(tmp_path, *timed, "--drop", "leak,timestamp", capsys=capsys)
    assert figures(dropped) == figures(day)


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_table(header: str) -> list[tuple[str, str]]:
    """The rows (first cell, second cell) of the README's table that starts with ``header``,
    in the Offline evaluation section."""
    section = README.read_text().split("## Offline evaluation", 1)[1].split("\n## ", 1)[0]
    table = section.split(header + "\n", 1)[1].split("\n\n", 1)[0]
    cells = [line.split(" | ") for line in table.splitlines()[1:]]
    return [(c[0].removeprefix("| "), c[1]) for c in cells]


def test_the_readme_documents_every_evaluate_option() -> None:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    group = next(g for g in sub.choices["evaluate"]._action_groups if g.title == "evaluate")
    flags = {s for a in group._group_actions for s in a.option_strings}
    documented = {f for cell, _ in readme_table("| option | meaning |") for f in FLAG.findall(cell)}
    assert documented == flags


def test_the_json_has_the_fields_the_readme_documents_and_no_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = dict(readme_table("| field | meaning |"))
    doc = evaluate(
        tmp_path,
        *("--data", "synthetic:transactions", "--limit", "2000", "--time-column", "timestamp"),
        *("--card-field", "category", "--cards-per-day", "3", "--chargeback-delay", "1h"),
        capsys=capsys,
    )
    fields = {name for cell in rows for name in NAME.findall(cell)}
    assert fields == set(doc)
    assert set(NAME.findall(rows["`config`"])) - {"null"} == set(doc["config"])
    fraud = set(NAME.findall(rows["`fraud`"])) - {"k"}
    assert fraud | {"k"} >= set(doc["fraud"]) and fraud >= set(doc["fraud"]["per_day"][0])
    windows = set(NAME.findall(rows["`windows`"])) - {"budget", "window"}
    assert windows >= set(doc["windows"][0])
