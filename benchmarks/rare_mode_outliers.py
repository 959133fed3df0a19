"""What asking about outliers in ``auto``'s rare mode does, on synthetic and on real fraud.

Candidates for the 1 %-positive stream, measured and not taken (``benchmarks/README.md``,
"Positives in the training set"). Once a class is rare among the labels, the default measure
scores an event by PAL's gain times entropy; the variants score it by

* ``--rule outliers``: ``max(gain × entropy, (1 − typicality) ** power)``, typicality from
  :class:`streamal.core.density.DiagonalGaussianDensity` learned on every event;
* ``--rule norm``: ``gain × entropy × ‖[x̃, 1]‖ ** power``, the length of the scaled event
  (:func:`streamal.core.model_change.input_norm`): at power 1, PAL's gain times the expected
  gradient length's shape, so expected model change inside rare mode.

The default strategy (``balanced``), the benchmark's model and label delay, for every row.

Run it from the benchmark virtualenv (``fdh`` needs the handbook's data beside the project)::

    python benchmarks/rare_mode_outliers.py --stream imbalanced --seeds 1-10
    python benchmarks/rare_mode_outliers.py --stream fdh --seeds 6-10 --events 100000
    python benchmarks/rare_mode_outliers.py --rule norm --powers 0,0.5,2 --stream imbalanced
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Hashable, Mapping
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare_strategies as cs  # noqa: E402

from streamal.core import policy  # noqa: E402
from streamal.core.density import DiagonalGaussianDensity  # noqa: E402
from streamal.core.imbalance import ImbalanceAwareScorer  # noqa: E402
from streamal.core.model_change import input_norm  # noqa: E402

#: The variant's power; 0 for the default measure unchanged. Set in each worker.
POWER = 0.0
#: ``outliers`` or ``norm``. Set in each worker.
RULE = "outliers"


class OutlierAwareScorer(ImbalanceAwareScorer):
    """``auto``, with the stream's outliers asked about too while a class is rare."""

    def __init__(self, n_classes: int = 2, power: float = 1.0) -> None:
        super().__init__(n_classes)
        self.power = power
        self.typicality = DiagonalGaussianDensity()

    def __call__(self, proba: Mapping[Hashable, float], x: Mapping[str, float] | None) -> float:
        outlier = 0.0
        if x:
            outlier = 1.0 - self.typicality.density(x)
            self.typicality.learn_one(x)
        if not self.rare_mode:
            return super().__call__(proba, x)
        return max(super().__call__(proba, x), outlier**self.power)


class NormAwareScorer(ImbalanceAwareScorer):
    """``auto``, with its rare-mode score times the scaled event's length to a power."""

    def __init__(self, model: Any, n_classes: int = 2, power: float = 1.0) -> None:
        super().__init__(n_classes)
        self.model = model
        self.power = power

    def __call__(self, proba: Mapping[Hashable, float], x: Mapping[str, float] | None) -> float:
        score = super().__call__(proba, x)
        if not self.rare_mode or not x:
            return score
        return score * input_norm(self.model, x) ** self.power


def _make_scorer(measure: str, model: Any, n_classes: int, positive: Hashable) -> Any:
    if measure == "auto" and POWER:
        if RULE == "norm":
            return NormAwareScorer(model, n_classes, POWER)
        return OutlierAwareScorer(n_classes, POWER)
    return _MAKE_SCORER(measure, model, n_classes, positive)


_MAKE_SCORER = policy.make_scorer


def _setup(rule: str, power: float) -> None:
    global POWER, RULE
    POWER, RULE = power, rule
    policy.make_scorer = _make_scorer  # build_gate looks it up at call time


def run_task(task: tuple[str, float, int, int, str, float]) -> dict[str, Any]:
    """The benchmark's own run of the default strategy, with the scorer for ``rule``."""
    stream, budget, seed, n, rule, power = task
    _setup(rule, power)
    d = cs.run_task((stream, seed, budget, "streamal_balanced", n))
    d["power"] = power
    return d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stream", default="imbalanced", choices=cs.RARE_POSITIVES)
    parser.add_argument("--budgets", default="0.01,0.05,0.1,0.2")
    parser.add_argument("--seeds", default="1-10", help="first-last")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rule", default="outliers", choices=("outliers", "norm"))
    parser.add_argument("--powers", default="0,1,2", help="0: the default measure")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    first, _, last = args.seeds.partition("-")
    seeds = range(int(first), int(last or first) + 1)
    budgets = [float(b) for b in args.budgets.split(",")]
    powers = [float(p) for p in args.powers.split(",")]
    tasks = [
        (args.stream, b, s, args.events, args.rule, p)
        for p in powers
        for b in budgets
        for s in seeds
    ]
    with Pool(args.workers) as pool:
        runs = pool.map(run_task, tasks, chunksize=1)
    print(f"{args.stream}, seeds {args.seeds}: precision / recall / F1 / AP %, frauds bought %")
    for p in powers:
        name = "default (auto)" if not p else f"{args.rule} ** {p:g}"
        cells = []
        for b in budgets:
            rows = [r for r in runs if r["power"] == p and r["budget"] == b]

            def mean(key: str, rows: list[dict[str, Any]] = rows) -> float:
                return 100 * statistics.fmean(r[key] for r in rows)

            bought = sum(r["positives_learned"] for r in rows) / max(
                1, sum(r["positives"] for r in rows)
            )
            cells.append(
                f"B={b:g}: {mean('precision'):.1f} / {mean('recall'):.1f} / {mean('f1'):.1f}"
                f" / {mean('average_precision'):.1f}, {100 * bought:.0f}"
            )
        print(f"{name:16s} " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
