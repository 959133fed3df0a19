"""Prequential evaluation: the budget holds, every event counts, labels arrive late, it learns."""

from __future__ import annotations

import math

import pytest

from streamal.core.budget import WindowBudget
from streamal.core.evaluator import Report, Window, average_precision, prequential
from streamal.core.gate import Gate
from streamal.core.learner import ActiveLearner, LabelResult, Scored
from streamal.core.messages import Label, Transaction
from streamal.core.model import OnlineModel, make_model
from streamal.core.synthetic import drifting_transactions

N = 6000


class Spy(ActiveLearner):
    """Records how many events had been scored when each label was learned."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.scored = 0
        self.requested_at: dict[str, int] = {}
        self.learned_at: dict[str, int] = {}

    def score(self, txn: Transaction, keep_event: bool = True) -> Scored:
        result = super().score(txn, keep_event)
        if result.decision.ask:
            self.requested_at[txn.event_id] = self.scored
        self.scored += 1
        return result

    def learn(self, label: Label) -> LabelResult:
        self.learned_at[label.event_id] = self.scored
        return super().learn(label)


def make_learner(
    budget: float, seed: int, cls: type[ActiveLearner] = ActiveLearner
) -> ActiveLearner:
    model = OnlineModel(make_model("logreg"), classes=[False, True], kind="logreg")
    return cls(model, Gate(WindowBudget(budget, 1000), seed=seed))


@pytest.fixture(scope="module")
def run() -> tuple[Report, Spy]:
    spy = make_learner(0.05, seed=1, cls=Spy)
    assert isinstance(spy, Spy)
    report = prequential(drifting_transactions(N, seed=1), spy, label_delay=50, window=500)
    return report, spy


def test_spend_stays_within_the_budget(run: tuple[Report, Spy]) -> None:
    report, _ = run
    assert report.events == N
    assert 0.8 * 0.05 * N <= report.requested <= 0.05 * N
    assert sum(report.by_reason.values()) == report.requested
    assert set(report.by_reason) == {"uncertainty", "random"}
    assert report.max_window_spend <= 0.05
    assert all(w.requested <= 0.05 * 1000 for w in report.windows)


def test_windows_cover_every_event_once(run: tuple[Report, Spy]) -> None:
    report, _ = run
    windows = report.windows
    assert len(windows) == N // 500
    assert sum(w.events for w in windows) == N
    assert windows[0].start == 0
    for before, after in zip(windows, windows[1:], strict=False):
        assert after.start == before.start + before.events
    assert sum(w.requested for w in windows) == report.requested
    assert sum(w.positives for w in windows) == sum(y for _, y in drifting_transactions(N, seed=1))


def test_labels_arrive_after_the_delay_and_all_are_learned(run: tuple[Report, Spy]) -> None:
    report, spy = run
    assert set(spy.learned_at) == set(spy.requested_at)
    for event_id, i in spy.requested_at.items():
        # Requested while scoring event i; learned once events i+1 .. i+50 have been scored.
        assert spy.learned_at[event_id] == min(i + 1 + 50, N)
    assert spy.model.n_learned == report.requested == report.labels_learned
    assert len(spy.pending) == 0


def test_positives_learned_counts_the_bought_labels_of_the_positive_class(
    run: tuple[Report, Spy],
) -> None:
    report, spy = run
    truth = {event["event_id"]: y for event, y in drifting_transactions(N, seed=1)}
    bought = [truth[event_id] for event_id in spy.learned_at]
    assert report.positives_learned == sum(bought)
    assert 0 < report.positives_learned < report.total.positives
    assert report.as_dict()["positives_learned"] == report.positives_learned


def test_tail_sums_whole_windows(run: tuple[Report, Spy]) -> None:
    report, _ = run
    tail = report.tail(2000)
    last4 = report.windows[-4:]
    assert (tail.start, tail.events) == (N - 2000, 2000)
    assert tail.correct == sum(w.correct for w in last4)
    assert tail.positives == sum(w.positives for w in last4)
    assert tail.true_positives == sum(w.true_positives for w in last4)
    assert tail.requested == sum(w.requested for w in last4)
    assert report.tail(1).events == 500  # rounded up to a whole window
    assert report.tail(2001).events == 2500
    assert report.tail(10 * N).events == N
    assert 0.0 <= tail.accuracy <= 1.0


def test_empty_window_figures_are_nan() -> None:
    empty = Window(start=0)
    assert math.isnan(empty.accuracy) and math.isnan(empty.recall)
    assert Report().tail(100).events == 0


def test_learning_happens_on_a_budget() -> None:
    """5 % of the labels are enough to catch fraud at the end of the stream; no labels, none.

    At 2 % fraud 6,000 events hold too few positives for this to be reliable within a few
    seconds of test time (recall on the last 2,000 events ranges 0-0.4 over seeds), so the
    stream is 5 % fraud here.
    """
    stream = list(drifting_transactions(N, fraud_rate=0.05, seed=3))
    learner = make_learner(0.05, seed=3)
    report = prequential(stream, learner, label_delay=20, window=500)
    tail = report.tail(2000)
    assert tail.positives > 50
    assert tail.recall > 0.2
    assert report.requested <= 0.05 * N
    assert learner.model.n_learned == report.requested

    # The same stream with nothing ever learned: the model never flags fraud.
    idle = make_learner(0.05, seed=3)
    idle.gate = Gate(_spent_budget(), seed=3)
    baseline = prequential(stream, idle, label_delay=20, window=500)
    assert baseline.requested == 0 and idle.model.n_learned == 0
    assert baseline.tail(2000).recall == 0.0
    assert tail.accuracy > 0.9


def _spent_budget() -> WindowBudget:
    budget = WindowBudget(1e-9, 10 * N)
    budget.record(True)  # the only request of a window longer than the stream
    return budget


def test_average_precision_of_a_nan_score_is_nan() -> None:
    """A NaN score has no rank: sorting put it anywhere and AP came out as if it were ranked
    (1.0 here), where ``auc`` says NaN for the same input."""
    assert average_precision([0.9, 0.8], [True, False]) == 1.0
    assert math.isnan(average_precision([math.nan, 0.8, 0.2], [True, False, True]))
    assert math.isnan(average_precision([0.9, math.nan], [True, False]))
