"""``streamal demo``: the whole system on one machine, measured end to end.

It starts an embedded broker (unless one is configured), produces a synthetic, imbalanced,
drifting transaction stream whose ground truth only the demo knows, runs the service and its HTTP
app, and answers review requests with a simulated reviewer. Accuracy is measured honestly: every
score read back from the scores topic is joined with the true label of its event. At the end the
same stream is replayed offline through the pure core, once with the service's settings (a
like-for-like check of the live run) and once spending the whole budget at random (the baseline
that active learning has to beat).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from streamal.adapters.kafka import ensure_topics, make_consumer, make_producer
from streamal.config import Settings
from streamal.core.evaluator import Report, Window, prequential
from streamal.core.messages import ClassSet
from streamal.core.synthetic import drifting_transactions
from streamal.reviewer import SimulatedReviewer, assign_from_end

__all__ = ["configure", "run"]

log = logging.getLogger("streamal.demo")

TOPIC_FIELDS = ("topic_transactions", "topic_scores", "topic_reviews", "topic_labels")
REASONS = ("uncertainty", "random", "exploit")


# ---------------------------------------------------------------------------------- options


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1 (exclusive)")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Demo options; the service settings (``--budget``, ``--seed``, ...) are added by the CLI."""
    group = parser.add_argument_group("demo")
    group.add_argument(
        "--events", type=_positive_int, default=20_000, help="Transactions to produce [20000]."
    )
    group.add_argument(
        "--rate",
        type=_non_negative,
        default=2000.0,
        help="Transactions per second; 0 = as fast as possible [2000].",
    )
    group.add_argument(
        "--review-delay",
        type=_non_negative,
        default=0.5,
        help="Seconds the simulated reviewer takes to answer [0.5].",
    )
    group.add_argument(
        "--fraud-rate", type=_fraction, default=0.02, help="Share of fraud in the stream [0.02]."
    )
    group.add_argument(
        "--window",
        type=_positive_int,
        default=2000,
        help="Events per window of the summary and the learning curves [2000].",
    )
    group.add_argument(
        "--plot",
        type=Path,
        default=Path("streamal-demo.png"),
        help="Where to write the learning curves (PNG) [streamal-demo.png].",
    )


@dataclass(frozen=True, slots=True)
class Options:
    events: int
    rate: float
    review_delay: float
    fraud_rate: float
    window: int
    plot: Path
    seed: int

    @property
    def drift_at(self) -> int:
        return self.events // 2

    def stream(self, start_time: float = 1_700_000_000.0) -> Iterator[tuple[dict[str, Any], bool]]:
        """The demo's stream; the same options give the same events and labels."""
        return drifting_transactions(
            self.events,
            fraud_rate=self.fraud_rate,
            drift_at=self.drift_at,
            seed=self.seed,
            start_time=start_time,
            events_per_second=self.rate or 2000.0,
        )


def demo_settings(settings: Settings, external: bool) -> Settings:
    """The service's settings for a demo run: quick group joins, a fresh group, binary classes.

    Against a configured broker, topics the user did not name get a per-run suffix, so that old
    records never mix into the measurement.
    """
    given = settings.model_fields_set
    run_id = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "consumer_group": f"{settings.consumer_group}-demo-{run_id}",
        "classes": [],  # the synthetic stream is fraud / not fraud
    }
    if "session_timeout_ms" not in given:
        update["session_timeout_ms"] = 2000
    if "heartbeat_interval_ms" not in given:
        update["heartbeat_interval_ms"] = 500
    if external and settings.create_topics:
        for name in (*TOPIC_FIELDS, "topic_dead_letter"):
            if name not in given:
                update[name] = f"{getattr(settings, name)}-demo-{run_id}"
    return settings.model_copy(update=update)


# ---------------------------------------------------------------------------------- live parts


class Ground:
    """The ground truth of every produced event: its position in the stream and its class."""

    def __init__(self) -> None:
        self.events: dict[str, tuple[int, bool]] = {}

    def label(self, event_id: str) -> Hashable | None:
        found = self.events.get(event_id)
        return None if found is None else found[1]


