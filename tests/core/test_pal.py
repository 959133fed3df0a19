import itertools
import math
import pickle

import numpy as np
import pytest
from event_features import numeric_features
from hypothesis import given
from hypothesis import strategies as st

from streamal.core.learner import ActiveLearner
from streamal.core.messages import Label, Transaction
from streamal.core.model import OnlineModel, make_model
from streamal.core.pal import LabelFrequency, PALScorer, expected_cost_reduction
from streamal.core.policy import build_gate
from streamal.core.synthetic import drifting_transactions


def test_gain_by_hand_two_classes() -> None:
    # counts (1, 0), prior 1: alpha = (2, 1). Now: decide 0, cost E[p1] = 1/3. One more label
    # never flips the decision (gain 0); two: (2,0) 6/60 + 2·(1,1) 4/60 + (0,2) 4/60 = 18/60.
    assert expected_cost_reduction([1.0, 0.0], prior=1.0) == pytest.approx((1 / 3 - 0.3) / 2)


def test_gain_by_hand_three_classes() -> None:
    # Nothing known, prior 1: cost 2/3 now, 1/2 after one label, 1/2 after two.
    assert expected_cost_reduction([0.0, 0.0, 0.0], prior=1.0) == pytest.approx(1 / 6)


def _generic(counts: list[float], prior: float, m_max: int) -> float:
    """The textbook sum over labellings, by brute force, to check the unrolled binary path."""
    k = len(counts)
    alpha = [c + prior for c in counts]

    def moment(powers: list[int]) -> float:
        out = math.lgamma(sum(alpha)) - math.lgamma(sum(alpha) + sum(powers))
        for a, n in zip(alpha, powers, strict=True):
            out += math.lgamma(a + n) - math.lgamma(a)
        return math.exp(out)

    costs = []
    for m in range(m_max + 1):
        total = 0.0
        for labels in itertools.product(range(k), repeat=m):  # ordered: no coefficients
            extra = [labels.count(c) for c in range(k)]
            after = [c + e for c, e in zip(counts, extra, strict=True)]
            decision = after.index(max(after))
            for y in range(k):
                if y != decision:
                    total += moment([e + (c == y) for c, e in enumerate(extra)])
        costs.append(total)
    return max(0.0, max((costs[0] - costs[m]) / m for m in range(1, m_max + 1)))


@given(
    st.lists(st.floats(0.0, 50.0), min_size=2, max_size=3),
    st.sampled_from([1e-3, 0.5, 1.0]),
    st.integers(1, 3),
)
def test_gain_equals_the_brute_force_sum(counts: list[float], prior: float, m_max: int) -> None:
    got = expected_cost_reduction(counts, prior, m_max)
    assert got == pytest.approx(_generic(counts, prior, m_max), rel=1e-6, abs=1e-12)
    assert 0.0 <= got <= 1.0


def test_gain_falls_as_labels_accumulate() -> None:
    # Near a toss-up, PAL keeps asking longer than where the labels clearly agree.
    close = [expected_cost_reduction([n * 0.55, n * 0.45]) for n in (0, 1, 5, 20)]
    clear = [expected_cost_reduction([n * 0.7, n * 0.3]) for n in (0, 1, 5, 20)]
    assert close == sorted(close, reverse=True)
    assert clear[2] == 0.0 < close[2]
    assert close[-1] < 1e-3


def test_label_frequency_counts_nearby_labels_only() -> None:
    freq = LabelFrequency(window=10)
    for i in range(200):
        freq.observe({"a": float(i % 20), "b": float(i % 7)})
    for _ in range(3):
        freq.learn_one({"a": 5.0, "b": 3.0})
    freq.learn_one({"a": 15.0, "b": 1.0})
    assert freq.count({"a": 5.0, "b": 3.0}) == pytest.approx(3.0, abs=0.05)
    assert freq.count({"a": 15.0, "b": 1.0}) == pytest.approx(1.0, abs=0.05)
    assert freq.count({"a": 10.0, "b": 6.0}) < 0.05


def test_label_frequency_scale_is_the_exponentially_weighted_mean_and_variance() -> None:
    # The running scale, against the weighted mean and variance computed from scratch (weight
    # decay ** age for an event `age` events old).
    half_life = 50.0
    freq = LabelFrequency(half_life=half_life)
    values = [float((7 * i) % 13) + (i / 40.0) for i in range(300)]
    for v in values:
        freq.observe({"a": v, "b": 2.0 * v})
    decay = 0.5 ** (1.0 / half_life)
    weights = [decay ** (len(values) - 1 - i) for i in range(len(values))]
    total = sum(weights)
    mean = sum(w * v for w, v in zip(weights, values, strict=True)) / total
    var = sum(w * (v - mean) ** 2 for w, v in zip(weights, values, strict=True)) / total
    assert freq._mean.tolist() == pytest.approx([mean, 2.0 * mean])
    assert freq._var.tolist() == pytest.approx([var, 4.0 * var])


