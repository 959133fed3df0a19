"""Two stacked panels written to a PNG: the figure scaffolding the demo and ``evaluate`` share.

matplotlib is an optional dependency (the ``demo`` extra), imported only when a plot is asked
for, on the file backend so that no display is needed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["file_formats", "pyplot", "two_panels"]


def pyplot() -> Any:
    """matplotlib's pyplot on the file backend, or ``None`` when it is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def file_formats() -> set[str]:
    """The file extensions matplotlib can save to (``png``, ``pdf``, ``svg``...), so a command
    can refuse an output name before an hour-long run rather than fail at the end of it.
    ``pgf`` only where its TeX system is installed (matplotlib runs it to save one)."""
    import matplotlib
    from matplotlib.backend_bases import FigureCanvasBase

    formats = set(FigureCanvasBase.get_supported_filetypes())
    if shutil.which(matplotlib.rcParams["pgf.texsystem"]) is None:
        formats.discard("pgf")
    return formats


@contextlib.contextmanager
def two_panels(
    plt: Any, path: Path, figsize: tuple[float, float] = (9, 7)
) -> Iterator[tuple[Any, Any]]:
    """Yield the axes of two panels sharing their x axis; on a clean exit, lay them out and
    save them to ``path``. The figure is closed either way (pyplot keeps every open one)."""
    fig, axes = plt.subplots(2, 1, figsize=figsize, sharex=True)
    try:
        yield axes[0], axes[1]
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
