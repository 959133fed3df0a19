"""``streamal evaluate``: offline prequential (test-then-train) evaluation on a labelled stream.

The stream is a CSV, CSV.gz or Parquet file, a River dataset or the synthetic transactions. The
learner is the service's (:func:`streamal.service.build_learner`, same settings, same names), so
the figures say what the service would have done on that stream: every event is scored first,
the gate decides whether its label is bought, and bought labels are learned ``--label-delay``
later, counted in events or, with ``--time-column``, in stream time. With a time column the gate's
reviewer capacity (``--labels-per-hour``) runs on stream time too, so a replayed month is limited
like the real month was.

Output: a summary table, ``--json`` (schema in the README, "Offline evaluation") and ``--plot``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from streamal import __version__
from streamal.adapters.plot import file_formats, pyplot, two_panels
from streamal.adapters.sources import Pair, Source, SourceError, open_source
from streamal.argtypes import fraction, positive_int
from streamal.config import Settings
from streamal.core.evaluator import Report, StreamClock, Window, prequential
from streamal.core.learner import ActiveLearner, LabelResult, Scored
from streamal.core.messages import ClassSet, InvalidMessage, Label
from streamal.presets import PRESETS, CardReport, DayOutOfOrder
from streamal.service import build_learner

__all__ = [
    "LabelDelay",
    "configure",
    "evaluate",
    "make_learner",
    "plot_document",
    "report_document",
    "run",
    "stream_learner",
    "summary_table",
]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd])")
#: Label sources of a replay: bought labels, and with --chargeback-delay the chargebacks and
#: (--chargeback-negatives) the silence taken for genuine.
LABEL_SOURCES = ("evaluator", "chargeback", "no_chargeback")
#: Events between progress updates on a terminal.
PROGRESS_EVERY = 10_000


@dataclass(frozen=True, slots=True)
class LabelDelay:
    """How long a bought label takes to arrive: ``events`` later, or ``seconds`` of stream time.

    >>> LabelDelay.parse("50"), LabelDelay.parse("7d").seconds, LabelDelay.parse("90m").seconds
    (LabelDelay(text='50', events=50, seconds=None), 604800.0, 5400.0)
    """

    text: str
    events: int = 0
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str) -> LabelDelay:
        text = text.strip()
        if text.isdigit():
            return cls(text, events=int(text))
        match = _DURATION.fullmatch(text)
        if match is None:
            raise ValueError(
                f"{text!r} is neither a number of events (50) nor a duration (3600s, 30m, 4h, 7d)"
            )
        return cls(text, seconds=float(match[1]) * _UNITS[match[2]])


def _label_delay(text: str) -> LabelDelay:
    try:
        return LabelDelay.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _columns(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def configure(parser: argparse.ArgumentParser) -> None:
    """Evaluation options; ``--budget``, ``--strategy``, ``--model``, ``--seed``... come from the
    service settings, added by the CLI."""
    group = parser.add_argument_group("evaluate")
    group.add_argument(
        "--data",
        required=True,
        metavar="PATH|river:NAME",
        help="A .csv, .csv.gz or .parquet file; river:NAME (Phishing, SEA, Agrawal, Hyperplane, "
        "RandomRBFDrift, SEA-drift, Agrawal-drift); or synthetic:transactions.",
    )
    group.add_argument("--target", metavar="COLUMN", help="The label column (files only).")
    group.add_argument(
        "--positive",
        metavar="VALUE",
        help="The positive class as written in the target column; other values are negative "
        "[auto: 1, true, yes or fraud].",
    )
    group.add_argument(
        "--drop",
        type=_columns,
        default=[],
        metavar="COL,COL",
        help="Columns that are never features (e.g. a date or a leaky column).",
    )
    group.add_argument(
        "--time-column",
        metavar="COLUMN",
        help="Event time (ISO-8601 or epoch seconds): label delay and reviewer capacity then "
        "run on stream time.",
    )
    group.add_argument(
        "--label-delay",
        type=_label_delay,
        metavar="N|DURATION",
        help="When bought labels arrive: N events later, or a stream-time duration such as "
        "3600s, 30m, 4h, 7d (needs --time-column) [0].",
    )
    group.add_argument(
        "--limit",
        type=positive_int,
        help="At most this many events [all; 20000 for generators].",
    )
    group.add_argument(
        "--window",
        type=positive_int,
        help="Events per window of the learning curve [--budget-window; on a stream shorter "
        "than ten of them, about a tenth of the stream].",
    )
    group.add_argument(
        "--fraud-rate",
        type=fraction,
        help="Share of fraud in synthetic:transactions [0.02].",
    )
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="Column roles and review process of a known dataset (card-fraud-handbook: the "
        "Fraud-Detection Handbook's raw simulated transactions).",
    )
    group.add_argument(
        "--cards-per-day",
        type=positive_int,
        help="Report the fraud team's daily figures for k reviewed cards (card precision@k); "
        "needs --card-field and --time-column [preset's, else off].",
    )
    group.add_argument(
        "--chargeback-delay",
        type=_label_delay,
        help="Every fraud's label also arrives this much stream time later (e.g. 7d); the "
        "terminal windows then end that long before each transaction [preset's, else none].",
    )
    group.add_argument(
        "--chargeback-negatives",
        action=argparse.BooleanOptionalAction,
        help="With chargebacks, label every event that got none by then genuine "
        "(source no_chargeback) [preset's, else off].",
    )
    group.add_argument(
        "--compromised-days",
        type=positive_int,
        help="Days a card whose fraud label arrived stays out of card precision@k "
        "[preset's, else for good].",
    )
    group.add_argument("--report-from", type=date.fromisoformat, help="First day reported.")
    group.add_argument("--report-to", type=date.fromisoformat, help="Last day reported.")
    group.add_argument("--json", type=Path, metavar="OUT", help="Write the results as JSON.")
    group.add_argument(
        "--plot", type=Path, metavar="OUT.png", help="Draw the learning curve and the spend."
    )


# ---------------------------------------------------------------------------------- running


def stream_learner(settings: Settings, clock: StreamClock) -> ActiveLearner:
    """The service's learner, with the learner's and the gate's time read from the stream."""
    return build_learner(settings, ClassSet(), clock=clock)