def _direct_count(freq: LabelFrequency, x: dict[str, float]) -> float:
    v = freq._vector(x, grow=False)
    scale_sq = [max(var, 1e-12) for var in freq._var]
    total = 0.0
    for row in freq._data[: freq._n]:
        d2 = sum((a - b) ** 2 / s for a, b, s in zip(row, v, scale_sq, strict=True))
        total += math.exp(-freq._gamma * d2)
    return total


def test_label_frequency_count_is_the_kernel_sum_even_with_epoch_seconds_among_features() -> None:
    # count() expands the squared distance around a centre (one BLAS product, no cancellation):
    # it must equal the plain sum, with a feature of size 1.7e9 beside features of size 1.
    freq = LabelFrequency(window=40)

    def event(i: int) -> dict[str, float]:
        return {"t": 1.7e9 + 37.0 * i, "a": float(i % 7) / 3.0, "b": float((5 * i) % 11)}

    for i in range(300):
        freq.observe(event(i))
        if i % 4 == 0:
            freq.learn_one(event(i))
    for i in (3, 150, 297, 299):
        assert freq.count(event(i)) == pytest.approx(_direct_count(freq, event(i)), rel=1e-9)
    # The bandwidth comes from running sums over the ring (75 labels through a ring of 40,
    # re-centred on the way): the same as from the labelled events' variance directly.
    freq.learn_one(event(299))  # the bandwidth is set at each label, in the scale of then
    n = freq._n
    spread = (np.var(freq._data[:n], axis=0) / np.maximum(freq._var, 1e-12)).sum()
    assert freq._gamma == pytest.approx((n - 1) * math.log((n - 1) / 2e-12) / (4 * n * spread))
    assert freq.count({"t": 1.0, "a": 50.0, "b": -40.0}) == 0.0  # far from every label


def test_label_frequency_from_a_checkpoint_before_the_design_rows_counts_the_same() -> None:
    freq = LabelFrequency(window=20)
    for i in range(100):
        freq.observe({"a": float(i % 10), "b": float(i % 3)})
        if i % 5 == 0:
            freq.learn_one({"a": float(i % 10), "b": float(i % 3)})
    state = dict(freq.__dict__)
    for name in ("_design", "_centre", "_sums", "_since_centre"):  # not in an older checkpoint
        del state[name]
    old = LabelFrequency.__new__(LabelFrequency)
    old.__setstate__(state)
    probe = {"a": 4.0, "b": 1.0}
    assert old.count(probe) == pytest.approx(freq.count(probe), rel=1e-12)


def test_label_frequency_forgets_beyond_its_window_and_reads_missing_features_as_zero() -> None:
    freq = LabelFrequency(window=3)
    for i in range(100):
        freq.observe({"a": float(i % 10), "cat=x": float(i % 2)})
    freq.learn_one({"a": 2.0})  # "cat=x" missing: 0
    assert freq.count({"a": 2.0, "cat=x": 0.0}) == pytest.approx(1.0)
    for _ in range(3):
        freq.learn_one({"a": 8.0, "cat=x": 1.0})
    assert freq.count({"a": 2.0}) < 0.05  # pushed out of the ring buffer


def test_labels_taught_to_the_gate_lower_the_utility_there() -> None:
    model = OnlineModel(make_model("logreg"), (False, True))
    learner = ActiveLearner(model, build_gate("quantile", "pal", budget=0.1, seed=1))
    stream = list(drifting_transactions(3000, seed=3))
    scorer = learner.gate.lanes[-1].scorer
    assert isinstance(scorer, PALScorer)
    for i, (event, truth) in enumerate(stream):
        scored = learner.score(Transaction(f"e{i}", None, numeric_features(event), event))
        if scored.decision.ask:
            learner.learn(Label(f"e{i}", truth, source="reviewer"))
    asked = scorer.frequency._n
    assert 0.08 * 3000 <= asked <= 0.105 * 3000
    # Events like the labelled ones now look well known; a far-away one does not.
    probe = numeric_features(stream[-1][0])
    far = {k: v * 50 + 1000 for k, v in probe.items()}
    proba = {False: 0.5, True: 0.5}
    assert scorer(proba, far) > scorer(proba, probe)


def test_scorer_survives_a_checkpoint() -> None:
    scorer = PALScorer()
    for i in range(50):
        scorer({True: 0.4, False: 0.6}, {"a": float(i)})
        scorer.learn_one({"a": float(i)}, True)
    copy = pickle.loads(pickle.dumps(scorer))
    x = {"a": 10.5}
    assert copy({True: 0.4, False: 0.6}, x) == pytest.approx(scorer({True: 0.4, False: 0.6}, x))
