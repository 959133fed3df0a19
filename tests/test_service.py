"""The service's set-up without a broker: what it tells the operator about its settings."""

from __future__ import annotations

import pytest

from streamal.config import Settings
from streamal.service import Service


def test_a_budget_window_too_short_for_the_budget_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="streamal"):
        Service(Settings(budget=0.002, budget_window=1000))
    assert "2 labels per window" in caplog.text
    assert "a budget_window of at least 5000 keeps it" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="streamal"):
        Service(Settings(budget=0.002, budget_window=5000))
    assert "labels per window" not in caplog.text


@pytest.mark.parametrize("measure", ["vote_entropy", "kl_divergence", "gradient"])
def test_a_measure_that_reads_one_model_is_refused_with_one_model_per_source(
    measure: str,
) -> None:
    model = "arf" if measure != "gradient" else "logreg"
    Service(Settings(model=model, measure=measure))  # one model: fine
    with pytest.raises(ValueError, match="label policy split keeps one model per label source"):
        Service(Settings(model=model, measure=measure, label_policy="split"))
