"""The imbalance-aware measure: which mode when, what it scores, that it pays on a rare class."""

import pickle

import pytest
from event_features import numeric_features

from streamal.core.imbalance import ImbalanceAwareScorer
from streamal.core.learner import ActiveLearner
from streamal.core.measures import entropy
from streamal.core.messages import Label, Transaction
from streamal.core.model import OnlineModel, make_model
from streamal.core.pal import PALScorer
from streamal.core.policy import build_gate
from streamal.core.synthetic import drifting_transactions

UNSURE = {True: 0.5, False: 0.5}


def test_no_positive_among_the_first_16_labels_makes_the_mix_rare() -> None:
    # Upper end with no positive: z² / (n + z²) = 0.204 after 15 labels, 0.194 after 16.
    scorer = ImbalanceAwareScorer()
    for i in range(15):
        scorer.learn_one({"a": float(i)}, False)
    assert scorer.mode == "common"
    scorer.learn_one({"a": 15.0}, False)
    assert scorer.mode == "rare"


def test_a_balanced_start_that_leans_one_way_stays_common() -> None:
    # 7 positives in 47 labels (a share of 0.149, below 0.2) is not evidence of a rare class.
    scorer = ImbalanceAwareScorer()
    for i in range(47):
        scorer.learn_one({"a": float(i)}, i % 7 == 3)
    assert scorer.rarest_share() == pytest.approx(7 / 47, rel=0.02)
    assert scorer.mode == "common"


def test_the_mix_is_followed_both_ways() -> None:
    scorer = ImbalanceAwareScorer(half_life=200)
    for i in range(300):
        scorer.learn_one({"a": float(i % 10)}, i % 50 == 0)
    assert scorer.mode == "rare"
    switched_at = None
    for i in range(2000):
        scorer.learn_one({"a": float(i % 10)}, i % 2 == 0)
        if scorer.mode == "common":
            switched_at = i
            break
    assert switched_at is not None
    # Back only once the lower end clears 0.2: not at the first balanced labels.
    assert switched_at > 20


def test_rare_mode_scores_pal_gain_times_entropy_and_common_mode_entropy() -> None:
    scorer, pal = ImbalanceAwareScorer(), PALScorer()
    events = [{"a": float(i % 30), "b": float(i % 7)} for i in range(300)]
    probas = [{True: 0.1 + 0.8 * (i % 5) / 4, False: 0.9 - 0.8 * (i % 5) / 4} for i in range(300)]
    for x, proba in zip(events[:100], probas, strict=False):
        assert scorer(proba, x) == pytest.approx(entropy(proba, 2))
        pal.frequency.observe(x)
    for x in events[:16]:
        scorer.learn_one(x, False)
        pal.learn_one(x, False)
    assert scorer.mode == "rare"
    for x, proba in zip(events[100:], probas[100:], strict=True):
        expected = max(2 * pal(proba, x), 1e-3) * entropy(proba, 2)
        assert scorer(proba, x) == pytest.approx(expected)


def test_where_pal_sees_no_gain_entropy_still_orders_the_events() -> None:
    # Thousands of agreeing labels on the spot: PAL's gain is 0 to the last bit there. A score
    # of 0 for every event would leave a variable threshold nothing to rank (it never asks).
    scorer, pal = ImbalanceAwareScorer(), PALScorer()
    for i in range(100):
        scorer(UNSURE, {"a": float(i % 10)})
        pal(UNSURE, {"a": float(i % 10)})
    for i in range(500):
        scorer.learn_one({"a": 5.0}, i % 100 == 0)
        pal.learn_one({"a": 5.0}, i % 100 == 0)
    assert scorer.mode == "rare"
    sure, surer = {True: 0.1, False: 0.9}, {True: 0.02, False: 0.98}
    assert pal(sure, {"a": 5.0}) == 0.0
    assert scorer(sure, {"a": 5.0}) == pytest.approx(1e-3 * entropy(sure, 2))
    assert scorer(sure, {"a": 5.0}) > scorer(surer, {"a": 5.0}) > 0.0


