"""Number formatting shared by the live view and the summary: a missing figure reads ``n/a``."""

from __future__ import annotations

import math

__all__ = ["finite_mean", "fmt", "ratio"]


def ratio(num: int, den: int) -> float:
    """``num / den``, NaN when there is nothing to divide by.

    >>> ratio(1, 4), ratio(1, 0)
    (0.25, nan)
    """
    return num / den if den else float("nan")


def fmt(value: float, pct: bool = False) -> str:
    """Three decimals or a whole percentage; ``n/a`` for NaN.

    >>> fmt(0.1234), fmt(0.1234, pct=True), fmt(math.nan)
    ('0.123', '12%', 'n/a')
    """
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:.0f}%" if pct else f"{value:.3f}"


def finite_mean(values: list[float]) -> float:
    """The mean of the values that are not NaN (days without fraud have no recall).

    >>> finite_mean([1.0, math.nan, 0.0])
    0.5
    """
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
