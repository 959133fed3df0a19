"""The most requests in any window of consecutive events: the spend cap the core tests check."""

from itertools import accumulate


def max_window(asked: list[bool], window: int = 1000) -> int:
    """Largest number of ``True`` in any ``window`` consecutive entries (shorter lists: all).

    >>> max_window([True, False, True, True, False], window=2)
    2
    """
    sums = [0, *accumulate(int(a) for a in asked)]
    return max((sums[i] - sums[max(0, i - window)] for i in range(1, len(sums))), default=0)
