"""What the demo shows while it runs: progress bars and the recent figures."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from rich.console import Group, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.text import Text

from streamal.config import Settings
from streamal.demo.figures import finite_mean, fmt, ratio
from streamal.demo.live import Chargebacks, EventProducer, ScoreTally
from streamal.demo.options import RECENT_DAYS, Options, StreamInfo
from streamal.reviewer import SimulatedReviewer

__all__ = ["LiveView"]


class LiveView:
    """What the demo shows while it runs: progress bars and the recent figures."""

    def __init__(
        self,
        options: Options,
        info: StreamInfo,
        settings: Settings,
        producer: EventProducer,
        tally: ScoreTally,
        reviewer: SimulatedReviewer,
        labels: Callable[[], Counter[tuple[str, str]]],
        url: str | None,
        chargebacks: Chargebacks | None = None,
    ) -> None:
        self.options = options
        self.info = info
        self.producer = producer
        self.tally = tally
        self.reviewer = reviewer
        self.labels = labels
        self.chargebacks = chargebacks
        self.url = url
        self.phase = "producing…"
        self.budget_labels = max(1, round(settings.budget * info.events))
        self._figures = Text()
        self._figures_at = 0.0
        self.progress = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=20),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            auto_refresh=False,
        )
        add = self.progress.add_task
        n = info.events
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
        # A chargeback for a fraud the reviewer has already labelled is not learned twice.
        handled = self.labels()
        learned = sum(n for (_, outcome), n in handled.items() if outcome == "learned")
        note = f"{r.outstanding} with the reviewer"
        total = t.requested
        if self.chargebacks is not None:
            sent = self.chargebacks.sent
            note = f"reviewer {r.outstanding}, chargebacks {sent:,}"
            total += sent - handled[("chargeback", "duplicate")]
        self.progress.update(self._learned, completed=learned, total=max(1, total), note=note)

    def _card_figures(self) -> Text:
        """Yesterday's and the running card figures; recomputed at most twice a second."""
        now = time.monotonic()
        cards = self.tally.cards
        if cards is None or now - self._figures_at < 0.5:
            return self._figures
        self._figures_at = now
        k = self.options.k
        closed = [r for r in cards.results() if r.day < self.tally.day]
        text = Text(f"simulated day {self.producer.day + 1} of {self.options.days} produced\n")
        if not closed:
            text.append(f"card precision@{k}: after the first simulated day")
            self._figures = text
            return text
        last = closed[-1]
        text.append(f"day {last.day + 1:<3} card precision@{k} ")
        text.append(fmt(last.precision), style="bold")
        text.append(f" (best {fmt(last.best)})  fraud recall {fmt(last.recall, pct=True)}")
        text.append(f" of {last.new_fraud_cards} cards\n")
        text.append(f"{len(closed)} days: card precision@{k} ")
        text.append(fmt(finite_mean([d.precision for d in closed])), style="bold")
        text.append(
            f" (mean)  fraud recall {fmt(finite_mean([d.recall for d in closed]), pct=True)}"
        )
        roc, ap = cards.ranking(max(0, self.tally.day - RECENT_DAYS + 1))
        text.append(f"\nlast {RECENT_DAYS} days: AUC {fmt(roc)}, average precision {fmt(ap)}")
        self._figures = text
        return text

    def __rich__(self) -> RenderableType:
        line = Text()
        if self.options.cards:
            line.append_text(self._card_figures())
        else:
            recent = list(self.tally.recent)
            correct = sum(c for c, _, _ in recent)
            frauds = sum(f for _, f, _ in recent)
            caught = sum(k for _, _, k in recent)
            line.append(f"recent accuracy (last {len(recent):,} scored): ")
            line.append(fmt(ratio(correct, len(recent))), style="bold")
            line.append(f"   fraud recall: {fmt(ratio(caught, frauds), pct=True)} ")
            line.append(f"({caught}/{frauds})")
        if self.url:
            line.append(f"\nmetrics: {self.url}/metrics", style="dim")
        line.append(f"\n{self.phase}", style="dim")
        return Group(self.progress, line)
