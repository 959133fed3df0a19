"""The numeric fields of a synthetic transaction as model features (the core tests' shortcut
for the service's feature extraction)."""

from collections.abc import Mapping


def numeric_features(event: Mapping[str, object]) -> dict[str, float]:
    return {k: float(v) for k, v in event.items() if isinstance(v, int | float)}