class _Counted:
    """Counts the events read, so an error can say where it happened."""

    def __init__(self, pairs: Iterable[Pair], status: Any = None) -> None:
        self.pairs = pairs
        self.status = status
        self.count = 0

    def __iter__(self) -> Iterator[Pair]:
        for pair in self.pairs:
            self.count += 1
            if self.status is not None and self.count % PROGRESS_EVERY == 0:
                self.status.update(f"evaluating… {self.count:,} events")
            yield pair


def make_learner(source: Source, settings: Settings) -> tuple[ActiveLearner, StreamClock | None]:
    """The service's learner for these settings, on stream time when the source has a time
    column. Raises ``ValueError``/``TypeError`` for settings that do not fit together."""
    if source.time_column is None:
        return build_learner(settings, ClassSet()), None
    clock = StreamClock()
    return stream_learner(settings, clock), clock


def evaluate(
    source: Source,
    settings: Settings,
    label_delay: LabelDelay = LabelDelay("0"),
    window: int | None = None,
    status: Any = None,
    learner: tuple[ActiveLearner, StreamClock | None] | None = None,
    chargeback: LabelDelay | None = None,
    card_report: CardReport | None = None,
    chargeback_negatives: bool = False,
) -> Report:
    """Run the service's learner (or ``learner``, from :func:`make_learner`) over ``source``,
    test-then-train.

    Settings must already name the time column as ``time_field`` when the source has one.
    Raises :class:`SourceError` for unreadable data (an event the core rejects included).
    """
    active, clock = learner if learner is not None else make_learner(source, settings)
    events = _Counted(source, status)

    def on_event(event: Mapping[str, Any], truth: Hashable, scored: Scored) -> None:
        assert card_report is not None
        try:
            card_report.on_event(event, truth, scored)
        except DayOutOfOrder as exc:
            raise SourceError(f"{source.name}: event {events.count}: {exc}") from None

    def on_label(label: Label, result: LabelResult) -> None:
        if card_report is not None:
            card_report.on_label(label, result)
        # A bought label that is a duplicate: an earlier event had the same id, so the pending
        # store (as the service's) learned that id once and this label was lost, uncounted.
        # (With chargebacks, one may have come first for the same event: a true duplicate.)
        if label.source == "evaluator" and result.outcome == "duplicate" and chargeback is None:
            raise SourceError(
                f"{source.name}: two events have the id {label.event_id!r} (column "
                f"{settings.id_field!r}); ids must be unique (--drop the column to number the "
                "rows instead)"
            )

    try:
        return prequential(
            events,
            active,
            label_delay=label_delay.events,
            window=window or settings.budget_window,
            label_delay_seconds=label_delay.seconds,
            clock=clock,
            spend_window=settings.budget_window,
            chargeback_delay_seconds=chargeback.seconds if chargeback else None,
            chargeback_negatives=chargeback_negatives,
            on_event=on_event if card_report else None,
            on_label=on_label,
        )
    except InvalidMessage as exc:
        raise SourceError(
            f"{source.name}: event {events.count}: {exc.detail} (--drop the column?)"
        ) from None


