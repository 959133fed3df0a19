"""Fixtures of the deployment checks: the tools (installed on first use) and the rendered chart.

No cluster and no Docker engine are needed: the chart is rendered with ``helm template`` and its
output checked offline, the rules with ``promtool``, the Dockerfile with ``hadolint``. The tools
come from :mod:`deploy_tools`, cached outside the repository.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from deploy_support import CHART, Helm, tool, values_file


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(tool("helm"))


@pytest.fixture(scope="session")
def promtool() -> Path:
    return tool("promtool")


@pytest.fixture(scope="session")
def hadolint() -> Path:
    return tool("hadolint")


@pytest.fixture(scope="session")
def kubernetes_validate() -> Path:
    return tool("kubernetes-validate")


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> Callable[[str], list[dict[str, Any]]]:
    """``rendered(variant)``: the manifests of a values variant, rendered once per session."""

    @cache
    def render(variant: str) -> list[dict[str, Any]]:
        path = values_file(variant)
        return helm.render(*([path] if path else []))

    return render


@pytest.fixture
def chart_copy(tmp_path: Path) -> Iterator[Path]:
    """A private copy of the chart, free to break."""
    copy = tmp_path / "streamal"
    shutil.copytree(CHART, copy)
    yield copy
