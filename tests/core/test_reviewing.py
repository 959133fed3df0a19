"""The simulated review team: capacity per hour, delay distribution, label noise, determinism."""

from __future__ import annotations

import statistics

import pytest

from streamal.core.reviewing import Review, ReviewerModel

HOUR = 3600.0


def _requests(every: float, hours: float) -> list[float]:
    return [i * every for i in range(int(hours * HOUR / every))]


def test_capacity_per_hour_is_respected_in_every_hour() -> None:
    team = ReviewerModel(per_hour=60, median_delay=60, seed=1)
    times = _requests(every=10.0, hours=10)  # 360 an hour asked, 60 an hour possible
    accepted = [t for t in times if team.review(t) is not None]
    assert team.accepted == len(accepted) and team.dropped == len(times) - len(accepted)
    # At most the burst (an hour's worth) plus the refill, in any window.
    for start in range(0, 9 * int(HOUR), 600):
        in_hour = sum(start <= t < start + HOUR for t in accepted)
        assert in_hour <= 60 + 60
    assert 60 * 10 <= len(accepted) <= 60 + 60 * 10 + 1
    # After the initial burst the pace is exactly the capacity.
    late = [t for t in accepted if t >= 2 * HOUR]
    assert len(late) == pytest.approx(60 * 8, abs=2)


def test_without_a_capacity_every_request_is_answered() -> None:
    team = ReviewerModel(per_hour=None, seed=1)
    assert all(team.review(t) is not None for t in _requests(every=1.0, hours=1))
    assert team.dropped == 0


def test_delays_are_lognormal_around_the_median() -> None:
    team = ReviewerModel(median_delay=1800, delay_sigma=1.0, seed=2)
    reviews = [team.review(t) for t in _requests(every=1.0, hours=2)]
    delays = [r.delay for r in reviews if r is not None]
    assert statistics.median(delays) == pytest.approx(1800, rel=0.05)
    assert min(delays) > 0
    assert statistics.mean(delays) > statistics.median(delays)  # a long right tail
    fixed = ReviewerModel(median_delay=30, delay_sigma=0.0)
    assert {fixed.review(float(t)).delay for t in range(100)} == {30.0}  # type: ignore[union-attr]


def test_noise_flips_the_stated_share_of_answers() -> None:
    team = ReviewerModel(noise=0.1, seed=3)
    reviews = [team.review(float(t)) for t in range(20_000)]
    flipped = [r for r in reviews if r is not None and r.flipped]
    assert len(flipped) / len(reviews) == pytest.approx(0.1, abs=0.01)
    assert all(r.label(True) is False and r.label(False) is True for r in flipped)
    clean = ReviewerModel(noise=0.0, seed=3)
    assert not any(clean.review(float(t)).flipped for t in range(1000))  # type: ignore[union-attr]


def test_same_seed_same_answers_whatever_the_capacity() -> None:
    times = _requests(every=5.0, hours=3)

    def answers(per_hour: float | None) -> list[Review | None]:
        team = ReviewerModel(per_hour=per_hour, median_delay=600, noise=0.2, seed=4)
        return [team.review(t) for t in times]

    unlimited = answers(None)
    assert unlimited == answers(None)
    capped = answers(100)
    assert any(r is None for r in capped)
    # Common random numbers: an accepted request gets the answer it would get with no cap.
    assert all(c == u for c, u in zip(capped, unlimited, strict=True) if c is not None)


@pytest.mark.parametrize(
    "kwargs",
    [{"noise": -0.1}, {"noise": 1.5}, {"median_delay": -1.0}, {"delay_sigma": -1.0}],
)
def test_rejects_impossible_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReviewerModel(**kwargs)  # type: ignore[arg-type]


def test_a_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ReviewerModel(per_hour=0)


def test_the_kafka_reviewer_applies_the_model_to_each_request() -> None:
    # The reviewer's bookkeeping, without a broker: what it would answer, and when.
    from streamal.config import Settings
    from streamal.reviewer import SimulatedReviewer

    truth = {f"e{i}": True for i in range(200)}
    model = ReviewerModel(per_hour=100, burst=100, median_delay=5, noise=0.5, seed=1)
    reviewer = SimulatedReviewer(Settings(), truth.get, model=model)
    for event_id in truth:
        reviewer._take(f'{{"event_id": "{event_id}", "reason": "uncertainty"}}'.encode())
    assert reviewer.seen == 200
    assert reviewer.dropped == model.dropped == 100  # one hour's burst, then nothing
    assert reviewer.outstanding == 100 == len(reviewer._due)
    answers = [answer for _, _, _, answer in reviewer._due]
    assert answers.count(False) == reviewer.flipped == pytest.approx(50, abs=15)