def _finite(value: Any) -> Any:
    """JSON has no NaN: undefined figures (recall without positives, ...) become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def report_document(
    report: Report,
    source: Source,
    settings: Settings,
    label_delay: LabelDelay,
    window: int,
) -> dict[str, Any]:
    """The JSON document: the run's configuration, then :meth:`Report.as_dict`, extended."""
    body = report.as_dict()
    cumulative = 0
    for w, entry in zip(report.windows, body["windows"], strict=True):
        cumulative += w.requested
        entry["positives"] = w.positives
        entry["cumulative_requested"] = cumulative
    config = {
        "data": source.name,
        "target": source.target,
        "positive": source.positive,
        "time_column": source.time_column,
        "drop": sorted(source.drop),
        "limit": source.limit,
        "strategy": settings.strategy,
        "measure": settings.measure,
        "model": settings.model,
        "budget": settings.budget,
        "budget_window": settings.budget_window,
        "random_share": settings.random_share,
        "exploit_share": settings.exploit_share,
        "labels_per_hour": settings.labels_per_hour,
        "pending_ttl_seconds": settings.pending_ttl_seconds,
        "class_balance": settings.class_balance,
        "label_delay": label_delay.text,
        "label_delay_events": None if label_delay.seconds is not None else label_delay.events,
        "label_delay_seconds": label_delay.seconds,
        "window": window,
        "seed": settings.seed,
        "streamal_version": __version__,
    }
    doc = {"config": config, **body}
    result: dict[str, Any] = _finite(doc)
    return result


