"""A synthetic, drifting, imbalanced transaction stream with ground truth.

It stands in for a fraud feed wherever the real one is not available (the demo, the tests, the
benchmark): every transaction looks like a card payment (amount, hour, distance from home,
card age, merchant category, channel), about ``fraud_rate`` of them are fraud, and the fraud
pattern changes abruptly at ``drift_at`` (from "large, far away, new card" to "night-time, online,
bursty"), so a model that stops learning is caught out.

Fraud transactions are drawn from their own distribution: the same factors shifted by a few
standard deviations along the current fraud pattern, as fraud is different behaviour rather
than the tail of normal behaviour. The classes overlap (a share of frauds look legitimate and
vice versa), but a linear online model can learn the boundary from a few hundred labels, which
makes "did active learning help?" a fair question rather than a model problem.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

__all__ = ["drifting_transactions"]

_CATEGORIES = ("grocery", "fuel", "travel", "electronics", "restaurant", "gaming", "fashion", "atm")
# How fraud shifts the latent factors (amount, distance, card_age, night, online, velocity),
# in standard deviations, before and after the drift.
_BEFORE = (2.2, 1.8, -1.8, 0.3, 0.0, 0.3)
_AFTER = (0.3, 0.0, -0.3, 2.2, 1.5, 2.4)


def drifting_transactions(
    n: int,
    fraud_rate: float = 0.02,
    drift_at: int | None = None,
    seed: int = 42,
    start_time: float = 1_700_000_000.0,
    events_per_second: float = 50.0,
) -> Iterator[tuple[dict[str, Any], bool]]:
    """Yield ``(transaction, is_fraud)`` pairs, one at a time (nothing is held in memory).

    Parameters
    ----------
    n
        Number of transactions.
    fraud_rate
        Expected share of fraud, e.g. 0.02.
    drift_at
        Index of the first transaction under the new fraud pattern; default ``n // 2``.
    seed
        Same seed, same stream.
    start_time, events_per_second
        Event times (epoch seconds) advance at this average rate.

    Examples
    --------
    >>> stream = list(drifting_transactions(20_000, seed=1))
    >>> rate = sum(y for _, y in stream) / len(stream)
    >>> 0.015 < rate < 0.025
    True
    >>> sorted(stream[0][0])
    ['amount', 'card_age_days', 'category', 'distance_km', 'event_id', 'hour', 'online', \
'timestamp', 'tx_last_hour']
    """
    rng = random.Random(seed)
    drift_at = n // 2 if drift_at is None else drift_at
    t = start_time
    for i in range(n):
        shift = _BEFORE if i < drift_at else _AFTER
        fraud = rng.random() < fraud_rate
        z = [rng.gauss(s if fraud else 0.0, 1.0) for s in shift]
        online = z[4] > 0.0
        t += rng.expovariate(events_per_second)
        event = {
            "event_id": f"tx-{seed}-{i:09d}",
            "timestamp": round(t, 3),
            "amount": round(120.0 + 40.0 * z[0], 2),
            "distance_km": round(25.0 + 10.0 * z[1], 1),
            "card_age_days": round(700.0 + 200.0 * z[2]),
            "hour": round(12.0 + 3.0 * z[3], 2),
            "online": online,
            "tx_last_hour": round(3.0 + z[5], 2),
            "category": _CATEGORIES[rng.randrange(len(_CATEGORIES))],
        }
        yield event, fraud
