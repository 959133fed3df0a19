"""The demo's closing figures: tables for the terminal and curves as a PNG."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.table import Table

from streamal.adapters.plot import pyplot, two_panels
from streamal.config import Settings
from streamal.core.evaluator import Report, Window
from streamal.demo.cards import CardRun
from streamal.demo.figures import finite_mean, fmt, ratio
from streamal.demo.options import REASONS, RECENT_DAYS, Options, StreamInfo

__all__ = ["STYLES", "card_tables", "plot_cards", "plot_curves", "summary_tables"]


def _header(name: str) -> str:
    """``streamal (live)`` over two lines, so that the tables fit 80 columns."""
    return name.replace(" (", "\n(")


STYLES: dict[str, dict[str, Any]] = {
    "streamal (live)": {"color": "tab:blue", "marker": "o"},
    "streamal (offline)": {"color": "tab:blue", "linestyle": "--", "marker": "."},
    "random (offline)": {"color": "tab:orange", "marker": "s"},
}


def card_tables(
    options: Options, info: StreamInfo, settings: Settings, runs: dict[str, CardRun], delay: str
) -> list[Table]:
    """The fraud team's figures of every run, overall and per simulated day."""
    names = list(runs)
    k = options.k
    budget = round(settings.budget * info.events)
    chargebacks = (
        f"chargebacks after {options.chargeback_days:g} days"
        if options.chargeback_seconds
        else "no chargebacks"
    )
    overall = Table(
        title=f"streamal demo: {info.events:,} card transactions, {info.frauds:,} frauds "
        f"({ratio(info.frauds, info.events):.2%})",
        title_justify="left",
        caption=f"{options.customers:,} cards over {options.days} simulated days; budget "
        f"{settings.budget:.1%} ({budget:,} labels), strategy {settings.strategy}; review delay "
        f"{delay}; {chargebacks}",
        caption_justify="left",
    )
    overall.add_column("")
    for name in names:
        overall.add_column(_header(name), justify="right")

    def row(label: str, cell: Callable[[CardRun], str]) -> None:
        overall.add_row(label, *(cell(runs[name]) for name in names))

    recent = f"last {RECENT_DAYS} days"
    row("events scored", lambda r: f"{r.report.events:,}")
    row(
        "labels requested",
        lambda r: f"{r.report.requested:,} ({ratio(r.report.requested, r.report.events):.1%})",
    )
    for reason in REASONS:
        overall.add_row(f"  {reason}", *(f"{runs[n].by_reason.get(reason, 0):,}" for n in names))
    row("labels learned: reviewer", lambda r: f"{r.learned.get('reviewer', 0):,}")
    row("labels learned: chargeback", lambda r: f"{r.learned.get('chargeback', 0):,}")
    row(f"card precision@{k}, all days", lambda r: fmt(finite_mean([d.precision for d in r.days])))
    row(
        f"card precision@{k}, {recent}",
        lambda r: fmt(finite_mean([d.precision for d in r.recent()])),
    )
    row("fraud recall, all days", lambda r: fmt(finite_mean([d.recall for d in r.days]), pct=True))
    row(
        f"fraud recall, {recent}",
        lambda r: fmt(finite_mean([d.recall for d in r.recent()]), pct=True),
    )
    row(f"AUC, {recent}", lambda r: fmt(r.auc))
    row(f"average precision, {recent}", lambda r: fmt(r.average_precision))

    start = options.simulator().start_date
    daily = Table(
        title=f"card precision@{k} / fraud recall by day (day 1: {start})",
        title_justify="left",
        caption=f"fraud recall: share of the day's new fraud cards among the {k} reviewed; "
        "fraud cards: all, new to streamal (live)",
        caption_justify="left",
    )
    for column in ("day", "txns", "frauds", "fraud\ncards"):
        daily.add_column(column, justify="right")
    for name in names:
        daily.add_column(_header(name), justify="right")
    by_day = {name: {d.day: d for d in r.days} for name, r in runs.items()}
    for day in sorted({d for days in by_day.values() for d in days}):
        first = next(by_day[n][day] for n in names if day in by_day[n])
        cells = []
        for name in names:
            d = by_day[name].get(day)
            cells.append("" if d is None else f"{d.precision:.2f} {fmt(d.recall, pct=True):>4}")
        daily.add_row(
            str(day + 1),
            f"{first.transactions:,}",
            str(first.frauds),
            f"{first.fraud_cards}, {first.new_fraud_cards}",
            *cells,
        )
    return [overall, daily]


