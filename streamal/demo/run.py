"""``streamal demo``'s main: the live run, then the offline replays it is compared with."""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from streamal.adapters.kafka import ensure_service_topics
from streamal.config import Settings
from streamal.core.evaluator import Report, StreamClock, prequential
from streamal.core.messages import ClassSet
from streamal.core.simulator import DAY
from streamal.demo.cards import CardDays, CardRun, OfflineCards
from streamal.demo.live import Chargebacks, EventProducer, Ground, HttpServer, ScoreTally
from streamal.demo.options import Options, StreamInfo, demo_settings, stream_info
from streamal.demo.summary import card_tables, plot_cards, plot_curves, summary_tables
from streamal.demo.view import LiveView
from streamal.reviewer import SimulatedReviewer

__all__ = ["RANDOM", "LiveResult", "run"]

log = logging.getLogger("streamal.demo")


def _wait_until(
    done: Callable[[], bool], timeout: float, tick: Callable[[], None], what: str
) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            log.warning("demo: gave up waiting for %s after %.0f s", what, timeout)
            return False
        tick()
        time.sleep(0.1)
    return True


def _duration(seconds: float) -> str:
    if seconds >= DAY:
        return f"{seconds / DAY:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def _labels(registry: Any) -> Counter[tuple[str, str]]:
    """Labels the service has handled, by (source, outcome), from its Prometheus counters."""
    counts: Counter[tuple[str, str]] = Counter()
    for metric in registry.collect():
        if metric.name == "streamal_labels":
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = (sample.labels["source"], sample.labels["outcome"])
                    counts[key] += int(sample.value)
    return counts


def run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    options = Options(
        stream=args.stream,
        rate=args.rate,
        review_delay=args.review_delay,
        plot=args.plot,
        seed=settings.seed,
        events=args.events,
        fraud_rate=args.fraud_rate,
        window=args.window,
        customers=args.customers,
        terminals=args.terminals,
        days=args.days,
        fraud_scale=args.fraud_scale,
        cards_per_day=args.cards_per_day,
        chargeback_days=args.chargeback_days,
    )
    # kafka-python narrates connections and slow loop turns, matplotlib its font cache: both
    # would bury the display, so they are quiet unless asked for with --log-level debug.
    noisy = [logging.getLogger(name) for name in ("kafka", "matplotlib")]
    levels = [logger.level for logger in noisy]
    if settings.log_level != "debug":
        for logger in noisy:
            logger.setLevel(logging.ERROR)
    try:
        return _run(options, settings, console)
    except KeyboardInterrupt:
        if not console.is_terminal:
            console.line()
        console.print("[yellow]interrupted: stopped the producer, reviewer, service and broker")
        return 130
    finally:
        for logger, level in zip(noisy, levels, strict=True):
            logger.setLevel(level)


@dataclass
class LiveResult:
    """What the live run leaves for the summary."""

    report: Report
    cards: CardDays | None
    learned: dict[str, int]
    by_reason: dict[str, int]
    produced: int
    produced_rate: float
    scored_rate: float
    #: Stream seconds per event (card stream), to turn the review delay into stream time.
    stream_step: float
    seconds: float


def _run(options: Options, settings: Settings, console: Console) -> int:
    began = time.monotonic()
    with console.status("simulating the stream once to size it…"):
        info = stream_info(options)
    live = _live(options, info, settings, console)
    if isinstance(live, int):
        return live
    settings, result = live
    if options.cards:
        _cards_summary(options, info, settings, result, console)
    else:
        _synthetic_summary(options, settings, result, console)
    console.print(
        f"live: {result.produced:,} events produced at {result.produced_rate:,.0f}/s, scored at "
        f"{result.scored_rate:,.0f}/s; live run {result.seconds:.1f} s, total "
        f"{time.monotonic() - began:.1f} s."
    )
    return 0


