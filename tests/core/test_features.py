"""Streaming fraud features: right windows, and no label used before it was received."""

from __future__ import annotations

import random

import pytest

from streamal.core.budget import WindowBudget
from streamal.core.features import DAY, FeatureSpec, TransactionFeatures
from streamal.core.gate import Gate
from streamal.core.learner import ActiveLearner
from streamal.core.messages import InvalidMessage, Label, Transaction
from streamal.core.model import OnlineModel, make_model


def _tx(i: int, t: float, card: int, terminal: int, amount: float) -> dict[str, object]:
    return {
        "event_id": f"e{i}",
        "timestamp": t,
        "customer_id": card,
        "terminal_id": terminal,
        "amount": amount,
    }


def test_card_windows_match_brute_force() -> None:
    rng = random.Random(1)
    features = TransactionFeatures()
    history: list[tuple[float, int, float]] = []
    t = 0.0
    for i in range(3000):
        t += rng.expovariate(1 / 3000.0)
        card = rng.randrange(20)
        amount = round(rng.uniform(1, 200), 2)
        history.append((t, card, amount))
        x = features.transform_one(_tx(i, t, card, rng.randrange(50), amount))
        for days in (1, 7, 30):
            window = [a for (u, c, a) in history if c == card and u > t - days * DAY]
            assert x[f"card_tx_{days}d"] == len(window)
            assert abs(x[f"card_mean_amount_{days}d"] - sum(window) / len(window)) < 1e-6


def test_terminal_risk_never_uses_a_label_before_it_is_received() -> None:
    features = TransactionFeatures(FeatureSpec(windows_days=(1, 7)))
    fraud = _tx(0, 1000.0, card=1, terminal=7, amount=500.0)
    features.transform_one(fraud)
    # Traffic at the same terminal after the fraud, before anyone labelled it: no risk.
    for i in range(1, 50):
        x = features.transform_one(_tx(i, 1000.0 + 60 * i, card=100 + i, terminal=7, amount=20))
        assert x["terminal_risk_1d"] == 0.0 and x["terminal_risk_7d"] == 0.0
    features.learn_label(fraud, fraud=True)  # the label arrives now
    x = features.transform_one(_tx(99, 1000.0 + 3600, card=3, terminal=7, amount=20))
    assert x["terminal_risk_1d"] > 0.0
    # Outside the 1-day window the fraud no longer counts there, still within 7 days.
    x = features.transform_one(_tx(100, 1000.0 + 2 * DAY, card=4, terminal=7, amount=20))
    assert x["terminal_risk_1d"] == 0.0 and x["terminal_risk_7d"] > 0.0


def test_through_the_learner_risk_appears_only_after_the_label_is_learned() -> None:
    gate = Gate(WindowBudget(1.0, 10), random_share=1.0, seed=0)  # asks for every event
    learner = ActiveLearner(
        OnlineModel(make_model("logreg"), [False, True]), gate, features=TransactionFeatures()
    )
    seen = []
    for i in range(30):
        event = _tx(i, 5000.0 + 10 * i, card=i, terminal=3, amount=50.0)
        txn = Transaction(f"e{i}", 5000.0 + 10 * i, {"amount": 50.0}, event)
        learner.score(txn)
        seen.append(txn.features["terminal_risk_1d"])
        if i == 10:  # the first event's fraud label arrives after the eleventh event
            learner.learn(Label("e0", True, "reviewer"))
    assert seen[:11] == [0.0] * 11
    assert all(r > 0.0 for r in seen[11:])