# ---------------------------------------------------------------------------------- output


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def summary_table(doc: dict[str, Any]) -> Table:
    """The figures of ``doc`` (a :func:`report_document`) as a table."""
    c = doc["config"]
    events = doc["events"]
    table = Table(title=f"streamal evaluate: {c['data']}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("", style="dim")
    positives = doc["positives"]
    table.add_row(
        "events",
        f"{events:,}",
        f"{positives:,} positive ({_pct(positives / events if events else None, 2)}); "
        f"positive class {c['positive']!r}",
    )
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(doc["by_reason"].items())) or "none"
    table.add_row(
        "labels spent",
        f"{doc['labels_requested']:,}",
        f"{_pct(doc['spend_ratio'], 2)} of events, budget {_pct(c['budget'], 2)}; {reasons}",
    )
    table.add_row(
        "spend, max window",
        _pct(doc["max_window_spend_ratio"], 2),
        f"over any {doc['spend_window']:,} consecutive events",
    )
    if doc["labels_expired"]:
        table.add_row(
            "[yellow]labels expired",
            f"[yellow]{doc['labels_expired']:,}",
            "[yellow]requests dropped before their label came, older than the pending "
            f"time-to-live ({c['pending_ttl_seconds'] / 86400:g} days) or beyond "
            "--pending-max-items: not learned, as in the service; raise the one that binds",
        )
    learned = doc["positives_learned"]
    table.add_row(
        "positives labelled",
        f"{learned:,}",
        f"{_pct(learned / positives if positives else None)} of the stream's positives, "
        f"{_pct(learned / doc['labels_learned'] if doc['labels_learned'] else None)} of the "
        "labels learned",
    )
    table.add_row("accuracy", _num(doc["accuracy"]), "prequential, on every event")
    table.add_row("Cohen's kappa", _num(doc["kappa"]), "")
    table.add_row("precision", _num(doc["precision"]), "of the positive class")
    table.add_row("recall", _num(doc["recall"]), "of the positive class")
    table.add_row("F1", _num(doc["f1"]), "of the positive class")
    table.add_row("average precision", _num(doc["average_precision"]), "of the positive class")
    table.add_row(
        "labelled accuracy",
        _num(doc["labeled_accuracy"]),
        f"biased: on the {doc['labels_learned']:,} labels the gate chose",
    )
    unbiased = doc["unbiased_accuracy"]
    low, high = unbiased["ci95"]
    table.add_row(
        "unbiased accuracy",
        _num(unbiased["estimate"]),
        f"95% CI [{_num(low)}, {_num(high)}] from {unbiased['labels']:,} random-lane labels",
    )
    table.add_row("µs per event", f"{doc['us_per_event']:.0f}", "reading, scoring and learning")
    table.caption = (
        f"strategy {c['strategy']}, measure {c['measure']}, model {c['model']}, "
        f"label delay {c['label_delay']}, seed {c['seed']}"
    )
    return table


def fraud_table(fraud: dict[str, Any]) -> Table:
    """The fraud team's figures per day of the report window, and over it."""
    table = Table(
        title=f"card precision@{fraud['k']} per day, {fraud['report_from']} to "
        f"{fraud['report_to']}",
        title_justify="left",
    )
    for name in (
        "day",
        "transactions",
        "frauds",
        "CP@k",
        "AUC",
        "AP",
        "labels asked",
        "labels learned",
    ):
        table.add_column(name, justify="left" if name == "day" else "right")
    for d in fraud["per_day"]:
        table.add_row(
            d["day"],
            f"{d['transactions']:,}",
            str(d["frauds"]),
            _num(d["card_precision_at_k"]),
            _num(d["auc"]),
            _num(d["average_precision"]),
            str(d["labels_requested"]),
            str(d["labels_learned"]),
        )
    table.add_row(
        "window",
        "",
        "",
        _num(fraud["card_precision_at_k"]),
        _num(fraud["auc"]),
        _num(fraud["average_precision"]),
        str(fraud["labels_requested"]),
        str(fraud["labels_learned"]),
        style="bold",
    )
    return table