def _live(
    options: Options, info: StreamInfo, settings: Settings, console: Console
) -> int | tuple[Settings, LiveResult]:
    """Broker, service, HTTP, producer, reviewer: run the stream through them and measure."""
    from streamal.adapters.http import create_app
    from streamal.service import Service

    with ExitStack() as stack:
        external = bool(settings.bootstrap_servers)
        if not external:
            from streamal.adapters.broker import EmbeddedBroker

            broker = EmbeddedBroker()
            try:
                # As a context: stopped at the end, and its log folder removed unless the run
                # failed (then the log is the first thing to read).
                stack.enter_context(broker)
            except (RuntimeError, OSError) as exc:
                console.print(
                    f"[red]cannot start the embedded broker: {exc} (log: {broker.log_path})"
                )
                return 1
            settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
            console.print(f"embedded broker (tansu) on [bold]{broker.bootstrap_servers}[/]")
        else:
            console.print(f"broker: [bold]{settings.bootstrap_servers}[/]")
        settings = demo_settings(settings, external, options.cards, options.k)
        if settings.create_topics:
            ensure_service_topics(settings)

        service = Service(settings)
        service.start()
        stack.callback(service.stop)
        http = HttpServer(
            create_app(service, manage_lifecycle=False),
            settings.http_host,
            settings.http_port,
            console,
        )
        stack.callback(http.stop)
        url = http.start()
        if url:
            console.print(f"metrics while it runs: [bold]{url}/metrics[/]  (also /v1/model)")
        if not service.wait_ready(30):
            console.print(f"[red]the service did not become ready in 30 s: {service.ready()}")
            return 1
        ready_at = time.monotonic()

        ground = Ground()
        cards = CardDays(options.k) if options.cards else None
        tally = ScoreTally(settings, ground, options.window, cards)
        tally.start()
        stack.callback(tally.stop)
        reviewer = SimulatedReviewer(settings, ground.label, options.review_delay, "reviewer")
        reviewer.start()
        stack.callback(reviewer.stop)
        chargebacks = None
        if options.cards and options.chargeback_seconds:
            chargebacks = Chargebacks(settings, options.chargeback_seconds, lambda: tally.time)
            chargebacks.start()
            stack.callback(chargebacks.stop)
        producer = EventProducer(settings, options, info, ground, chargebacks)
        stack.callback(producer.stop)
        registry = service.metrics.registry

        def labels() -> Counter[tuple[str, str]]:
            return _labels(registry)

        view = LiveView(
            options, info, settings, producer, tally, reviewer, labels, url, chargebacks
        )
        view.update()
        with Live(view, console=console, refresh_per_second=8, transient=False):
            producer.start()
            while producer.alive():
                view.update()
                time.sleep(0.1)
            if producer.error is not None:
                console.print(f"[red]producing transactions failed: {producer.error!r}")
                return 1
            view.phase = "waiting for the last scores…"
            _wait_until(
                lambda: tally.scored >= producer.produced,
                max(30.0, producer.produced / 500),
                view.update,
                "the last scores",
            )
            view.phase = "waiting for the reviewer…"
            _wait_until(
                lambda: reviewer.seen >= tally.requested and reviewer.outstanding == 0,
                options.review_delay + 15,
                view.update,
                "the reviewer",
            )
            if chargebacks is not None:
                view.phase = "waiting for the last chargebacks…"
                _wait_until(chargebacks.caught_up, 10, view.update, "the last chargebacks")
            sent = 0 if chargebacks is None else chargebacks.sent
            view.phase = "waiting for the service to learn the last labels…"
            _wait_until(
                lambda: _labels(registry).total() >= reviewer.answered + sent,
                15,
                view.update,
                "the last labels",
            )
            view.update()
            view.phase = "live run finished"
        if not console.is_terminal:
            console.line()  # a non-terminal Live leaves its last line open
        handled = _labels(registry)
        span = producer.last_time - producer.first_time
        result = LiveResult(
            report=tally.report(),
            cards=cards,
            learned={s: handled[(s, "learned")] for s in ("reviewer", "chargeback")},
            by_reason=dict(reviewer.by_reason),
            produced=producer.produced,
            produced_rate=producer.produced / max(1e-9, producer.finished_at - producer.started_at),
            scored_rate=tally.rate(),
            stream_step=span / (producer.produced - 1) if producer.produced > 1 else 0.0,
            seconds=time.monotonic() - ready_at,
        )
        # Stop the live system before the offline runs: they want the CPU.
    return settings, result