def test_an_unfamiliar_uncertain_event_outranks_a_familiar_one_and_a_sure_one() -> None:
    scorer = ImbalanceAwareScorer()
    for i in range(200):
        scorer(UNSURE, {"a": float(i % 100)})
    for i in range(100):
        scorer.learn_one({"a": float(i % 10)}, i % 25 == 0)
    assert scorer.mode == "rare"
    far, near = {"a": 90.0}, {"a": 5.0}
    assert scorer(UNSURE, far) > scorer(UNSURE, near)
    assert scorer(UNSURE, far) > scorer({True: 0.02, False: 0.98}, far)


def test_more_classes_lower_the_line_and_an_unseen_class_counts_as_rare() -> None:
    scorer = ImbalanceAwareScorer(n_classes=4)
    assert scorer.threshold == pytest.approx(0.1)
    for i in range(200):
        scorer.learn_one({"a": float(i)}, i % 3)  # class 3 never labelled
    assert scorer.rarest_share() == 0.0
    assert scorer.mode == "rare"
    for i in range(3000):
        scorer.learn_one({"a": float(i)}, i % 4)
    assert scorer.mode == "common"


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="rare_share"):
        ImbalanceAwareScorer(rare_share=0.5)
    with pytest.raises(ValueError, match="z"):
        ImbalanceAwareScorer(z=-1.0)


def test_scorer_survives_a_checkpoint() -> None:
    scorer = ImbalanceAwareScorer()
    for i in range(60):
        scorer(UNSURE, {"a": float(i)})
        scorer.learn_one({"a": float(i)}, i % 30 == 0)
    copy = pickle.loads(pickle.dumps(scorer))
    assert (copy.mode, copy.counts) == (scorer.mode, scorer.counts)
    x = {"a": 10.5}
    assert copy(UNSURE, x) == pytest.approx(scorer(UNSURE, x))


def test_the_default_gate_uses_it() -> None:
    gate = build_gate(budget=0.05)
    assert isinstance(gate.lanes[-1].scorer, ImbalanceAwareScorer)


def _positives_labelled(measure: str, seed: int) -> int:
    """Positives among the labels the balanced gate buys on a 1 %-fraud stream with a drift."""
    model = OnlineModel(make_model("logreg"), (False, True))
    learner = ActiveLearner(model, build_gate("balanced", measure, budget=0.05, seed=seed))
    positives = 0
    for i, (event, truth) in enumerate(drifting_transactions(8000, fraud_rate=0.01, seed=seed)):
        x = numeric_features(event)
        if learner.score(Transaction(f"e{i}", None, x, event)).decision.ask:
            learner.learn(Label(f"e{i}", truth, source="reviewer"))
            positives += truth
    return positives


def test_on_a_rare_class_it_labels_more_positives_than_entropy() -> None:
    # The stream holds about 80 frauds; B = 5 % buys about 400 labels.
    seeds = (1, 2, 3)
    auto = sum(_positives_labelled("auto", s) for s in seeds)
    plain = sum(_positives_labelled("entropy", s) for s in seeds)
    assert auto > 1.2 * plain, (auto, plain)


@pytest.mark.parametrize("strategy", ["variable", "split", "balanced"])
def test_every_strategy_spends_its_budget_where_pal_sees_no_gain(strategy: str) -> None:
    # Events on a few spots, labels almost all negative: the mix is rare, and PAL's gain is 0
    # once the spots are labelled. The threshold strategies must still spend B.
    budget, n = 0.05, 20_000
    gate = build_gate(strategy, "auto", budget=budget, seed=1)
    asked = 0
    for i in range(n):
        x = {"a": float(i % 3)}
        p = 0.02 + 0.01 * (i % 7)
        if gate.decide({True: p, False: 1 - p}, x).ask:
            asked += 1
            gate.learn_one(x, i % 97 == 0)
    assert gate.lanes[-1].scorer.mode == "rare"
    assert 0.9 * budget * n <= asked <= 1.05 * budget * n