class EventProducer:
    """Produces the synthetic stream at ``rate`` events/s in a thread, recording the truth."""

    def __init__(self, settings: Settings, options: Options, ground: Ground) -> None:
        self.settings = settings
        self.options = options
        self.ground = ground
        self.produced = 0
        self.started_at = self.finished_at = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(10)

    def _run(self) -> None:
        o = self.options
        producer = make_producer(self.settings)
        topic = self.settings.topic_transactions
        truth = self.ground.events
        try:
            self.started_at = time.monotonic()
            for i, (event, fraud) in enumerate(o.stream(start_time=time.time())):
                if i % 50 == 0:
                    if self._stop.is_set():
                        break
                    if o.rate > 0:
                        ahead = self.started_at + i / o.rate - time.monotonic()
                        if ahead > 0 and self._stop.wait(ahead):
                            break
                event_id = event["event_id"]
                truth[event_id] = (i, fraud)  # before the send: a score may come back at once
                producer.send(topic, key=event_id.encode(), value=json.dumps(event).encode())
                self.produced += 1
            producer.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.error = exc
        finally:
            self.finished_at = time.monotonic()
            producer.close(timeout=5)


class ScoreTally:
    """Reads the scores topic and joins every score with its event's true label.

    Windows are by the event's position in the stream, like the offline evaluator's, so the
    live and offline learning curves line up window by window.
    """

    def __init__(self, settings: Settings, ground: Ground, window: int) -> None:
        self.settings = settings
        self.ground = ground
        self.window = window
        self.windows: dict[int, Window] = {}
        self.scored = 0
        self.requested = 0
        self.unknown = 0
        self.first_at = self.last_at = 0.0
        #: (correct, fraud, caught) of the most recent scores, for the live display.
        self.recent: deque[tuple[bool, bool, bool]] = deque(maxlen=window)
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-scores", daemon=True)
        self._consumer: Any = None

    def start(self) -> None:
        self._consumer = make_consumer(
            self.settings, group_id=None, fetch_max_wait_ms=50, max_poll_records=2000
        )
        try:
            assign_from_end(self._consumer, self.settings.topic_scores)
        except BaseException:
            self._consumer.close(autocommit=False)
            self._consumer = None
            raise
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(5)
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    def rate(self) -> float:
        """Scores per second between the first and the last one read."""
        span = self.last_at - self.first_at
        return (self.scored - 1) / span if span > 0 and self.scored > 1 else 0.0

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self._consumer.poll(timeout_ms=100)
            except Exception:  # noqa: BLE001 - keep measuring through a broker hiccup
                log.exception("reading scores failed; retrying in 1 s")
                self._stop.wait(1.0)
                continue
            for records in batch.values():
                for record in records:
                    self._add(record.value)

    def _add(self, raw: bytes) -> None:
        try:
            body = json.loads(raw)
            event_id = str(body["event_id"])
            proba = body["probabilities"]
            predicted = float(proba["true"]) > float(proba["false"])
        except (ValueError, KeyError, TypeError):
            self.unknown += 1
            return
        found = self.ground.events.get(event_id)
        if found is None:
            self.unknown += 1
            return
        if event_id in self._seen:  # at-least-once delivery: count each event once
            return
        self._seen.add(event_id)
        index, fraud = found
        start = index // self.window * self.window
        w = self.windows.get(start)
        if w is None:
            w = self.windows[start] = Window(start=start)
        correct = predicted == fraud
        w.events += 1
        w.correct += correct
        if fraud:
            w.positives += 1
            w.true_positives += predicted
        if body.get("label_requested"):
            w.requested += 1
            self.requested += 1
        self.recent.append((correct, fraud, fraud and predicted))
        now = time.monotonic()
        if not self.scored:
            self.first_at = now
        self.last_at = now
        self.scored += 1

    def report(self) -> Report:
        """The live figures in the offline evaluator's shape."""
        windows = [self.windows[k] for k in sorted(self.windows)]
        return Report(events=self.scored, requested=self.requested, windows=windows)


class HttpServer:
    """The service's FastAPI app under uvicorn in a background thread (``/metrics`` et al.)."""

    def __init__(self, app: Any, host: str, port: int, console: Console) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.console = console
        self.url: str | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def _bind(self, port: int) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return sock

    def start(self) -> str | None:
        """Bind (falling back to a free port if taken) and serve; returns the base URL."""
        import uvicorn

        try:
            sock = self._bind(self.port)
        except OSError as exc:
            if self.port == 0:
                self.console.print(f"[yellow]HTTP disabled: cannot bind {self.host}: {exc}")
                return None
            try:
                sock = self._bind(0)
            except OSError:
                self.console.print(f"[yellow]HTTP disabled: cannot bind {self.host}: {exc}")
                return None
            self.console.print(
                f"[yellow]port {self.port} is in use; serving HTTP on a free port instead"
            )
        self._sock = sock
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=port,
            log_config=None,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="demo-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# ---------------------------------------------------------------------------------- display


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