#: The baseline: the same budget, every label bought at random.
RANDOM = {
    "strategy": "random",
    "random_share": 1.0,
    "exploit_share": 0.0,
    "alert_cards_per_day": None,
}


def _cards_summary(
    options: Options, info: StreamInfo, settings: Settings, live: LiveResult, console: Console
) -> None:
    """Replay the card stream offline (the service's settings, then random) and report."""
    from streamal.service import build_learner

    assert live.cards is not None
    stream_speed = live.scored_rate * live.stream_step if not math.isnan(live.stream_step) else 0
    delay = options.review_delay * stream_speed
    delay_text = f"{options.review_delay:g} s ≈ {_duration(delay)} of stream time"
    runs = {"streamal (live)": CardRun.of(live.report, live.cards, live.learned, live.by_reason)}
    with console.status(f"replaying the stream offline (review delay {_duration(delay)})…"):
        for name, update in (("streamal (offline)", {}), ("random (offline)", RANDOM)):
            clock = StreamClock()
            learner = build_learner(settings.model_copy(update=update), ClassSet(), clock=clock)
            hooks = OfflineCards(info, options.k)
            report = prequential(
                hooks.stream(options.stream_pairs()),
                learner,
                window=options.window,
                label_delay_seconds=delay,
                clock=clock,
                spend_window=settings.budget_window,
                chargeback_delay_seconds=options.chargeback_seconds,
                on_event=hooks.on_event,
                on_label=hooks.on_label,
            )
            runs[name] = CardRun.of(report, hooks.cards, dict(hooks.learned), report.by_reason)
    for table in card_tables(options, info, settings, runs, delay_text):
        console.print(table)
    console.print(
        f"The offline runs replay the same stream with the same settings and features on the "
        f"stream's clock; the reviewer's {delay_text} (scoring rate × stream time per event)."
    )
    _plotted(plot_cards(options.plot, options, info, settings, runs), options.plot, console)


def _synthetic_summary(
    options: Options, settings: Settings, live: LiveResult, console: Console
) -> None:
    """Replay the synthetic stream offline (the service's settings, then random) and report."""
    from streamal.service import build_learner

    delay_events = round(options.review_delay * live.scored_rate)
    with console.status(f"replaying the stream offline (label delay {delay_events:,} events)…"):
        offline = {}
        for name, update in (("streamal (offline)", {}), ("random (offline)", RANDOM)):
            learner = build_learner(settings.model_copy(update=update), ClassSet())
            offline[name] = prequential(
                options.stream_pairs(), learner, label_delay=delay_events, window=options.window
            )
    runs = {"streamal (live)": live.report, **offline}
    live_learned = live.learned.get("reviewer", 0)
    learned_by = {"streamal (live)": live_learned, **{n: r.requested for n, r in offline.items()}}
    reasons = {"streamal (live)": live.by_reason, **{n: r.by_reason for n, r in offline.items()}}
    for table in summary_tables(options, settings, runs, learned_by, reasons):
        console.print(table)
    console.print(
        f"Offline runs use a label delay of {delay_events:,} events (review delay × scoring rate)."
    )
    _plotted(plot_curves(options.plot, options, settings, runs), options.plot, console)


def _plotted(drawn: bool, path: Path, console: Console) -> None:
    if drawn:
        console.print(f"curves: [bold]{path.resolve()}[/]")
    else:
        console.print(
            "[yellow]matplotlib is not installed, so no plot was drawn: "
            "pip install 'streamal[demo]' (or matplotlib)"
        )
