"""``evaluate --preset card-fraud-handbook`` end to end, on data the simulator writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamal.cli import build_parser, main, settings_from_args
from streamal.config import Settings
from streamal.core.evaluator import StreamClock
from streamal.evaluate import apply_preset, stream_learner


@pytest.mark.slow
def test_handbook_preset_reports_daily_card_precision(tmp_path: Path) -> None:
    data = tmp_path / "handbook.csv.gz"
    assert (
        main(
            [
                "simulate",
                "--days",
                "20",
                "--customers",
                "600",
                "--terminals",
                "1200",
                "--handbook-columns",
                "--out",
                str(data),
            ]
        )
        == 0
    )
    out = tmp_path / "report.json"
    code = main(
        [
            "evaluate",
            "--preset",
            "card-fraud-handbook",
            "--data",
            str(data),
            "--cards-per-day",
            "20",
            "--report-from",
            "2018-04-15",
            "--report-to",
            "2018-04-20",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    fraud = doc["fraud"]
    assert (fraud["report_from"], fraud["report_to"], fraud["days"]) == (
        "2018-04-15",
        "2018-04-20",
        6,
    )
    assert [d["day"] for d in fraud["per_day"]][0] == "2018-04-15"
    for day in fraud["per_day"]:
        assert 0.0 <= day["card_precision_at_k"] <= 1.0
        assert day["labels_learned"] >= 0 and day["transactions"] > 0
    assert 0.0 <= fraud["card_precision_at_k"] <= 1.0
    assert fraud["auc"] > 0.5  # the features carry signal: better than chance
    # The scenario column is ground truth, never a feature.
    assert "TX_FRAUD_SCENARIO" in doc["config"]["drop"]
    # Every event labelled within a week: the small-step model.
    assert doc["config"]["model"] == "logreg-slow"
    # Chargebacks a week late: the terminal windows end a week ago.
    assert doc["config"]["terminal_delay_days"] == 7.0
    # Chargebacks: every fraud's label arrives, so far more labels are learned than bought.
    assert doc["labels_learned"] <= doc["labels_requested"]
    assert sum(d["labels_learned"] for d in fraud["per_day"]) > fraud["labels_requested"]


def test_the_terminal_delay_setting_reaches_the_features() -> None:
    # Every fraud's label has arrived a chargeback delay later: the terminal windows end there.
    settings = Settings(card_field="customer_id", time_field="timestamp")
    learner = stream_learner(settings, StreamClock())
    assert learner.features is not None and learner.features.spec.terminal_delay_days == 0.0
    settings = Settings(card_field="customer_id", time_field="timestamp", terminal_delay_days=7)
    learner = stream_learner(settings, StreamClock())
    assert learner.features is not None and learner.features.spec.terminal_delay_days == 7.0
    x = learner.features.transform_one(
        {"customer_id": 1, "terminal_id": 2, "amount": 5.0, "timestamp": 86400.0}
    )
    assert x["terminal_tx_1d"] == 0.0 and x["terminal_known_frauds_delay"] == 0.0


@pytest.mark.parametrize("where", ["flag", "env"])
def test_a_setting_given_wins_over_the_preset_as_flag_or_environment_variable(
    where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["evaluate", "--preset", "card-fraud-handbook", "--data", "x.csv"]
    if where == "flag":
        argv += ["--budget", "0.05", "--model", "logreg"]
    else:
        monkeypatch.setenv("STREAMAL_BUDGET", "0.05")
        monkeypatch.setenv("STREAMAL_MODEL", "logreg")
    args = build_parser().parse_args(argv)
    settings = apply_preset(args, settings_from_args(args))
    assert (settings.budget, settings.model) == (0.05, "logreg")
    # What neither gave comes from the preset.
    assert (settings.strategy, settings.card_field) == ("fraud", "CUSTOMER_ID")


def test_an_event_of_a_day_already_closed_is_an_error_not_a_second_day(tmp_path: Path) -> None:
    day = 86_400
    start = 1_700_006_400 - 1_700_006_400 % day
    rows = ["t,card,amount,y"]
    for i in range(600):
        t = start + (i // 200) * day + (i % 200) * 60
        if i == 250:
            t -= day  # one late event of the day before
        rows.append(f"{t},{i % 40},{10 + i % 13},{int(i % 9 == 0)}")
    data = tmp_path / "late.csv"
    data.write_text("\n".join(rows) + "\n")
    argv = ["evaluate", "--data", str(data), "--target", "y", "--time-column", "t"]
    argv += ["--card-field", "card", "--cards-per-day", "5", "--json", str(tmp_path / "r.json")]
    # It was reported as five days (the second one twice), averaged over the pieces.
    assert main(argv) == 2
    assert not (tmp_path / "r.json").exists()
    # In time order, three days.
    ordered = [rows[0], *sorted(rows[1:], key=lambda r: int(r.split(",")[0]))]
    data.write_text("\n".join(ordered) + "\n")
    assert main(argv) == 0
    per_day = json.loads((tmp_path / "r.json").read_text())["fraud"]["per_day"]
    assert [d["transactions"] for d in per_day] == [201, 199, 200]
