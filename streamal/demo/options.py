"""The demo's options, its stream, and the service settings a demo run uses."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamal.argtypes import fraction, non_negative, positive_int
from streamal.config import Settings
from streamal.core.simulator import DAY, SimulatorConfig, simulate
from streamal.core.synthetic import drifting_transactions

__all__ = [
    "AMOUNT",
    "CARD",
    "REASONS",
    "RECENT_DAYS",
    "STREAMS",
    "TERMINAL",
    "TOPIC_FIELDS",
    "Options",
    "StreamInfo",
    "configure",
    "demo_settings",
    "stream_info",
]

TOPIC_FIELDS = ("topic_transactions", "topic_scores", "topic_reviews", "topic_labels")
REASONS = ("uncertainty", "random", "exploit")
STREAMS = ("cards", "synthetic")
#: The simulator's raw fields (the card is the customer's).
CARD, TERMINAL, AMOUNT = "customer_id", "terminal_id", "amount"
#: AUC and average precision are over this many last simulated days.
RECENT_DAYS = 7


# ---------------------------------------------------------------------------------- options


def configure(parser: argparse.ArgumentParser) -> None:
    """Demo options; the service settings (``--budget``, ``--seed``, ...) are added by the CLI."""
    group = parser.add_argument_group("demo")
    group.add_argument(
        "--stream",
        choices=STREAMS,
        default="cards",
        help="cards: the card-fraud simulator, judged by card precision@k per day; synthetic: "
        "drifting feature vectors, judged by accuracy per window [cards].",
    )
    group.add_argument(
        "--rate",
        type=non_negative,
        default=2000.0,
        help="Transactions per second; 0 = as fast as possible [2000].",
    )
    group.add_argument(
        "--review-delay",
        type=non_negative,
        default=0.5,
        help="Seconds (wall clock) the simulated reviewer takes to answer [0.5].",
    )
    group.add_argument(
        "--plot",
        type=Path,
        default=Path("streamal-demo.png"),
        help="Where to write the curves (PNG) [streamal-demo.png].",
    )
    cards = parser.add_argument_group("demo: --stream cards")
    cards.add_argument("--customers", type=positive_int, default=500, help="Simulated cards [500].")
    cards.add_argument(
        "--terminals", type=positive_int, default=1000, help="Simulated terminals [1000]."
    )
    cards.add_argument(
        "--days",
        type=positive_int,
        default=30,
        help="Simulated days; a card pays about twice a day [30].",
    )
    cards.add_argument(
        "--fraud-scale",
        type=non_negative,
        default=2.0,
        help="Compromised terminals and cards a day, times the handbook's (scaled to the "
        "population). A month is all build-up, so 2 brings it near the handbook's steady "
        "0.9%% fraud [2].",
    )
    cards.add_argument(
        "--cards-per-day",
        type=positive_int,
        help="k of card precision@k: cards the team reviews a day [customers / 50, like the "
        "handbook's 100 of 5,000].",
    )
    cards.add_argument(
        "--chargeback-days",
        type=non_negative,
        default=7.0,
        help="Every fraud's label also arrives (source chargeback) this many simulated days "
        "later; 0 = no chargebacks [7].",
    )
    synthetic = parser.add_argument_group("demo: --stream synthetic")
    synthetic.add_argument(
        "--events", type=positive_int, default=20_000, help="Transactions to produce [20000]."
    )
    synthetic.add_argument(
        "--fraud-rate", type=fraction, default=0.02, help="Share of fraud in the stream [0.02]."
    )
    synthetic.add_argument(
        "--window",
        type=positive_int,
        default=2000,
        help="Events per window of the summary and the learning curves [2000].",
    )


@dataclass(frozen=True, slots=True)
class Options:
    """The demo's own options (the service's are :class:`Settings`)."""

    stream: str
    rate: float
    review_delay: float
    plot: Path
    seed: int
    events: int = 20_000
    fraud_rate: float = 0.02
    window: int = 2000
    customers: int = 500
    terminals: int = 1000
    days: int = 30
    fraud_scale: float = 2.0
    cards_per_day: int | None = None
    chargeback_days: float = 7.0

    @property
    def cards(self) -> bool:
        return self.stream == "cards"

    @property
    def drift_at(self) -> int:
        return self.events // 2

    @property
    def k(self) -> int:
        """Cards reviewed a day: the handbook reviews 100 of its 5,000 cards."""
        return self.cards_per_day or max(1, round(self.customers / 50))

    @property
    def chargeback_seconds(self) -> float | None:
        return self.chargeback_days * DAY if self.chargeback_days > 0 else None

    def simulator(self) -> SimulatorConfig:
        """The scaled-down card simulator, its compromises per day times ``fraud_scale``."""
        base = SimulatorConfig.scaled(self.customers, self.terminals)
        return SimulatorConfig.scaled(
            self.customers,
            self.terminals,
            days=self.days,
            seed=self.seed,
            terminals_compromised_per_day=base.terminals_compromised_per_day * self.fraud_scale,
            customers_compromised_per_day=base.customers_compromised_per_day * self.fraud_scale,
        )

    def stream_pairs(
        self, start_time: float = 1_700_000_000.0
    ) -> Iterator[tuple[dict[str, Any], bool]]:
        """The demo's ``(event, fraud)`` stream; the same options give the same stream.

        ``start_time`` places the synthetic stream; the simulator has its own calendar.
        """
        if self.cards:
            return ((event, truth.fraud) for event, truth in simulate(self.simulator()))
        return drifting_transactions(
            self.events,
            fraud_rate=self.fraud_rate,
            drift_at=self.drift_at,
            seed=self.seed,
            start_time=start_time,
            events_per_second=self.rate or 2000.0,
        )


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a first pass over the stream tells: its size, its fraud and its calendar."""

    events: int
    frauds: int
    start_epoch: float = 0.0

    def day(self, timestamp: float) -> int:
        return int((timestamp - self.start_epoch) // DAY)


def stream_info(options: Options) -> StreamInfo:
    """Count the stream (the simulator is cheap: ~0.2 s for 25,000 events) for the display."""
    if not options.cards:
        return StreamInfo(options.events, round(options.events * options.fraud_rate))
    config = options.simulator()
    events = frauds = 0
    for _, truth in simulate(config):
        events += 1
        frauds += truth.fraud
    return StreamInfo(events, frauds, config.start_epoch)


def demo_settings(
    settings: Settings, external: bool, cards: bool = False, alert_cards: int | None = None
) -> Settings:
    """The service's settings for a demo run: quick group joins, a fresh group, binary classes.

    On the card stream, unless the user chose otherwise: the per-card and per-terminal features
    on the simulator's fields, and the ``fraud`` strategy (random, uncertainty, and the daily
    alert lane of ``alert_cards`` cards a day, the k the figures are judged by). Against
    a configured broker, topics the user did not name get a per-run suffix, so that old records
    never mix into the measurement.
    """
    given = settings.model_fields_set
    run_id = uuid.uuid4().hex[:8]
    update: dict[str, Any] = {
        "consumer_group": f"{settings.consumer_group}-demo-{run_id}",
        "classes": [],  # fraud / not fraud
    }
    if "session_timeout_ms" not in given:
        update["session_timeout_ms"] = 2000
    if "heartbeat_interval_ms" not in given:
        update["heartbeat_interval_ms"] = 500
    if cards:
        defaults: dict[str, Any] = {
            "card_field": CARD,
            "terminal_field": TERMINAL,
            "amount_field": AMOUNT,
            "strategy": "fraud",
        }
        if alert_cards:
            defaults["alert_cards_per_day"] = alert_cards
        update.update({k: v for k, v in defaults.items() if k not in given})
    if external and settings.create_topics:
        for name in (*TOPIC_FIELDS, "topic_dead_letter"):
            if name not in given:
                update[name] = f"{getattr(settings, name)}-demo-{run_id}"
    return settings.model_copy(update=update)
