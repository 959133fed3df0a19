"""``streamal demo`` end to end (embedded broker, service, simulated reviewer, chargebacks, summary
and plot), and its card figures against ``streamal evaluate``'s."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from streamal.cli import main
from streamal.config import Settings
from streamal.core.evaluator import StreamClock, prequential
from streamal.core.messages import ClassSet
from streamal.demo.cards import OfflineCards
from streamal.demo.options import CARD, Options, demo_settings, stream_info
from streamal.presets import CardReport
from streamal.service import build_learner


def _row(out: str, label: str) -> list[str]:
    """The cells of the summary row that starts with ``label``."""
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{out}")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("STREAMAL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.usefixtures("no_env")
def test_demo_runs_the_card_simulator_and_compares_with_random(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No broker configured: the demo must start its own embedded broker.
    plot = tmp_path / "c.png"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the broker keeps its log
    code = main(
        [
            "demo",
            "--customers",
            "200",
            "--terminals",
            "400",
            "--days",
            "10",
            "--fraud-scale",
            "8",
            "--chargeback-days",
            "3",
            "--cards-per-day",
            "10",
            "--rate",
            "0",
            "--review-delay",
            "0.2",
            "--plot",
            str(plot),
            "--http-port",
            "0",
            "--log-level",
            "warning",
        ]
    )

    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "embedded broker" in out
    assert re.search(r"strategy\s+fraud", out), out
    # Figures for the live run, its offline replay and random.
    for label in ("card precision@10, all days", "AUC, last 7 days", "labels requested"):
        cells = _row(out, label)
        assert len(cells) == 3 and all(c != "n/a" for c in cells), (label, cells)
    precision = [float(c) for c in _row(out, "card precision@10, all days")]
    assert all(0.0 <= p <= 1.0 for p in precision)
    assert precision[0] > 0.0, out  # live: some card among the 10 reviewed had fraud
    # Chargebacks reached the live service through the labels topic and were learned.
    assert all(int(c.replace(",", "")) > 0 for c in _row(out, "labels learned: chargeback"))
    assert len(_row(out, "10")) == 6  # the last day: txns, frauds, fraud cards, three runs
    assert "curves:" in out
    # The embedded broker's log folder goes with a run that went well.
    assert not list(scratch.glob("streamal-broker-*"))


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.usefixtures("no_env")
def test_demo_synthetic_stream_on_a_configured_broker(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "s.png"
    code = main(
        [
            "demo",
            "--stream",
            "synthetic",
            "--events",
            "2000",
            "--rate",
            "0",
            "--review-delay",
            "0.2",
            "--window",
            "500",
            "--plot",
            str(plot),
            "--bootstrap-servers",
            kafka_bootstrap,
            "--http-port",
            "0",
            "--log-level",
            "warning",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert _row(out, "events scored") == ["2,000"] * 3
    assert len(_row(out, "fraud recall")) == 3
    assert "accuracy after drift" in out


def test_demo_settings_turn_on_card_features_and_the_fraud_strategy() -> None:
    cards = demo_settings(Settings(), external=False, cards=True)
    assert (cards.card_field, cards.terminal_field, cards.amount_field) == (
        "customer_id",
        "terminal_id",
        "amount",
    )
    assert cards.strategy == "fraud" and cards.labels_per_hour is None
    assert cards.alert_cards_per_day is None  # no k given: the exploit share
    alerting = demo_settings(Settings(), external=False, cards=True, alert_cards=12)
    assert alerting.alert_cards_per_day == 12
    chosen = demo_settings(Settings(strategy="quantile", card_field="cid"), False, cards=True)
    assert (chosen.strategy, chosen.card_field) == ("quantile", "cid")
    synthetic = demo_settings(Settings(), external=False)
    assert synthetic.card_field is None and synthetic.strategy == "balanced"


def test_offline_card_figures_match_streamal_evaluate() -> None:
    """The demo's card precision@k is ``streamal evaluate``'s (CardReport), day by day."""
    options = Options(
        stream="cards",
        rate=0.0,
        review_delay=0.0,
        plot=Path("unused.png"),
        seed=7,
        customers=150,
        terminals=300,
        days=8,
        fraud_scale=10.0,
        chargeback_days=2.0,
    )
    info = stream_info(options)
    settings = demo_settings(Settings(budget=0.05), external=False, cards=True)
    clock = StreamClock()
    learner = build_learner(settings, ClassSet(), clock=clock)
    ours = OfflineCards(info, options.k)
    theirs = CardReport(k=options.k, card_field=CARD, amount_field="amount", time_field="timestamp")

    def on_event(*args: object) -> None:
        ours.on_event(*args)  # type: ignore[arg-type]
        theirs.on_event(*args)  # type: ignore[arg-type]

    def on_label(*args: object) -> None:
        ours.on_label(*args)  # type: ignore[arg-type]
        theirs.on_label(*args)  # type: ignore[arg-type]

    report = prequential(
        ours.stream(options.stream_pairs()),
        learner,
        label_delay_seconds=6 * 3600.0,
        clock=clock,
        chargeback_delay_seconds=options.chargeback_seconds,
        on_event=on_event,
        on_label=on_label,
    )
    assert report.events == info.events and info.frauds > 0
    expected = [d["card_precision_at_k"] for d in theirs.document()["per_day"]]
    got = [d.precision for d in ours.cards.results()]
    assert got == pytest.approx(expected)
    assert any(p > 0 for p in got)
    assert ours.learned["chargeback"] > 0 and ours.learned["reviewer"] > 0