def plot_document(path: Path, doc: dict[str, Any]) -> None:
    """Two panels: accuracy and recall per window; labels spent against the budget line."""
    plt = pyplot()
    if plt is None:
        raise ImportError("plotting needs matplotlib: pip install 'streamal[demo]'")
    c = doc["config"]
    windows = doc["windows"]
    ends = [w["start"] + w["events"] for w in windows]

    def nan(values: Iterable[float | None]) -> list[float]:
        return [math.nan if v is None else v for v in values]

    with two_panels(plt, path, figsize=(10, 7)) as (curve, spend):
        curve.plot(ends, nan(w["accuracy"] for w in windows), marker=".", label="accuracy")
        curve.plot(
            ends,
            nan(w["recall"] for w in windows),
            marker=".",
            label=f"recall of {c['positive']!r}",
        )
        curve.set_ylim(-0.02, 1.02)
        curve.set_ylabel(f"per window of {c['window']:,} events")
        curve.grid(alpha=0.3)
        curve.legend(loc="lower right", fontsize="small")
        curve.set_title(
            f"{Path(c['data']).name}: {c['strategy']} / {c['measure']} / {c['model']}, budget "
            f"{c['budget']:.1%}, label delay {c['label_delay']} — accuracy "
            f"{_num(doc['accuracy'])}, F1 {_num(doc['f1'])}",
            fontsize="medium",
        )
        xs = [0, *ends]
        spent = [0, *(w["cumulative_requested"] for w in windows)]
        spend.plot(xs, spent, label="labels spent")
        spend.plot(
            xs,
            [c["budget"] * x for x in xs],
            linestyle="--",
            color="grey",
            label=f"budget ({c['budget']:.1%} of events seen)",
        )
        spend.set_xlabel("events")
        spend.set_ylabel("labels (cumulative)")
        spend.grid(alpha=0.3)
        spend.legend(loc="upper left", fontsize="small")


#: Learning-curve points a short stream still gets when ``--window`` is not given.
CURVE_POINTS = 10


def recorded_window(budget_window: int) -> int:
    """Events per window the run records when ``--window`` is not given: a twentieth of the
    budget window where that divides it, so the curve can be drawn at a multiple of it."""
    return budget_window // 20 if budget_window >= 20 and budget_window % 20 == 0 else budget_window


def curve_window(budget_window: int, recorded: int, events: int) -> int:
    """Events per window of the learning curve: the budget window's; on a stream shorter than
    ``CURVE_POINTS`` budget windows, the smallest multiple of ``recorded`` that gives at most
    that many points, so that a short stream (River's Phishing: 1,250 events) draws a curve,
    not two points.

    >>> curve_window(1000, 50, 20_000), curve_window(1000, 50, 1250), curve_window(1000, 50, 40)
    (1000, 150, 50)
    """
    if events >= CURVE_POINTS * budget_window:
        return budget_window
    return recorded * max(1, math.ceil(events / (CURVE_POINTS * recorded)))


def coarsen(windows: list[Window], group: int) -> list[Window]:
    """Each ``group`` consecutive windows merged into one.

    >>> fine = [Window(start=50 * i, events=50, correct=40) for i in range(25)]
    >>> [w.events for w in coarsen(fine, 3)]
    [150, 150, 150, 150, 150, 150, 150, 150, 50]
    """
    merged = []
    for i in range(0, len(windows), group):
        window = Window(start=windows[i].start)
        for w in windows[i : i + group]:
            window.add(w)
        merged.append(window)
    return merged


def _error(message: str) -> int:
    print(f"streamal evaluate: error: {message}", file=sys.stderr)
    return 2


def apply_preset(args: argparse.Namespace, settings: Settings) -> Settings:
    """Fill what the preset defines and the command line left open; flags and ``STREAMAL_*``
    variables always win (a setting from either is in ``settings.model_fields_set``)."""
    preset = PRESETS[args.preset]
    for name, value in (
        ("target", preset.target),
        ("time_column", preset.time_column),
        ("positive", preset.positive),
        ("cards_per_day", preset.cards_per_day),
        ("compromised_days", preset.compromised_days),
    ):
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.drop = tuple(dict.fromkeys((*args.drop, *preset.drop)))
    if args.label_delay is None:
        args.label_delay = LabelDelay.parse(preset.label_delay)
    if args.chargeback_negatives is None:
        args.chargeback_negatives = preset.chargeback_negatives
    if args.chargeback_delay is None and preset.chargeback_delay_days is not None:
        args.chargeback_delay = LabelDelay.parse(f"{preset.chargeback_delay_days:g}d")
    given = settings.model_fields_set
    return settings.model_copy(update={k: v for k, v in preset.settings.items() if k not in given})


