"""The daily card alert lane: k cards a day at most, once each, the riskiest, under one budget."""

from __future__ import annotations

import json
import math
import pickle
import random
from collections import Counter, defaultdict
from collections.abc import Hashable
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streamal.config import Settings
from streamal.core.alerts import DAY, DailyAlerts
from streamal.core.gate import Decision, Gate
from streamal.core.learner import ActiveLearner
from streamal.core.messages import (
    ClassSet,
    Label,
    Transaction,
    TransactionSchema,
    decode_transaction,
)
from streamal.core.model import OnlineModel
from streamal.core.policy import build_gate
from streamal.service import Service, build_learner

START = 20_000 * DAY  # a UTC midnight
Event = tuple[float, int, float]  # (time, card, risk)


def _day(rng: random.Random, day: int, n: int = 4000, cards: int = 2000) -> list[Event]:
    """One day of a stable stream: traffic peaks at noon, card risks from one distribution."""
    events = []
    for _ in range(n):
        tod = min(DAY - 1.0, max(0.0, rng.gauss(DAY / 2, DAY / 6)))
        events.append((START + day * DAY + tod, rng.randrange(cards), rng.betavariate(1, 20)))
    return sorted(events)


def _offer(lane: DailyAlerts, card: Hashable, risk: float, t: float) -> bool:
    lane.observe(card, risk, t)
    if lane.wants(card, risk):
        lane.alert(card)
        return True
    return False


def _run_days(lane: DailyAlerts, days: list[list[Event]], scale: float = 1.0) -> list[set[int]]:
    alerted: list[set[int]] = []
    for events in days:
        today: set[int] = set()
        for t, card, risk in events:
            if _offer(lane, card, min(1.0, risk * scale), t):
                today.add(card)
        alerted.append(today)
    return alerted


def _top_cards(events: list[Event], k: int) -> set[int]:
    best: dict[int, float] = {}
    for _, card, risk in events:
        best[card] = max(best.get(card, 0.0), risk)
    return set(sorted(best, key=best.__getitem__, reverse=True)[:k])


# ------------------------------------------------------------------------ the lane alone

events_strategy = st.lists(
    st.tuples(
        st.floats(0.0, 3 * DAY, allow_nan=False),  # time (not sorted: late events happen)
        st.integers(0, 30),  # card
        st.floats(0.0, 1.0, allow_nan=False),  # risk
    ),
    max_size=400,
)


@settings(max_examples=150, deadline=None)
@given(events=events_strategy, k=st.integers(1, 8))
@example(events=[(3 * DAY - 3e-11, 0, 0.0), (3 * DAY, 0, 0.0)], k=1)  # a midnight, to the ulp
def test_never_more_than_k_cards_a_day_and_each_card_once(events: list[Event], k: int) -> None:
    lane = DailyAlerts(k, memory_days=2)
    per_day: dict[int, list[int]] = defaultdict(list)
    latest = -1.0
    for t, card, risk in events:
        latest = max(latest, t)
        if _offer(lane, card, risk, t):
            # The lane's day: the latest event time's, as the lane computes it (floor(t / DAY)
            # of the time it was given; START + t would round two days into one at a midnight).
            per_day[math.floor(latest / DAY)].append(card)
    for cards in per_day.values():
        assert len(cards) <= k
        assert len(set(cards)) == len(cards)


def test_the_days_top_cards_are_caught_on_a_stable_stream() -> None:
    rng = random.Random(7)
    k = 40
    days = [_day(rng, d) for d in range(8)]
    alerted = _run_days(DailyAlerts(k), days)
    assert all(len(a) <= k for a in alerted)
    for events, cards in list(zip(days, alerted, strict=True))[1:]:  # day one has no history
        assert len(cards) >= 0.95 * k  # capacity used
        assert len(cards & _top_cards(events, k)) >= 0.7 * k  # most of the true top k


def test_alerts_are_paced_through_the_day() -> None:
    """Capacity lasts until the evening, and is not used up by noon, even when scores jump."""
    rng = random.Random(3)
    k = 40
    lane = DailyAlerts(k)
    _run_days(lane, [_day(rng, d) for d in range(4)])
    times: list[float] = []
    for t, card, risk in _day(rng, 4):  # every score doubles: the old bar lets far too many by
        if _offer(lane, card, min(1.0, 2 * risk), t):
            times.append((t - START) % DAY / 3600)
    assert len(times) >= 0.95 * k
    by_noon = sum(h < 12 for h in times)
    assert by_noon <= 0.5 * k + lane.slack + 1  # half of the traffic has come by noon
    assert max(times) > 17


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_a_model_that_now_scores_lower_or_higher_keeps_its_capacity_and_aim(
    scale: float,
) -> None:
    rng = random.Random(5)
    k = 40
    lane = DailyAlerts(k)
    _run_days(lane, [_day(rng, d) for d in range(5)])
    events = _day(rng, 5)
    [cards] = _run_days(lane, [events], scale=scale)
    assert len(cards) >= 0.9 * k
    assert len(cards & _top_cards(events, k)) >= 0.6 * k