def _fmt(value: float, pct: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:.0f}%" if pct else f"{value:.3f}"


class LiveView:
    """What the demo shows while it runs: progress bars and the recent accuracy."""

    def __init__(
        self,
        options: Options,
        settings: Settings,
        producer: EventProducer,
        tally: ScoreTally,
        reviewer: SimulatedReviewer,
        learned: Callable[[], int],
        url: str | None,
    ) -> None:
        self.options = options
        self.producer = producer
        self.tally = tally
        self.reviewer = reviewer
        self.learned = learned
        self.url = url
        self.phase = "producing…"
        self.budget_labels = max(1, round(settings.budget * options.events))
        self.progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            auto_refresh=False,
        )
        add = self.progress.add_task
        n = options.events
        self._produced: TaskID = add("events produced", total=n, note="")
        self._scored: TaskID = add("events scored", total=n, note="")
        self._requested: TaskID = add("labels requested", total=self.budget_labels, note="")
        self._learned: TaskID = add("labels learned", total=1, note="")

    def update(self) -> None:
        p, t, r = self.producer, self.tally, self.reviewer
        elapsed = (p.finished_at or time.monotonic()) - p.started_at if p.started_at else 0.0
        rate = f"{p.produced / elapsed:,.0f}/s" if elapsed > 0 else ""
        self.progress.update(self._produced, completed=p.produced, note=rate)
        behind = p.produced - t.scored
        self.progress.update(self._scored, completed=t.scored, note=f"{behind:,} behind")
        self.progress.update(
            self._requested, completed=t.requested, note=f"of budget {self.budget_labels:,}"
        )
        learned = self.learned()
        self.progress.update(
            self._learned,
            completed=learned,
            total=max(1, t.requested),
            note=f"{r.outstanding} with the reviewer",
        )

    def __rich__(self) -> RenderableType:
        recent = list(self.tally.recent)
        correct = sum(c for c, _, _ in recent)
        frauds = sum(f for _, f, _ in recent)
        caught = sum(k for _, _, k in recent)
        line = Text()
        line.append(f"recent accuracy (last {len(recent):,} scored): ")
        line.append(_fmt(_ratio(correct, len(recent))), style="bold")
        line.append(f"   fraud recall: {_fmt(_ratio(caught, frauds), pct=True)} ")
        line.append(f"({caught}/{frauds})")
        if self.url:
            line.append(f"\nmetrics: {self.url}/metrics", style="dim")
        line.append(f"\n{self.phase}", style="dim")
        return Group(self.progress, line)


# ---------------------------------------------------------------------------------- summary


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


def _header(name: str) -> str:
    """``streamal (live)`` over two lines, so that the tables fit 80 columns."""
    return name.replace(" (", "\n(")


def _recall_text(w: Window) -> str:
    return f"{_fmt(w.recall, pct=True)} ({w.true_positives}/{w.positives})"


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
    row("labels requested", lambda _, r: f"{r.requested:,} ({_ratio(r.requested, r.events):.1%})")
    for reason in REASONS:
        overall.add_row(f"  {reason}", *(f"{by_reason[n].get(reason, 0):,}" for n in names))
    row("labels learned", lambda n, _: f"{learned[n]:,}")
    row("accuracy", lambda _, r: _fmt(_total(r.windows).accuracy))
    row("fraud recall", lambda _, r: _recall_text(_total(r.windows)))
    after = options.drift_at
    row("accuracy after drift", lambda _, r: _fmt(_total(r.windows, after).accuracy))
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
            cells.append("" if w is None else f"{_fmt(w.accuracy)} / {_fmt(w.recall, pct=True)}")
        curves.add_row(f"{start:,}–{end:,}{drift}", str(first.positives), *cells)
    return [overall, curves]