def _options_error(args: argparse.Namespace, settings: Settings, delay: LabelDelay) -> str | None:
    """What the options alone say is wrong, found before anything is read; None if nothing."""
    # Without event times these would run on the wall clock of a run that replays hours of
    # traffic in seconds: 10 labels an hour bought 1 label on Phishing, and a month of alerts
    # was one day's k cards.
    if args.time_column is None:
        for given, needs in (
            (delay.seconds is not None, f"--label-delay {delay.text} is stream time"),
            (settings.labels_per_hour, "--labels-per-hour is reviewer capacity in stream time"),
            (
                settings.alert_cards_per_day,
                "--alert-cards-per-day counts cards per day of event time",
            ),
        ):
            if given:
                return f"{needs}: it needs --time-column"
    # Options that shape only part of a run are refused where that part does not run, rather
    # than accepted and ignored.
    if not args.cards_per_day:
        for flag, value in (
            ("--report-from", args.report_from),
            ("--report-to", args.report_to),
            ("--compromised-days", args.compromised_days),
        ):
            if value is not None:
                return f"{flag} shapes the daily card report: it needs --cards-per-day"
    if args.report_from and args.report_to and args.report_from > args.report_to:
        return f"--report-from {args.report_from} is after --report-to {args.report_to}"
    if args.chargeback_negatives and args.chargeback_delay is None:
        return "--chargeback-negatives labels what got no chargeback: it needs --chargeback-delay"
    if args.fraud_rate is not None and not args.data.startswith("synthetic:"):
        return "--fraud-rate is the fraud share of synthetic:transactions only"
    if args.plot is not None:
        if importlib.util.find_spec("matplotlib") is None:
            return "--plot needs matplotlib: pip install matplotlib (or 'streamal[demo]')"
        # matplotlib picks the format from the extension: an unknown one fails after the run,
        # and none at all saves to OUT.png while the summary names OUT.
        if args.plot.suffix.lower().removeprefix(".") not in file_formats():
            return (
                f"--plot {args.plot}: give a file name ending in .png "
                f"(or {', '.join('.' + k for k in sorted(file_formats() - {'png'}))})"
            )
    for out in (args.json, args.plot):
        if out is not None:
            try:
                out.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                return f"cannot write {out}: {exc}"
            if out.is_dir():  # found now, not after a run of an hour
                return f"cannot write {out}: it is a directory"
    return None