def test_the_lane_resumes_after_a_quiet_day() -> None:
    rng = random.Random(11)
    k = 20
    lane = DailyAlerts(k)
    _run_days(lane, [_day(rng, d, n=2000, cards=1000) for d in range(3)])
    # Day 3 has no traffic at all, day 4 a handful of events: neither may jam the lane.
    [few] = _run_days(lane, [_day(rng, 4, n=15, cards=1000)])
    assert len(few) <= k
    [cards] = _run_days(lane, [_day(rng, 5, n=2000, cards=1000)])
    assert len(cards) >= 0.9 * k


def test_known_compromised_cards_are_left_alone_for_quiet_days() -> None:
    lane = DailyAlerts(2, quiet_days=2.0, slack=1.0)
    assert _offer(lane, "a", 0.9, START)
    lane.compromised("a")
    for day in (1, 2):
        assert not _offer(lane, "a", 0.99, START + day * DAY - 60)  # blocked, not re-alerted
    assert _offer(lane, "a", 0.99, START + 2 * DAY + 60)  # two days later: a card again


def test_state_survives_pickle() -> None:
    rng = random.Random(2)
    lane = DailyAlerts(30)
    _run_days(lane, [_day(rng, d, n=1500, cards=800) for d in range(3)])
    copy = pickle.loads(pickle.dumps(lane))
    rest = _day(rng, 3, n=1500, cards=800)
    assert _run_days(copy, [rest]) == _run_days(lane, [rest])
    assert copy.threshold == lane.threshold