def test_delayed_terminal_windows_match_brute_force() -> None:
    # Windows end a week before the transaction (the handbook's delay period); a fraud counts
    # once its label was received, and the labels received within the week are counted apart.
    rng = random.Random(2)
    delay = 7 * DAY
    features = TransactionFeatures(FeatureSpec(windows_days=(1, 7, 30), terminal_delay_days=7))
    history: list[tuple[float, int]] = []
    known: list[tuple[float, int]] = []
    t = 0.0
    for i in range(1500):
        t += rng.expovariate(1 / 4000.0)
        terminal = rng.randrange(10)
        event = _tx(i, t, card=rng.randrange(30), terminal=terminal, amount=10.0)
        x = features.transform_one(event)
        history.append((t, terminal))
        end = t - delay
        for days in (1, 7, 30):
            start = end - days * DAY
            n = sum(1 for u, m in history if m == terminal and start < u <= end)
            frauds = sum(1 for u, m in known if m == terminal and start < u <= end)
            assert x[f"terminal_tx_{days}d"] == n
            assert x[f"terminal_risk_{days}d"] == (frauds / n if n else 0.0)
        recent = sum(1 for u, m in known if m == terminal and end < u <= t)
        assert x["terminal_known_frauds_delay"] == recent
        if rng.random() < 0.05:  # a label for an earlier transaction arrives now
            u, m = history[rng.randrange(len(history))]
            if (u, m) not in known:
                features.learn_label(_tx(-1, u, card=0, terminal=m, amount=1.0), fraud=True)
                known.append((u, m))


def test_a_non_finite_amount_is_refused_and_leaves_the_card_clean() -> None:
    # A string amount passes the message's feature checks (it is one-hot there); "nan" then
    # went into the card's running sum, whose mean stayed NaN for good, long after the event
    # left every window. Such an amount is refused, as a bad number is elsewhere.
    f = TransactionFeatures(FeatureSpec(windows_days=(1,)))
    for bad in ("nan", "inf", float("nan"), "-inf", "ten", [1], 10**400, 1e101):
        with pytest.raises(InvalidMessage):
            f.transform_one(_tx(0, 0.0, 1, 1, bad))  # type: ignore[arg-type]
    assert f.transform_one(_tx(1, 2 * DAY, 1, 1, "12.5"))["card_mean_amount_1d"] == 12.5
    assert f.transform_one(_tx(2, 2 * DAY + 1, 1, 1, 7.5))["card_mean_amount_1d"] == 10.0


@pytest.mark.parametrize("huge", [1e20, -1e20, 1e100])
def test_a_huge_amount_leaves_no_trace_once_out_of_the_window(huge: float) -> None:
    # The running sum absorbed the small amounts next to a huge one (1e20 + 10 == 1e20), so
    # when the huge one left the window the card's mean was 0 instead of the mean of the rest.
    f = TransactionFeatures(FeatureSpec(windows_days=(1,)))
    f.transform_one(_tx(0, 0.0, 1, 1, huge))
    f.transform_one(_tx(1, 0.5 * DAY, 1, 1, 10.0))
    x = f.transform_one(_tx(2, 1.2 * DAY, 1, 1, 30.0))
    assert (x["card_tx_1d"], x["card_mean_amount_1d"]) == (2.0, 20.0)
    assert f.transform_one(_tx(3, 1.6 * DAY, 1, 1, 0.0))["card_mean_amount_1d"] == 15.0


def test_terminal_state_stays_bounded_when_terminals_keep_changing() -> None:
    # Every terminal ever seen kept its (empty) event and fraud lists for good: a stream of
    # new terminal ids grew the state without bound. Those with nothing left are dropped.
    f = TransactionFeatures(FeatureSpec(windows_days=(1, 7), terminal_delay_days=1))
    for i in range(60 * 24):  # one new card and terminal an hour for 60 days
        tx = _tx(i, i * 3600.0, card=i, terminal=i, amount=round(10 + i % 97 * 1.01, 2))
        f.transform_one(tx)
        f.learn_label(tx, fraud=i % 3 == 0)
    # Kept: what the 8-day terminal horizon (7-day window, 1-day delay) holds, plus a day.
    assert len(f._terminals) <= 9 * 24 and len(f._frauds) <= 9 * 24


def test_forgetting_idle_terminals_changes_no_feature() -> None:
    # Sparse terminals that go idle for weeks and come back, in time order: every feature is
    # the same, to the bit, as with nothing ever forgotten.
    rng = random.Random(3)
    spec = FeatureSpec(windows_days=(1, 7, 30), terminal_delay_days=7)
    swept, kept = TransactionFeatures(spec), TransactionFeatures(spec)
    kept._next_sweep = float("inf")  # never sweeps
    t, events = 0.0, []
    for i in range(4000):
        t += rng.expovariate(1 / 4000.0)
        card, terminal = rng.randrange(300), rng.randrange(2000)
        tx = _tx(i, t, card, terminal, rng.choice([round(rng.uniform(1, 300), 2), 1e12]))
        assert swept.transform_one(tx) == kept.transform_one(tx)
        events.append(tx)
        if rng.random() < 0.05:  # a label for an earlier event arrives
            old = rng.choice(events[-500:])
            for f in (swept, kept):
                f.learn_label(old, fraud=True)
    assert len(swept._terminals) < len(kept._terminals)