def _columns_error(source: Source, settings: Settings, data: str) -> str | None:
    """Settings the service takes that a replay cannot honour, or that name no column of the
    data: refused, not ignored (a --features of no column left the model no feature at all)."""
    if settings.classes:
        return (
            "--classes (STREAMAL_CLASSES): evaluate scores the positive class against the rest; "
            "choose it with --positive"
        )
    never = {*source.drop, settings.time_field, settings.id_field}
    unknown = [f for f in settings.features or () if f not in source.columns or f in never]
    if unknown:
        return (
            f"--features: {', '.join(map(repr, unknown))}: no feature column of {data} "
            "(not a column, or dropped, or the time or id field)"
        )
    # The labels of a replay come from three sources only: a weight for any other (reviewer,
    # say, as in production) would be accepted and never applied.
    named = {item.partition("=")[0].strip() for item in settings.source_weights}
    if named - set(LABEL_SOURCES):
        return (
            f"--source-weights: no labels come from {', '.join(sorted(named - set(LABEL_SOURCES)))}"
            f" in evaluate; its sources are {', '.join(LABEL_SOURCES)} (the bought labels)"
        )
    if settings.card_field:
        # The card features would be those of one card, None, or (without event times) of
        # every transaction at 1970-01-01, for ever in their windows.
        if settings.card_field not in source.columns:
            return f"--card-field: no column {settings.card_field!r} in {data}"
        if settings.time_field not in source.columns:
            return "--card-field: the card and terminal features need event times: --time-column"
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.preset is not None:
        settings = apply_preset(args, settings)
    delay: LabelDelay = args.label_delay or LabelDelay("0")
    refused = _options_error(args, settings, delay)
    if refused is not None:
        return _error(refused)
    if args.time_column is not None:
        settings = settings.model_copy(update={"time_field": args.time_column})
    console = Console()
    try:
        source = open_source(
            args.data,
            target=args.target,
            positive=args.positive,
            drop=args.drop,
            time_column=args.time_column,
            limit=args.limit,
            seed=settings.seed,
            fraud_rate=args.fraud_rate or 0.02,
        )
    except SourceError as exc:
        return _error(str(exc))
    refused = _columns_error(source, settings, args.data)
    if refused is not None:
        return _error(refused)
    window = args.window or recorded_window(settings.budget_window)
    if args.chargeback_delay is not None and args.chargeback_delay.seconds is None:
        return _error("--chargeback-delay is stream time (e.g. 7d)")
    if args.chargeback_delay is not None and "terminal_delay_days" not in settings.model_fields_set:
        # Every fraud's label has arrived a chargeback delay later: the terminal windows end
        # there (as the handbook's delay period), unless the user chose otherwise.
        days = args.chargeback_delay.seconds / 86400.0
        settings = settings.model_copy(update={"terminal_delay_days": days})
    try:
        learner = make_learner(source, settings)
    except (ValueError, TypeError) as exc:  # e.g. a measure that does not fit the model
        return _error(str(exc))
    if (args.chargeback_delay is not None or args.cards_per_day) and args.time_column is None:
        return _error("--chargeback-delay and --cards-per-day need --time-column")
    card_report = None
    if args.cards_per_day:
        if not settings.card_field:
            return _error("--cards-per-day needs --card-field (the card id column)")
        card_report = CardReport(
            k=args.cards_per_day,
            card_field=settings.card_field,
            amount_field=settings.amount_field,
            time_field=settings.time_field,
            first=args.report_from,
            last=args.report_to,
            compromised_days=args.compromised_days,
            # The handbook's training week's frauds: labelled a chargeback delay later.
            known_before_days=args.chargeback_delay.seconds / 86400.0
            if args.chargeback_delay is not None and args.chargeback_delay.seconds is not None
            else 7.0,
        )
    extra = {
        "chargeback": args.chargeback_delay,
        "card_report": card_report,
        "chargeback_negatives": bool(args.chargeback_negatives),
    }
    try:
        if console.is_terminal:
            with console.status("evaluating…") as status:
                report = evaluate(source, settings, delay, window, status, learner, **extra)
        else:
            report = evaluate(source, settings, delay, window, learner=learner, **extra)
    except SourceError as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        console.print("[yellow]interrupted")
        return 130
    if args.window is None:
        recorded = window
        window = curve_window(settings.budget_window, recorded, report.events)
        report.windows = coarsen(report.windows, window // recorded)
    doc = report_document(report, source, settings, delay, window)
    if card_report is not None:
        doc["fraud"] = card_report.document()
        doc["config"]["preset"] = args.preset
        doc["config"]["chargeback_delay"] = args.chargeback_delay and args.chargeback_delay.text
        doc["config"]["chargeback_negatives"] = bool(args.chargeback_negatives)
        doc["config"]["terminal_delay_days"] = settings.terminal_delay_days
        doc["config"]["compromised_days"] = args.compromised_days
    console.print(summary_table(doc))
    if card_report is not None:
        console.print(fraud_table(doc["fraud"]))
    try:
        if args.json is not None:
            args.json.write_text(json.dumps(doc, indent=2) + "\n")
            console.print(f"results: [bold]{args.json}[/]")
        if args.plot is not None:
            plot_document(args.plot, doc)
            console.print(f"plot: [bold]{args.plot}[/]")
    except OSError as exc:
        return _error(f"cannot write the output: {exc}")
    return 0
