"""The container image's recipe, checked without a Docker engine: hadolint, and the properties
the chart relies on (non-root numeric user, exec-form ``streamal serve``, settings from the
environment, no build tools in the final stage, a build context that holds only the package)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from deploy_support import ROOT, run_tool

DOCKERFILE = ROOT / "docker" / "Dockerfile"
TEXT = DOCKERFILE.read_text()


def _stages() -> list[str]:
    """The Dockerfile's stages, each from its FROM line on (comments and continuations kept)."""
    return ["FROM" + part for part in re.split(r"^FROM", TEXT, flags=re.MULTILINE)[1:]]


def test_hadolint_passes(hadolint: Path) -> None:
    done = run_tool(hadolint, "--failure-threshold", "info", DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("recipe", "rule"),
    [
        ("FROM python:latest\nRUN pip install requests\n", "DL3007"),
        ("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y curl\n", "DL3008"),
        ("FROM python:3.11-slim\nCMD streamal serve\n", "DL3025"),
    ],
    ids=["latest-tag", "unpinned-apt", "shell-form-cmd"],
)
def test_hadolint_rejects_a_bad_recipe(
    hadolint: Path, tmp_path: Path, recipe: str, rule: str
) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(recipe)
    done = run_tool(hadolint, path)
    assert done.returncode != 0 and rule in done.stdout, done.stdout


def test_multi_stage_with_a_slim_runtime_and_no_build_tools() -> None:
    builder, runtime = _stages()
    assert "AS builder" in builder.splitlines()[0]
    assert "pip wheel" in builder
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in TEXT
    assert runtime.splitlines()[0] == "FROM ${PYTHON_IMAGE}"
    # The runtime installs the builder's wheels offline and compiles nothing.
    assert "--no-index" in runtime and "from=builder" in runtime
    for tool in ("gcc", "build-essential", "apt-get", "COPY . "):
        assert tool not in runtime, tool


def test_runs_as_a_numeric_non_root_user_with_an_exec_form_entrypoint() -> None:
    runtime = _stages()[-1]
    users = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
    assert users == ["10001:10001"], "numeric, so Kubernetes can verify runAsNonRoot"
    assert re.search(r'^ENTRYPOINT \["streamal", "serve"\]$', runtime, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD \[", runtime, flags=re.MULTILINE)
    assert "/livez" in runtime
    # Settings only from the environment: the bind address for a container, nothing else.
    env = re.search(r"^ENV ((?:.*\\\n)*.*)$", runtime, flags=re.MULTILINE)
    assert env is not None
    assigned = dict(re.findall(r"(\w+)=(\S+)", env.group(1)))
    assert assigned["STREAMAL_HTTP_HOST"] == "0.0.0.0"
    streamal = {k for k in assigned if k.startswith("STREAMAL_")}
    assert streamal == {"STREAMAL_HTTP_HOST", "STREAMAL_HTTP_PORT"}
    assert "EXPOSE 8000" in runtime


def test_build_context_holds_only_what_the_wheel_needs() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "deny by default: no .git, .venv, tests or data in the context"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "streamal"}
    copied = set(re.findall(r"^COPY (?!--)(.+) \S+$", TEXT, flags=re.MULTILINE))
    sources = {s for line in copied for s in line.split()}
    assert sources <= allowed, sources - allowed
    for name in sources:
        assert (ROOT / name).exists(), name


def test_readme_names_every_setting_the_image_sets() -> None:
    """The README's "Build the image" says which STREAMAL_* variables the image sets: an
    operator reads it to know what a plain `docker run` gets without being told."""
    runtime = _stages()[-1]
    env = re.search(r"^ENV ((?:.*\\\n)*.*)$", runtime, flags=re.MULTILINE)
    assert env is not None
    in_image = {k: v for k, v in re.findall(r"(STREAMAL_\w+)=(\S+)", env.group(1))}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Build the image") : readme.index("### Install against")]
    sentence = re.search(r"sets only (.*?)\.\n", section, flags=re.DOTALL)
    assert sentence is not None, "the README says what the image sets"
    in_readme = dict(re.findall(r"`(STREAMAL_\w+)=([^`]+)`", sentence.group(1)))
    assert in_readme == in_image
