"""``streamal demo`` end to end: embedded broker, service, simulated reviewer, summary and plot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamal.cli import main


@pytest.mark.kafka
@pytest.mark.slow
def test_demo_runs_the_whole_system_and_compares_with_random(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # No broker configured: the demo must start its own embedded broker.
    for name in list(os.environ):
        if name.startswith("STREAMAL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    plot = tmp_path / "c.png"

    code = main(
        [
            "demo",
            "--events",
            "4000",
            "--rate",
            "0",
            "--review-delay",
            "0.2",
            "--window",
            "1000",
            "--plot",
            str(plot),
            "--http-port",
            "0",
            "--log-level",
            "warning",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "embedded broker" in out
    for column in ("streamal", "(live)", "(offline)", "random"):
        assert column in out
    assert "events scored" in out and "4,000" in out
    assert "fraud recall" in out
    assert "learning curves:" in out
