"""Card transactions with fraud, modelled on the open card-fraud handbook's simulator.

Fraud teams see a card, a terminal, an amount and a time, and the signal lives in history: how
this card usually spends, how risky this terminal has been lately. This generator produces such
a stream, written from the description in Le Borgne, Siblini, Lebichot and Bontempi,
*Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook* (2022),
chapter 3 (no code from the handbook is used):

* **Customers** live at a point of a 100 x 100 grid and have habits: a mean amount (uniform
  5-100), a spread (half the mean) and a mean number of transactions a day (uniform 0-4).
* **Terminals** sit at random points of the same grid. A customer pays only at terminals within
  ``radius`` of home (one at random each time); a customer with none never pays.
* **Each day** a customer makes a Poisson number of transactions. The time of day is normal
  around noon (sd 20,000 s, whole seconds); draws outside the day are dropped, as in the
  handbook, so days hold ~3 % fewer transactions than the Poisson means add up to. The amount is
  normal with the customer's mean and spread (a negative draw is redrawn uniform in
  ``[0, 2 x mean]``), rounded to the cent.
* **Fraud**, three scenarios (the first that applies, checked from 3 down to 1, names it):

  1. any amount above ``fraud_amount`` (220) is fraud;
  2. each day ``terminals_compromised_per_day`` (2) random terminals are compromised: all their
     transactions that day and the following ``terminal_compromise_days - 1`` (28 days in all)
     are fraud;
  3. each day ``customers_compromised_per_day`` (3) random customers are compromised for
     ``customer_compromise_days`` (14): each of their transactions in that window is, with
     probability ``customer_fraud_share`` (1/3), fraud with its amount multiplied by
     ``customer_fraud_multiplier`` (5). The handbook picks exactly a third of the window's
     transactions; a coin per transaction gives the same share without looking ahead.

**Target rates** (defaults): the handbook's published dataset (183 days from 2018-04-01) has
0.837 % fraud, scenario counts 973 / 9,077 / 4,631 (shares 6.6 % / 61.8 % / 31.5 %). Scenarios 2
and 3 need 28 days to build up; from day 28 on its rate is steady at 0.887 % with shares
6.2 % / 62.7 % / 31.0 %. This simulator aims at the same: ≈ 0.84 % over 183 days from the start
(:data:`TARGET_FRAUD_RATE_FROM_START`), ≈ 0.88 % from day 28 (:data:`TARGET_FRAUD_RATE`), shares
≈ 6.5 % / 62.5 % / 31 % (:data:`TARGET_SCENARIO_SHARES`). Measured with the defaults and seed 42:
1,780,387 transactions, 0.839 % fraud (1,076 / 9,183 / 4,685: 7.2 % / 61.4 % / 31.4 %); from
day 28, 0.885 % (6.8 % / 63.1 % / 30.1 %). A scaled-down run keeps these rates when the
compromises per day scale with the population (:meth:`SimulatorConfig.scaled`; fractional
counts are allowed: 0.4 a day is one every 2.5 days), with more sampling noise.

**Streaming:** profiles are drawn once (memory in the population size), then one day at a time is
generated, sorted by time and yielded; nothing beyond one day and the live compromises is held.
Every day's draws come from a generator seeded by ``(seed, day)``, so the same seed gives the
same stream and a longer run starts with exactly the shorter run.

Events carry the raw columns only: ``event_id`` (``tx-<n>``, ``n`` counting from 0 in time
order), ``timestamp`` (epoch seconds as a float, UTC: cheap to produce and to compare),
``customer_id``, ``terminal_id`` and ``amount``. The ground truth comes separately, as a
:class:`Truth`, so it cannot leak into the features.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "TARGET_FRAUD_RATE",
    "TARGET_FRAUD_RATE_FROM_START",
    "TARGET_SCENARIO_SHARES",
    "TRUTHS",
    "Customer",
    "SimulatorConfig",
    "TransactionSimulator",
    "Truth",
    "day_of",
    "simulate",
]

#: Steady fraud rate once scenarios 2 and 3 have built up (after the first 28 days).
TARGET_FRAUD_RATE = 0.0088
#: Fraud rate of a 183-day run from day 0, build-up included (the handbook's dataset: 0.837 %).
TARGET_FRAUD_RATE_FROM_START = 0.0084
#: Share of the frauds from each scenario (handbook: 973 / 9,077 / 4,631 of 14,681).
TARGET_SCENARIO_SHARES = {1: 0.065, 2: 0.625, 3: 0.31}

GRID = 100.0
DAY = 86_400
_NOON, _TIME_SD = DAY / 2, 20_000.0


class Truth(NamedTuple):
    """Ground truth of one transaction: fraud or not, and which scenario (0: none, 1, 2, 3)."""

    fraud: bool
    scenario: int


#: The four possible truths, shared rather than built per transaction.
TRUTHS = (Truth(False, 0), Truth(True, 1), Truth(True, 2), Truth(True, 3))


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Population, fraud scenarios and seed; the defaults are the handbook's settings.

    Examples
    --------
    >>> SimulatorConfig(days=7).end_date.isoformat()
    '2018-04-08'
    """

    n_customers: int = 5000
    n_terminals: int = 10_000
    days: int = 183
    start_date: dt.date = dt.date(2018, 4, 1)
    #: Customers pay at terminals within this distance of home (grid units).
    radius: float = 5.0
    terminals_compromised_per_day: float = 2.0
    terminal_compromise_days: int = 28
    customers_compromised_per_day: float = 3.0
    customer_compromise_days: int = 14
    #: Share of a compromised customer's transactions that are fraud.
    customer_fraud_share: float = 1.0 / 3.0
    customer_fraud_multiplier: float = 5.0
    #: Scenario 1: amounts strictly above this are fraud.
    fraud_amount: float = 220.0
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("n_customers", "n_terminals", "days"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.radius <= 0:
            raise ValueError(f"radius must be positive, got {self.radius}")
        if self.terminals_compromised_per_day < 0 or self.customers_compromised_per_day < 0:
            raise ValueError("compromises per day must be >= 0")
        if self.terminal_compromise_days < 1 or self.customer_compromise_days < 1:
            raise ValueError("compromise durations must be >= 1 day")
        if not 0.0 <= self.customer_fraud_share <= 1.0:
            raise ValueError(
                f"customer_fraud_share must be in [0, 1], got {self.customer_fraud_share}"
            )

    @classmethod
    def scaled(cls, n_customers: int, n_terminals: int, **changes: Any) -> SimulatorConfig:
        """A smaller (or larger) population with the same fraud rates: compromises per day scale
        with it (the handbook's 2 terminals of 10,000 and 3 customers of 5,000 a day).

        >>> SimulatorConfig.scaled(1000, 2000).terminals_compromised_per_day
        0.4
        """
        base = cls()
        per_day = {
            "terminals_compromised_per_day": base.terminals_compromised_per_day
            * n_terminals
            / base.n_terminals,
            "customers_compromised_per_day": base.customers_compromised_per_day
            * n_customers
            / base.n_customers,
        }
        return cls(n_customers=n_customers, n_terminals=n_terminals, **{**per_day, **changes})

    @property
    def start_epoch(self) -> float:
        """Midnight UTC of the first day, in epoch seconds."""
        start = dt.datetime.combine(self.start_date, dt.time(), tzinfo=dt.UTC)
        return start.timestamp()

    @property
    def end_date(self) -> dt.date:
        """The day after the last simulated day."""
        return self.start_date + dt.timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer's home, spending habits and the terminals within reach."""

    customer_id: int
    x: float
    y: float
    mean_amount: float
    std_amount: float
    mean_per_day: float
    terminals: tuple[int, ...]


def _daily_count(rate: float, day: int) -> int:
    """How many compromises on ``day`` so that ``rate`` a day holds exactly on average."""
    return math.floor((day + 1) * rate + 1e-9) - math.floor(day * rate + 1e-9)


class TransactionSimulator:
    """The population (drawn at construction) and the day-by-day generator.

    Examples
    --------
    >>> sim = TransactionSimulator(SimulatorConfig(n_customers=50, n_terminals=100, days=3))
    >>> event, truth = next(iter(sim))
    >>> sorted(event)
    ['amount', 'customer_id', 'event_id', 'terminal_id', 'timestamp']
    >>> event["event_id"], type(truth.fraud)
    ('tx-0', <class 'bool'>)
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        rng = random.Random(f"streamal-simulator:{self.config.seed}:profiles")
        c = self.config
        self.terminals = [
            (rng.uniform(0, GRID), rng.uniform(0, GRID)) for _ in range(c.n_terminals)
        ]
        homes = [
            (rng.uniform(0, GRID), rng.uniform(0, GRID), rng.uniform(5, 100), rng.uniform(0, 4))
            for _ in range(c.n_customers)
        ]
        near = self._near(homes)
        self.customers = [
            Customer(i, x, y, mean, mean / 2, per_day, near[i])
            for i, (x, y, mean, per_day) in enumerate(homes)
        ]
        #: The live compromises of the latest stream (id -> first day clean again), for tests
        #: and analysis: they change as the stream advances, one day at a time.
        self.compromised_terminals: dict[int, int] = {}
        self.compromised_customers: dict[int, int] = {}

    def _near(self, homes: list[tuple[float, float, float, float]]) -> list[tuple[int, ...]]:
        """Terminals within the radius of each home, through a grid of radius-sized cells."""
        r = self.config.radius
        cells: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
        for t, (x, y) in enumerate(self.terminals):
            cells.setdefault((int(x // r), int(y // r)), []).append((t, x, y))
        r2 = r * r
        near = []
        for x, y, _, _ in homes:
            cx, cy = int(x // r), int(y // r)
            found = [
                t
                for i in (cx - 1, cx, cx + 1)
                for j in (cy - 1, cy, cy + 1)
                for t, tx, ty in cells.get((i, j), ())
                if (tx - x) * (tx - x) + (ty - y) * (ty - y) <= r2
            ]
            found.sort()
            near.append(tuple(found))
        return near

    def __iter__(self) -> Iterator[tuple[dict[str, Any], Truth]]:
        return self.stream()

    def stream(self) -> Iterator[tuple[dict[str, Any], Truth]]:
        """Yield ``(event, truth)`` in time order, one day generated at a time."""
        c = self.config
        start = c.start_epoch
        bad_terminals = self.compromised_terminals = {}
        bad_customers = self.compromised_customers = {}
        n = 0
        share, times = c.customer_fraud_share, c.customer_fraud_multiplier
        threshold = c.fraud_amount
        legit, over, at_terminal, on_card = TRUTHS
        for day in range(c.days):
            rng = random.Random(f"streamal-simulator:{c.seed}:day:{day}")
            self._compromise(rng, day, bad_terminals, bad_customers)
            base = start + day * DAY
            for second, customer, terminal, amount in self._day(rng):
                truth = legit
                if customer in bad_customers and rng.random() < share:
                    amount = round(amount * times, 2)
                    truth = on_card
                elif terminal in bad_terminals:
                    truth = at_terminal
                elif amount > threshold:
                    truth = over
                event = {
                    "event_id": f"tx-{n}",
                    "timestamp": base + second,
                    "customer_id": customer,
                    "terminal_id": terminal,
                    "amount": amount,
                }
                n += 1
                yield event, truth

    def _compromise(
        self, rng: random.Random, day: int, terminals: dict[int, int], customers: dict[int, int]
    ) -> None:
        """Expire old compromises and draw the day's new ones (a repeat extends the window)."""
        c = self.config
        for live in (terminals, customers):
            for key in [k for k, until in live.items() if until <= day]:
                del live[key]
        plan = (
            (terminals, c.n_terminals, c.terminals_compromised_per_day, c.terminal_compromise_days),
            (customers, c.n_customers, c.customers_compromised_per_day, c.customer_compromise_days),
        )
        for live, population, rate, duration in plan:
            k = min(population, _daily_count(rate, day))
            for key in rng.sample(range(population), k):
                live[key] = max(live.get(key, 0), day + duration)

    def _day(self, rng: random.Random) -> list[tuple[int, int, int, float]]:
        """One day's ``(second, customer, terminal, amount)``, sorted by time (then customer)."""
        rand, gauss, uniform = rng.random, rng.gauss, rng.uniform
        rows: list[tuple[int, int, int, float]] = []
        append = rows.append
        for cust in self.customers:
            near = cust.terminals
            if not near:
                continue
            # Poisson by multiplying uniforms: cheap for the small means (< 4) used here.
            limit, p, count = math.exp(-cust.mean_per_day), rand(), 0
            while p > limit:
                count += 1
                p *= rand()
            mean, sd, cid = cust.mean_amount, cust.std_amount, cust.customer_id
            for _ in range(count):
                second = gauss(_NOON, _TIME_SD)
                if not 0.0 <= second < DAY:
                    continue
                amount = gauss(mean, sd)
                if amount < 0:
                    amount = uniform(0, 2 * mean)
                append((int(second), cid, near[int(rand() * len(near))], round(amount, 2)))
        rows.sort()
        return rows


def simulate(config: SimulatorConfig | None = None) -> Iterator[tuple[dict[str, Any], Truth]]:
    """``(event, truth)`` pairs of a new :class:`TransactionSimulator` (the usual entry point).

    >>> from itertools import islice
    >>> pairs = list(islice(simulate(SimulatorConfig(n_customers=100, n_terminals=200)), 3))
    >>> [e["timestamp"] <= f["timestamp"] for (e, _), (f, _) in zip(pairs, pairs[1:])]
    [True, True]
    """
    return TransactionSimulator(config).stream()


def day_of(timestamp: float, config: SimulatorConfig) -> int:
    """The simulated day index of an event time.

    >>> day_of(SimulatorConfig().start_epoch + 86_400 * 2 + 5, SimulatorConfig())
    2
    """
    return int((timestamp - config.start_epoch) // DAY)
