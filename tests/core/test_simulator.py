"""The transaction simulator: reproducible, streaming, faithful to its stated fraud rates and
scenario rules, and never leaking the truth into the event."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from itertools import islice

import pytest

from streamal.core.simulator import (
    DAY,
    TARGET_FRAUD_RATE,
    TARGET_SCENARIO_SHARES,
    SimulatorConfig,
    TransactionSimulator,
    day_of,
    simulate,
)

SMALL = SimulatorConfig.scaled(300, 600, days=20, seed=5)
EVENT_KEYS = {"event_id", "timestamp", "customer_id", "terminal_id", "amount"}


def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first = list(simulate(SMALL))
    assert first == list(simulate(SMALL))
    other = list(islice(simulate(SimulatorConfig.scaled(300, 600, days=20, seed=6)), 100))
    assert other != first[:100]


def test_a_longer_run_starts_with_exactly_the_shorter_one() -> None:
    short = list(simulate(SimulatorConfig.scaled(300, 600, days=5, seed=5)))
    assert short == list(islice(simulate(SMALL), len(short)))


def test_events_come_in_time_order_with_consecutive_ids_and_no_truth() -> None:
    previous = float("-inf")
    for n, (event, truth) in enumerate(simulate(SMALL)):
        assert set(event) == EVENT_KEYS
        assert event["event_id"] == f"tx-{n}"
        assert previous <= event["timestamp"] < SMALL.start_epoch + SMALL.days * DAY
        previous = event["timestamp"]
        assert truth.fraud == (truth.scenario != 0)
        assert not set(map(str, event.values())) & {"fraud", "scenario"}


def test_a_prefix_of_a_long_run_is_generated_without_the_rest() -> None:
    started = time.perf_counter()
    prefix = list(islice(simulate(SimulatorConfig(days=1000)), 1000))
    assert len(prefix) == 1000
    assert day_of(prefix[-1][0]["timestamp"], SimulatorConfig()) == 0
    assert time.perf_counter() - started < 5.0  # all 1000 days (~10 M events) would take minutes


def test_reproduces_the_stated_fraud_rate_and_scenario_mix() -> None:
    # A fifth of the population, so compromises per day scale to 0.4 terminals and 0.6 cards;
    # measured from day 28, when scenarios 2 and 3 have built up. Across seeds this size varies
    # by about +-0.05 points in the rate and +-0.04 in the shares.
    config = SimulatorConfig.scaled(1000, 2000, days=90)
    steady_from = config.start_epoch + 28 * DAY
    counts: Counter[int] = Counter()
    for event, truth in simulate(config):
        if event["timestamp"] >= steady_from:
            counts[truth.scenario] += 1
    n = sum(counts.values())
    frauds = n - counts[0]
    assert n > 100_000
    assert frauds / n == pytest.approx(TARGET_FRAUD_RATE, rel=0.15)
    shares = {s: counts[s] / frauds for s in (1, 2, 3)}
    assert shares[1] == pytest.approx(TARGET_SCENARIO_SHARES[1], abs=0.03)
    assert shares[2] == pytest.approx(TARGET_SCENARIO_SHARES[2], abs=0.07)
    assert shares[3] == pytest.approx(TARGET_SCENARIO_SHARES[3], abs=0.07)


def test_each_scenario_follows_its_rule() -> None:
    config = SimulatorConfig.scaled(500, 1000, days=45, seed=3)
    sim = TransactionSimulator(config)
    customers = {c.customer_id: c for c in sim.customers}
    live_days: dict[int, list[int]] = defaultdict(list)  # terminal -> days it was compromised
    on_card = Counter[bool]()
    ratios = []
    seen_day = -1
    for event, truth in sim:
        day = day_of(event["timestamp"], config)
        amount, terminal = event["amount"], event["terminal_id"]
        if day != seen_day:
            seen_day = day
            for t in sim.compromised_terminals:
                live_days[t].append(day)
        # Scenario 1: every amount above 220 is fraud, and scenario 1 is only that.
        if amount > config.fraud_amount:
            assert truth.fraud
        if truth.scenario == 1:
            assert amount > config.fraud_amount
        # Scenario 2: every transaction at a compromised terminal is fraud.
        if terminal in sim.compromised_terminals:
            assert truth.scenario in (2, 3)
        if truth.scenario == 2:
            assert terminal in sim.compromised_terminals
        # Scenario 3: only compromised cards, about a third of their transactions, amount x5.
        if event["customer_id"] in sim.compromised_customers:
            on_card[truth.scenario == 3] += 1
        if truth.scenario == 3:
            assert event["customer_id"] in sim.compromised_customers
            assert round(amount * 100) % 5 == 0
            ratios.append(amount / customers[event["customer_id"]].mean_amount)
    assert on_card[True] / on_card.total() == pytest.approx(1 / 3, abs=0.05)
    assert sum(ratios) / len(ratios) == pytest.approx(5.0, rel=0.15)
    # A terminal stays compromised for 28 consecutive days (longer if hit again), or until the end.
    assert live_days
    for days in live_days.values():
        runs = [[days[0]]]
        for d in days[1:]:
            if d == runs[-1][-1] + 1:
                runs[-1].append(d)
            else:
                runs.append([d])
        for run in runs:
            assert len(run) >= config.terminal_compromise_days or run[-1] == config.days - 1


def test_customers_pay_only_at_terminals_near_home() -> None:
    sim = TransactionSimulator(SMALL)
    for customer in sim.customers:
        for t in customer.terminals:
            x, y = sim.terminals[t]
            assert (x - customer.x) ** 2 + (y - customer.y) ** 2 <= SMALL.radius**2
    reach = {c.customer_id: set(c.terminals) for c in sim.customers}
    for event, _ in islice(sim, 5000):
        assert event["terminal_id"] in reach[event["customer_id"]]


def test_throughput_is_tens_of_thousands_of_transactions_a_second() -> None:
    sim = TransactionSimulator(SimulatorConfig(days=3))
    started = time.perf_counter()
    n = sum(1 for _ in sim)
    rate = n / (time.perf_counter() - started)
    assert n > 25_000
    assert rate > 20_000  # ~100k/s on a quiet core; shared CI machines are slower


@pytest.mark.parametrize(
    "change",
    [
        {"n_customers": -1},
        {"radius": 0.0},
        {"terminals_compromised_per_day": -1.0},
        {"customer_compromise_days": 0},
        {"customer_fraud_share": 1.5},
    ],
)
def test_rejects_impossible_settings(change: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SimulatorConfig(**change)  # type: ignore[arg-type]