@settings(max_examples=60, deadline=None)
@given(events=events_strategy, k=st.integers(1, 5), budget=st.floats(0.01, 1.0))
def test_the_gate_never_alerts_more_than_k_cards_a_day(
    events: list[Event], k: int, budget: float
) -> None:
    gate = build_gate("fraud", budget=budget, window=100, seed=0, alert_cards_per_day=k)
    per_day: dict[int, list[int]] = defaultdict(list)
    latest = -1.0
    for t, card, risk in events:
        latest = max(latest, t)
        if gate.decide(_proba(risk), card=card, time=START + t).reason == "exploit":
            per_day[int((START + latest) // DAY)].append(card)
    for cards in per_day.values():
        assert len(cards) <= k and len(set(cards)) == len(cards)


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError):
        DailyAlerts(0)
    with pytest.raises(ValueError):
        DailyAlerts(10, memory_days=0)


# ------------------------------------------------------------------------ in the gate


def _proba(risk: float) -> dict[Hashable, float]:
    return {False: 1.0 - risk, True: risk}


def _gate_run(gate: Gate, days: list[list[Event]]) -> list[list[Decision]]:
    out = []
    for events in days:
        out.append([gate.decide(_proba(r), card=c, time=t) for t, c, r in events])
    return out


@pytest.mark.parametrize("budget", [0.02, 0.005])
def test_one_budget_alerts_first_and_the_exploration_lanes_get_the_rest(budget: float) -> None:
    """Up to k alerts a day, each card once; random and uncertainty lanes share what is left,
    and the total stays within the budget even when k alerts a day would exceed it."""
    rng = random.Random(4)
    k, n = 40, 4000
    gate = build_gate("fraud", budget=budget, seed=1, alert_cards_per_day=k)
    days = [_day(rng, d, n=n) for d in range(6)]
    decisions = _gate_run(gate, days)
    total = 0
    lanes: Counter[str | None] = Counter()
    for events, today in zip(days, decisions, strict=True):
        alerted = [c for (_, c, _), d in zip(events, today, strict=True) if d.reason == "exploit"]
        assert len(alerted) <= k and len(set(alerted)) == len(alerted)
        total += sum(d.ask for d in today)
        lanes.update(d.reason for d in today if d.ask)
    events_seen = len(days) * n
    assert total <= budget * events_seen + gate.alerts.slack + 2  # type: ignore[union-attr]
    assert lanes["random"] >= 0.5 * 0.1 * budget * events_seen
    if budget * n > k:  # room left after the alerts: the uncertainty lane takes it
        assert lanes["exploit"] >= 0.9 * k * (len(days) - 1)
        assert lanes["uncertainty"] >= 0.5 * (budget * events_seen - lanes["exploit"]) - 20
        assert total >= 0.9 * budget * events_seen
    else:  # the budget binds: alerts take (nearly) all the selective share
        assert lanes["exploit"] >= 0.8 * 0.9 * budget * events_seen
        assert lanes["uncertainty"] <= 0.1 * lanes["exploit"]


def test_a_gate_without_cards_never_alerts_and_old_callers_still_work() -> None:
    gate = build_gate("fraud", budget=0.05, seed=0, alert_cards_per_day=5)
    decisions = [gate.decide(_proba(0.99)) for _ in range(2000)]  # decide(proba) as before
    assert not any(d.reason == "exploit" for d in decisions)
    assert any(d.ask for d in decisions)
    assert "alerts=5/day" in repr(gate)


def test_the_alert_lane_replaces_the_exploit_share() -> None:
    gate = build_gate("fraud", budget=0.05, alert_cards_per_day=100)
    assert [lane.name for lane in gate.lanes] == ["random", "uncertainty"]
    gate = build_gate("fraud", exploit_share=0.3, alert_cards_per_day=100)  # ignored
    assert [lane.name for lane in gate.lanes] == ["random", "uncertainty"]
    with pytest.raises(ValueError, match="exploit share"):
        Gate(exploit_share=0.3, alerts=DailyAlerts(100))


def test_gate_state_survives_pickle() -> None:
    rng = random.Random(8)
    gate = build_gate("fraud", budget=0.02, seed=3, alert_cards_per_day=20)
    _gate_run(gate, [_day(rng, d, n=1500) for d in range(2)])
    copy = pickle.loads(pickle.dumps(gate))
    rest = [_day(rng, 2, n=1500)]
    assert _gate_run(copy, rest) == _gate_run(gate, rest)


# ------------------------------------------------------------------------ through the learner


class _Fixed:
    """A stand-in River model whose risk is the event's ``risk`` feature."""

    def predict_proba_one(self, x: dict[str, float]) -> dict[Hashable, float]:
        return _proba(x.get("risk", 0.0))

    def learn_one(self, x: dict[str, float], y: Hashable) -> None:
        pass


def _txn(i: int, card: str, risk: float, t: float | None) -> Transaction:
    event = {"event_id": f"e{i}", "card": card, "risk": risk, "timestamp": t}
    return Transaction(f"e{i}", t, {"risk": risk}, event)


def test_the_learner_gives_the_gate_card_and_event_time() -> None:
    gate = build_gate("fraud", budget=0.5, random_share=0.0, alert_cards_per_day=2)
    model = OnlineModel(_Fixed(), classes=[False, True])
    learner = ActiveLearner(model, gate, card_field="card", clock=lambda: START)
    reasons = [
        learner.score(_txn(i, card, risk, START + 3600 * i)).decision.reason
        for i, (card, risk) in enumerate([("a", 0.9), ("a", 0.95), ("b", 0.99), ("c", 0.99)])
    ]
    assert reasons == ["exploit", reasons[1], "exploit", reasons[3]]
    assert "exploit" not in (reasons[1], reasons[3])  # a again; c: the day's capacity is used
    learner.learn(Label("e2", True))  # b was fraud: the team blocks the card
    next_day = [
        learner.score(_txn(i, card, 0.99, START + DAY + 60 * i)).decision.reason
        for i, card in ((4, "b"), (5, "c"))
    ]
    assert next_day[0] != "exploit" and next_day[1] == "exploit"


def test_a_service_checkpoint_keeps_the_alert_lane(tmp_path: Path) -> None:
    settings_ = Settings(
        checkpoint_dir=str(tmp_path),
        checkpoint_key="k",  # type: ignore[arg-type]
        strategy="fraud",
        budget=0.5,
        card_field="card",
        alert_cards_per_day=5,
    )
    service = Service(settings_)
    for i in range(300):
        event = {"event_id": f"e{i}", "card": f"c{i % 40}", "amount": float(i % 17)}
        event["timestamp"] = START + 600.0 * i
        service.learner.score(decode_transaction(json.dumps(event).encode(), TransactionSchema()))
    alerts = service.learner.gate.alerts
    assert alerts is not None and alerts.alerted_today > 0
    assert service.checkpoint()
    restored = Service(settings_)
    restored._restore()
    copy = restored.learner.gate.alerts
    assert copy is not None and copy is not alerts
    assert (copy.alerted_today, copy.threshold) == (alerts.alerted_today, alerts.threshold)


def test_a_learner_with_an_alert_lane_needs_the_card_field() -> None:
    gate = build_gate("fraud", alert_cards_per_day=10)
    with pytest.raises(ValueError, match="card"):
        ActiveLearner(OnlineModel(_Fixed(), classes=[False, True]), gate)


def test_the_setting_builds_the_lane_in_the_service_learner() -> None:
    settings_ = Settings(strategy="fraud", card_field="card", alert_cards_per_day=7)
    learner = build_learner(settings_, ClassSet())
    assert learner.gate.alerts is not None and learner.gate.alerts.k == 7
    assert build_learner(Settings(), ClassSet()).gate.alerts is None


def test_a_card_compromised_before_any_event_is_quiet_too() -> None:
    # A fraud label can come before the first event (a replica started with no state): the
    # lane had no time to count the quiet days from and dropped it, so the card was alerted.
    lane = DailyAlerts(cards_per_day=2, slack=1.0, quiet_days=1.0)
    lane.compromised("a")
    lane.observe("a", 0.99, 1000.0)
    assert not lane.wants("a", 0.99)
    lane.observe("b", 0.99, 1060.0)
    assert lane.wants("b", 0.99)
    lane.observe("a", 0.99, 1000.0 + 86_400.0 + 60)  # quiet for a day from the first event
    assert lane.wants("a", 0.99)
