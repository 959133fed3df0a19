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