def plot_curves(path: Path, options: Options, settings: Settings, runs: dict[str, Report]) -> bool:
    """Write the learning curves as a PNG; ``False`` (with nothing written) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    styles = {
        "streamal (live)": {"color": "tab:blue", "marker": "o"},
        "streamal (offline)": {"color": "tab:blue", "linestyle": "--", "marker": "."},
        "random (offline)": {"color": "tab:orange", "marker": "s"},
    }
    fig, (acc_ax, rec_ax) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    try:
        for name, report in runs.items():
            xs = [w.start + w.events / 2 for w in report.windows]
            style = styles.get(name, {})
            acc_ax.plot(xs, [w.accuracy for w in report.windows], label=name, **style)
            rec_ax.plot(xs, [w.recall for w in report.windows], label=name, **style)
        reference = next(iter(runs.values())).windows
        acc_ax.plot(
            [w.start + w.events / 2 for w in reference],
            [1 - _ratio(w.positives, w.events) for w in reference],
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
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return True


# ---------------------------------------------------------------------------------- run


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


def run(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    options = Options(
        events=args.events,
        rate=args.rate,
        review_delay=args.review_delay,
        fraud_rate=args.fraud_rate,
        window=args.window,
        plot=args.plot,
        seed=settings.seed,
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


def _run(options: Options, settings: Settings, console: Console) -> int:
    from streamal.adapters.http import create_app
    from streamal.service import Service, build_learner

    began = time.monotonic()
    with ExitStack() as stack:
        external = bool(settings.bootstrap_servers)
        if not external:
            from streamal.adapters.broker import EmbeddedBroker

            broker = EmbeddedBroker()
            stack.callback(broker.stop)
            try:
                broker.start()
            except (RuntimeError, OSError) as exc:
                console.print(f"[red]cannot start the embedded broker: {exc}")
                return 1
            settings = settings.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
            console.print(f"embedded broker (tansu) on [bold]{broker.bootstrap_servers}[/]")
        else:
            console.print(f"broker: [bold]{settings.bootstrap_servers}[/]")
        settings = demo_settings(settings, external)
        names = [getattr(settings, f) for f in (*TOPIC_FIELDS, "topic_dead_letter")]
        if settings.create_topics:
            ensure_topics(settings, names, settings.topic_partitions)

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
        tally = ScoreTally(settings, ground, options.window)
        tally.start()
        stack.callback(tally.stop)
        reviewer = SimulatedReviewer(settings, ground.label, options.review_delay)
        reviewer.start()
        stack.callback(reviewer.stop)
        producer = EventProducer(settings, options, ground)
        stack.callback(producer.stop)

        def learned() -> int:
            return int(service.learner.model.n_learned)

        view = LiveView(options, settings, producer, tally, reviewer, learned, url)
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
            view.phase = "waiting for the service to learn the last labels…"
            _wait_until(lambda: learned() >= reviewer.answered, 15, view.update, "the last labels")
            view.update()
            view.phase = "live run finished"
        if not console.is_terminal:
            console.line()  # a non-terminal Live leaves its last line open
        live_seconds = time.monotonic() - ready_at
        live = tally.report()
        live_learned = learned()
        live_reasons = dict(reviewer.by_reason)
        scored_rate = tally.rate()
        produced_rate = producer.produced / max(1e-9, producer.finished_at - producer.started_at)
        # Stop the live system before the offline runs: they want the CPU.
        stack.close()

    delay_events = round(options.review_delay * scored_rate)
    with console.status(f"replaying the stream offline (label delay {delay_events:,} events)…"):
        offline = {}
        for name, update in (
            ("streamal (offline)", {}),
            ("random (offline)", {"random_share": 1.0}),
        ):
            learner = build_learner(settings.model_copy(update=update), ClassSet())
            offline[name] = prequential(
                options.stream(), learner, label_delay=delay_events, window=options.window
            )
    runs = {"streamal (live)": live, **offline}
    learned_by = {"streamal (live)": live_learned, **{n: r.requested for n, r in offline.items()}}
    reasons = {"streamal (live)": live_reasons, **{n: r.by_reason for n, r in offline.items()}}
    for table in summary_tables(options, settings, runs, learned_by, reasons):
        console.print(table)
    console.print(
        f"live: {producer.produced:,} events produced at {produced_rate:,.0f}/s, scored at "
        f"{scored_rate:,.0f}/s; live run {live_seconds:.1f} s, total "
        f"{time.monotonic() - began:.1f} s. Offline runs use a label delay of "
        f"{delay_events:,} events (review delay × scoring rate)."
    )
    if plot_curves(options.plot, options, settings, runs):
        console.print(f"learning curves: [bold]{options.plot.resolve()}[/]")
    else:
        console.print(
            "[yellow]matplotlib is not installed, so no plot was drawn: "
            "pip install 'streamal[demo]' (or matplotlib)"
        )
    return 0