def test_a_late_transaction_counts_in_its_own_time() -> None:
    # A late transaction was appended behind newer ones: its own windows counted the
    # transactions after it, and it left the windows only after them (FIFO), so later
    # transactions counted it a day too long.
    f = TransactionFeatures(FeatureSpec(windows_days=(1,)))
    f.transform_one(_tx(0, 10 * 3600.0, 1, 1, 10.0))
    x = f.transform_one(_tx(1, 0.0, 1, 1, 40.0))  # late: before the first
    assert (x["card_tx_1d"], x["card_mean_amount_1d"]) == (1.0, 40.0)
    x = f.transform_one(_tx(2, 25 * 3600.0, 1, 1, 30.0))  # the late one is out, as its time says
    assert (x["card_tx_1d"], x["card_mean_amount_1d"]) == (2.0, 20.0)


def test_card_windows_match_brute_force_with_late_transactions() -> None:
    rng = random.Random(2)
    f = TransactionFeatures()
    history: list[tuple[float, int, float]] = []
    latest: dict[int, float] = {}  # per card
    t = 0.0
    for i in range(3000):
        t += rng.expovariate(1 / 3000.0)
        # One in ten is late, by less than the shortest window: what left a window before it
        # came (at or before the card's latest time less the width) stays out.
        u = t - rng.uniform(0, 0.5 * DAY) if rng.random() < 0.1 else t
        card = rng.randrange(20)
        amount = round(rng.uniform(1, 200), 2)
        x = f.transform_one(_tx(i, u, card, rng.randrange(50), amount))
        seen = latest.get(card, u)
        for days in (1, 7, 30):
            start = max(u, seen) - days * DAY
            window = [a for (v, c, a) in history if c == card and start < v <= u] + [amount]
            assert x[f"card_tx_{days}d"] == len(window)
            assert abs(x[f"card_mean_amount_{days}d"] - sum(window) / len(window)) < 1e-6
        history.append((u, card, amount))
        latest[card] = max(u, seen)


def test_one_event_dated_far_ahead_does_not_make_every_terminal_forgotten() -> None:
    # The daily sweep of idle terminals takes its "now" from the events: one event dated a
    # century ahead (a wrong clock) must not count as the present for the others.
    f = TransactionFeatures(FeatureSpec(windows_days=(1, 7)))
    for i in range(48):
        f.transform_one(_tx(i, i * 3600.0, card=i, terminal=i % 5, amount=10.0))
    f.transform_one(_tx(99, 100 * 365 * DAY, card=99, terminal=99, amount=10.0))
    x = f.transform_one(_tx(100, 48 * 3600.0, card=100, terminal=1, amount=10.0))
    assert x["terminal_tx_7d"] == 11.0  # its 10 earlier ones and this one


def test_a_transaction_without_a_time_is_taken_to_be_now() -> None:
    # Without a time it was taken to be at 1970-01-01 00:00: night, hour 0, and (now that a
    # late value counts in its own time) alone in its card's windows. It is happening now.
    f = TransactionFeatures(FeatureSpec(windows_days=(1,)))
    noon = 17_622 * DAY + 12 * 3600.0  # 2018-04-01, a Sunday, 12:00 UTC
    f.transform_one(_tx(0, noon, card=1, terminal=1, amount=10.0))
    event = {"customer_id": 1, "terminal_id": 1, "amount": 30.0}  # no timestamp
    x = f.transform_one(event)
    assert (x["hour"], x["night"], x["weekend"]) == (12.0, 0.0, 1.0)
    assert (x["card_tx_1d"], x["card_mean_amount_1d"], x["terminal_tx_1d"]) == (2.0, 20.0, 2.0)
    f.learn_label(event, fraud=True)  # its fraud counts at its terminal from now on
    assert (
        f.transform_one(_tx(2, noon + 60, card=2, terminal=1, amount=5.0))["terminal_risk_1d"]
        == 1 / 3
    )
