"""Every measure with every model: it runs a prequential stream, or it is refused at once.

The matrix the README promises: the committee measures need an ensemble (``arf``), expected
model change a binary logistic model (``logreg``, ``logreg-slow``); every other measure works
with every model. A measure that applies must score, ask and learn from a cold start; one that
does not must fail when the gate is built, with a message that names what it needs.
"""

from __future__ import annotations

import pytest

from streamal.core.evaluator import prequential
from streamal.core.learner import ActiveLearner
from streamal.core.model import MODELS, OnlineModel, make_model
from streamal.core.policy import MEASURE_NAMES, build_gate, slack
from streamal.core.synthetic import drifting_transactions

NEEDS = {
    "vote_entropy": ({"arf"}, "needs an ensemble model"),
    "kl_divergence": ({"arf"}, "needs an ensemble model"),
    "gradient": ({"logreg", "logreg-slow"}, "binary linear models"),
}
N, BUDGET = 2000, 0.05


def _learner(kind: str, measure: str) -> ActiveLearner:
    model = make_model(kind, n_classes=2, seed=1)
    gate = build_gate("balanced", measure, BUDGET, model=model, seed=1)
    return ActiveLearner(OnlineModel(model, classes=[False, True], kind=kind), gate)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("measure", MEASURE_NAMES)
def test_a_measure_runs_with_every_model_it_applies_to(measure: str, kind: str) -> None:
    applies, message = NEEDS.get(measure, (set(MODELS), ""))
    if kind not in applies:
        with pytest.raises(TypeError, match=message):
            _learner(kind, measure)
        return
    learner = _learner(kind, measure)
    report = prequential(drifting_transactions(N, seed=3), learner, label_delay=20)
    assert report.events == N
    # the balanced strategy's head start (a quarter window's labels) is repaid as it goes
    assert 0.9 * BUDGET * N <= report.requested <= BUDGET * N + slack(BUDGET, 1000)
    assert report.labels_learned == report.requested  # delayed, and all delivered by the end
