"""Query by committee: vote entropy and KL from the consensus by hand; River ensembles."""

from __future__ import annotations

import math
from typing import Any

import pytest
from river import ensemble, forest, linear_model, preprocessing, tree

from streamal.core.committee import committee_probas, kl_to_consensus, vote_entropy
from streamal.core.model import make_model
from streamal.core.scorers import CommitteeScorer


def _votes(*winners: int, n_classes: int = 2) -> list[dict[int, float]]:
    """One member per winner, each sure of its class."""
    return [
        {c: 0.9 if c == w else 0.1 / (n_classes - 1) for c in range(n_classes)} for w in winners
    ]


@pytest.mark.parametrize(
    ("members", "n_classes", "expected"),
    [
        # votes 2:1 on two classes: H(2/3, 1/3) / log 2
        (_votes(0, 0, 1), 2, -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(2)),
        # three classes, one vote each: the largest disagreement three members can show
        (_votes(0, 1, 2, n_classes=3), 3, 1.0),
        # three classes, two members that disagree: normalised by log min(K, members) = log 2
        (_votes(0, 1, n_classes=3), 3, 1.0),
        # votes 2:1:1 on three classes: H(1/2, 1/4, 1/4) / log 3
        (_votes(0, 0, 1, 2, n_classes=3), 3, (0.5 * math.log(2) + 0.5 * math.log(4)) / math.log(3)),
        # unanimous, however unsure each member is
        ([{0: 0.51, 1: 0.49}, {0: 0.6, 1: 0.4}, {0: 0.99, 1: 0.01}], 2, 0.0),
    ],
)
def test_vote_entropy_by_hand(
    members: list[dict[int, float]], n_classes: int, expected: float
) -> None:
    assert vote_entropy(members, n_classes) == pytest.approx(expected, abs=1e-12)


def test_vote_entropy_of_an_empty_or_single_committee() -> None:
    assert vote_entropy([]) == 1.0  # nothing known: as uncertain as can be
    assert vote_entropy([{}, {}]) == 1.0  # members that have not learned yet
    assert vote_entropy([{0: 0.5, 1: 0.5}]) == 0.0  # one member cannot disagree with itself


@pytest.mark.parametrize(
    ("members", "expected_kl"),
    [
        # consensus (.5, .5); each member: .9 log 1.8 + .1 log .2
        ([{0: 0.9, 1: 0.1}, {0: 0.1, 1: 0.9}], 0.9 * math.log(1.8) + 0.1 * math.log(0.2)),
        # sure members of different classes: consensus (.5, .5, 0), each KL = log 2
        ([{"a": 1.0}, {"b": 1.0}], math.log(2)),
        # same vote, different confidence: vote entropy sees nothing, KL does
        (
            [{0: 0.9, 1: 0.1}, {0: 0.6, 1: 0.4}],
            0.5
            * (
                0.9 * math.log(0.9 / 0.75)
                + 0.1 * math.log(0.1 / 0.25)
                + 0.6 * math.log(0.6 / 0.75)
                + 0.4 * math.log(0.4 / 0.25)
            ),
        ),
        ([{0: 0.3, 1: 0.7}] * 4, 0.0),
    ],
)
def test_kl_to_consensus_by_hand(members: list[dict[object, float]], expected_kl: float) -> None:
    assert kl_to_consensus(members) == pytest.approx(1 - math.exp(-expected_kl), abs=1e-12)


def test_kl_sees_confidence_where_votes_agree() -> None:
    members = [{0: 0.9, 1: 0.1}, {0: 0.6, 1: 0.4}]
    assert vote_entropy(members) == 0.0 < kl_to_consensus(members)


def test_kl_of_a_committee_that_knows_nothing() -> None:
    assert kl_to_consensus([]) == 1.0
    assert kl_to_consensus([{}, {}]) == 1.0


def _learned(model: Any, n: int = 60) -> Any:
    for i in range(n):
        model.learn_one({"a": float(i % 10), "b": float(i % 7)}, i % 10 < 5)
    return model


@pytest.mark.parametrize(
    "model",
    [
        forest.ARFClassifier(n_models=3, seed=1),
        ensemble.BaggingClassifier(tree.HoeffdingTreeClassifier(), n_models=4, seed=1),
        preprocessing.StandardScaler() | forest.ARFClassifier(n_models=3, seed=1),
    ],
    ids=["arf", "bagging", "scaled-arf"],
)
def test_every_member_of_a_river_ensemble_answers(model: Any) -> None:
    members = committee_probas(_learned(model), {"a": 3.0, "b": 1.0})
    size = getattr(model, "n_models", None) or model.steps["ARFClassifier"].n_models
    assert len(members) == size
    for proba in members:
        assert sum(proba.values()) == pytest.approx(1.0)


def test_an_ensemble_before_its_first_label_is_an_empty_committee() -> None:
    """River's ARF grows its trees on the first label: until then it has no members."""
    model = make_model("arf", n_classes=2, seed=1)
    assert committee_probas(model, {"a": 1.0}) == []
    scorer = CommitteeScorer(model, "vote_entropy")
    assert scorer({True: 0.5, False: 0.5}, {"a": 1.0}) == 1.0
    model.learn_one({"a": 1.0}, True)
    assert len(committee_probas(model, {"a": 1.0})) >= 2


@pytest.mark.parametrize(
    "model",
    [
        linear_model.LogisticRegression(),
        preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        tree.HoeffdingAdaptiveTreeClassifier(),
    ],
    ids=["logreg", "scaled-logreg", "hat"],
)
def test_a_model_that_is_no_committee_is_refused(model: Any) -> None:
    with pytest.raises(TypeError, match="needs an ensemble model"):
        committee_probas(model, {"a": 1.0})
    with pytest.raises(TypeError, match="needs an ensemble model"):
        CommitteeScorer(model, "kl_divergence")


@pytest.mark.parametrize("name", ["vote_entropy", "kl_divergence"])
def test_the_scorer_asks_the_models_members(name: str) -> None:
    model = _learned(make_model("arf", n_classes=2, seed=2), 200)
    scorer = CommitteeScorer(model, name)
    x = {"a": 4.0, "b": 3.0}
    members = committee_probas(model, x)
    measure = vote_entropy if name == "vote_entropy" else kl_to_consensus
    assert scorer({True: 0.5, False: 0.5}, x) == measure(members)
