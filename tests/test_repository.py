"""Checks on the repository itself: lint, types, and the README staying true to the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from streamal.adapters.metrics import Metrics
from streamal.config import settings_table
from streamal.core.messages import ClassSet

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean() -> None:
    lint = _run(sys.executable, "-m", "ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    result = _run(sys.executable, "-m", "mypy", "streamal")
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_configuration_table_is_generated_from_the_settings() -> None:
    # Regenerate: python -c "from streamal.config import settings_table as t; print(t())"
    assert settings_table() in README


def test_readme_metrics_table_matches_the_registry() -> None:
    exported = {m.name for m in Metrics(ClassSet(), ["reviewer"]).registry.collect()}
    documented = set(re.findall(r"^\| `(streamal_[a-z_]+)", README, flags=re.MULTILINE))
    # prometheus_client reports counters without their _total suffix.
    documented = {re.sub(r"_total$", "", name) for name in documented}
    assert documented == exported


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in README
