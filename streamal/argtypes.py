"""Argument types shared by the subcommands: a bad value is a usage error, not a traceback.

>>> positive_int("3"), non_negative("0.5"), fraction("0.02")
(3, 0.5, 0.02)
"""

from __future__ import annotations

import argparse
import math

__all__ = ["fraction", "non_negative", "positive_int"]


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1 (exclusive)")
    return value