def plot_cards(
    path: Path, options: Options, info: StreamInfo, settings: Settings, runs: dict[str, CardRun]
) -> bool:
    """Card precision@k and fraud recall per simulated day as a PNG; ``False`` without
    matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    k = options.k
    path.parent.mkdir(parents=True, exist_ok=True)
    with two_panels(plt, path) as (cp_ax, rec_ax):
        for name, run in runs.items():
            xs = [d.day + 1 for d in run.days]
            style = STYLES.get(name, {})
            cp_ax.plot(xs, [d.precision for d in run.days], label=name, **style)
            rec_ax.plot(xs, [d.recall for d in run.days], label=name, **style)
        reference = next(iter(runs.values())).days
        cp_ax.plot(
            [d.day + 1 for d in reference],
            [d.best for d in reference],
            color="grey",
            linestyle=":",
            label="perfect ranking (live)",
        )
        for ax in (cp_ax, rec_ax):
            if options.chargeback_seconds:
                ax.axvline(options.chargeback_days + 1, color="red", alpha=0.5, linestyle="-.")
            ax.grid(alpha=0.3)
            ax.set_ylim(-0.02, 1.02)
        if options.chargeback_seconds:
            cp_ax.text(
                options.chargeback_days + 1,
                1.0,
                f" first chargebacks ({options.chargeback_days:g} days late)",
                color="red",
                va="top",
                alpha=0.7,
            )
        cp_ax.set_ylabel(f"card precision@{k}")
        rec_ax.set_ylabel(f"fraud recall (new fraud cards in the top {k})")
        rec_ax.set_xlabel("simulated day")
        cp_ax.legend(loc="upper left", fontsize="small")
        cp_ax.set_title(
            f"streamal vs random sampling at a {settings.budget:.1%} label budget\n"
            f"{info.events:,} transactions, {options.customers:,} cards, "
            f"{ratio(info.frauds, info.events):.2%} fraud, {k} cards reviewed a day, "
            f"review delay {options.review_delay:g} s",
            fontsize="medium",
        )
    return True


def _total(windows: list[Window], start: int = 0) -> Window:
    total = Window(start=start)
    for w in windows:
        if w.start >= start:
            total.events += w.events
            total.correct += w.correct
            total.positives += w.positives
            total.true_positives += w.true_positives
            total.requested += w.requested
    return total


def _recall_text(w: Window) -> str:
    return f"{fmt(w.recall, pct=True)} ({w.true_positives}/{w.positives})"


def summary_tables(
    options: Options,
    settings: Settings,
    runs: dict[str, Report],
    learned: dict[str, int],
    by_reason: dict[str, dict[str, int]],
) -> list[Table]:
    """The overall comparison and the per-window learning curves, as tables."""
    names = list(runs)
    budget = round(settings.budget * options.events)
    overall = Table(
        title=f"streamal demo: {options.events:,} events, budget {settings.budget:.1%} "
        f"({budget:,} labels), review delay {options.review_delay:g} s",
        title_justify="left",
        caption=f"after drift: events {options.drift_at:,}–{options.events:,}",
        caption_justify="left",
    )
    overall.add_column("")
    for name in names:
        overall.add_column(_header(name), justify="right")

    def row(label: str, cell: Callable[[str, Report], str]) -> None:
        overall.add_row(label, *(cell(name, runs[name]) for name in names))

    row("events scored", lambda _, r: f"{r.events:,}")
    row("labels requested", lambda _, r: f"{r.requested:,} ({ratio(r.requested, r.events):.1%})")
    for reason in REASONS:
        overall.add_row(f"  {reason}", *(f"{by_reason[n].get(reason, 0):,}" for n in names))
    row("labels learned", lambda n, _: f"{learned[n]:,}")
    row("accuracy", lambda _, r: fmt(_total(r.windows).accuracy))
    row("fraud recall", lambda _, r: _recall_text(_total(r.windows)))
    after = options.drift_at
    row("accuracy after drift", lambda _, r: fmt(_total(r.windows, after).accuracy))
    row("fraud recall after drift", lambda _, r: _recall_text(_total(r.windows, after)))

    curves = Table(
        title="accuracy / fraud recall per window",
        title_justify="left",
        caption=f"* concept drift: the fraud pattern changes at event {options.drift_at:,}",
        caption_justify="left",
    )
    curves.add_column("events")
    curves.add_column("fraud", justify="right")
    for name in names:
        curves.add_column(_header(name), justify="right")
    starts = sorted({w.start for r in runs.values() for w in r.windows})
    by_start = {name: {w.start: w for w in r.windows} for name, r in runs.items()}
    for start in starts:
        first = next(by_start[n][start] for n in names if start in by_start[n])
        end = start + first.events
        drift = " *" if start <= options.drift_at < end else ""
        cells = []
        for name in names:
            w = by_start[name].get(start)
            cells.append("" if w is None else f"{fmt(w.accuracy)} / {fmt(w.recall, pct=True)}")
        curves.add_row(f"{start:,}–{end:,}{drift}", str(first.positives), *cells)
    return [overall, curves]


def plot_curves(path: Path, options: Options, settings: Settings, runs: dict[str, Report]) -> bool:
    """Write the learning curves as a PNG; ``False`` (with nothing written) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with two_panels(plt, path) as (acc_ax, rec_ax):
        for name, report in runs.items():
            xs = [w.start + w.events / 2 for w in report.windows]
            style = STYLES.get(name, {})
            acc_ax.plot(xs, [w.accuracy for w in report.windows], label=name, **style)
            rec_ax.plot(xs, [w.recall for w in report.windows], label=name, **style)
        reference = next(iter(runs.values())).windows
        acc_ax.plot(
            [w.start + w.events / 2 for w in reference],
            [1 - ratio(w.positives, w.events) for w in reference],
            color="grey",
            linestyle=":",
            label="always 'not fraud'",
        )
        for ax in (acc_ax, rec_ax):
            ax.axvline(options.drift_at, color="red", alpha=0.5, linestyle="-.")
            ax.grid(alpha=0.3)
        acc_ax.text(options.drift_at, 1.0, " drift", color="red", va="top", alpha=0.7)
        acc_ax.set_ylabel("accuracy")
        rec_ax.set_ylabel("fraud recall")
        rec_ax.set_ylim(-0.02, 1.02)
        rec_ax.set_xlabel(f"event (windows of {options.window:,})")
        acc_ax.legend(loc="lower right", fontsize="small")
        acc_ax.set_title(
            f"streamal vs random sampling at a {settings.budget:.1%} label budget "
            f"({options.events:,} events, {options.fraud_rate:.1%} fraud, "
            f"review delay {options.review_delay:g} s)",
            fontsize="medium",
        )
    return True
