"""Where on the 1 %-positive stream a method wins or loses: positive-class F1 by quarter.

The imbalanced stream's fraud pattern changes at the half (``drifting_transactions``), so the
quarters are: cold start, the first pattern learned, the new pattern being found, the new pattern
learned. Same protocol as ``compare_strategies.py`` (its streams, model, label delay and gates);
the whole-stream F1 it prints equals that script's for the same seeds.

Two variants test what a peer's edge is made of:

* ``PEER+cap`` (scikit-activeml peers): a query beyond streamal's pacing bucket (1.25 × B per
  1,000 events, the issue's window limit) is not made, and the peer's budget manager is told;
* ``METHOD+frontK``: the first ``K`` events are all labelled, on top of the method's budget (a
  front-load like scikit-activeml's in its first window).

Run it from the benchmark virtualenv::

    python benchmarks/imbalanced_quarters.py --methods streamal_balanced,skal_pal,skal_pal+cap \\
        --budgets 0.01,0.05 --seeds 10
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
from peers import SkactivemlGate  # noqa: E402

from streamal.core.budget import FractionBudget  # noqa: E402
from streamal.core.evaluator import Window  # noqa: E402
from streamal.core.gate import Decision  # noqa: E402

QUARTERS = 4


class FrontLoad:
    """Label the first ``k`` events on top of the gate's own requests."""

    def __init__(self, inner: Any, k: int) -> None:
        self.inner, self.k, self.seen = inner, k, 0

    def decide(self, proba: Mapping[Hashable, float], x: Mapping[str, float] | None = None) -> Any:
        self.seen += 1
        decision = self.inner.decide(proba, x)
        if self.seen <= self.k and not decision.ask:
            return Decision(True, "random", 1.0, 0.0)
        return decision

    def __getattr__(self, name: str) -> Any:  # PAL's learn_one: the wrapped gate's
        return getattr(self.inner, name)


def _gate(spec: str, budget: float, seed: int, model: Any) -> Any:
    method, _, variant = spec.partition("+")
    gate = cs._gate(method, budget, seed, model)
    if variant == "cap":
        if not isinstance(gate, SkactivemlGate):  # streamal's gate keeps the limit already
            raise ValueError(f"+cap is for scikit-activeml peers, not {method!r}")
        start = max(1.0, 0.25 * budget * cs.SPEND_WINDOW)  # streamal's gate: 1.25 B per window
        gate.cap = FractionBudget(budget, cs.SPEND_WINDOW, burst_share=0.25, initial=start)
        return gate
    if variant.startswith("front"):
        return FrontLoad(gate, int(variant.removeprefix("front") or 40))
    if variant:
        raise ValueError(f"unknown variant {variant!r}: cap or frontK")
    return gate


def run_task(task: tuple[str, float, int, int]) -> dict[str, Any]:
    cs.quiet_sklearn()
    spec, budget, seed, n = task
    events = cs.load_stream("imbalanced", seed, n)
    report = cs.prequential_report(events, lambda model: _gate(spec, budget, seed, model))
    per = len(report.windows) // QUARTERS
    quarters = []
    for q in range(QUARTERS):
        part = Window(start=0)
        for w in report.windows[q * per : (q + 1) * per]:
            part.add(w)
        both = part.positives + part.predicted_positives
        quarters.append(2 * part.true_positives / both if both else 0.0)
    d = report.as_dict()
    return {
        "method": spec,
        "budget": budget,
        "seed": seed,
        "quarters": quarters,
        "f1": d["f1"],
        "spend": d["spend_ratio"] / budget,
        "max_window": d["max_window_spend_ratio"] / budget,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="streamal_balanced,streamal_pal,skal_pal,all_labels")
    parser.add_argument("--budgets", default="0.01,0.05")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    budgets = [float(b) for b in args.budgets.split(",")]
    tasks = [
        (m, b, s, args.events) for b in budgets for m in methods for s in range(1, args.seeds + 1)
    ]
    with Pool(args.workers) as pool:
        runs = pool.map(run_task, tasks, chunksize=1)
    print(f"positive-class F1 % by quarter, mean of {args.seeds} seeds (drift at the half)")
    for b in budgets:
        print(f"B = {b:g}:  {'method':24s}" + "".join(f"   Q{q + 1}" for q in range(QUARTERS)))
        for m in methods:
            rows = [r for r in runs if r["method"] == m and r["budget"] == b]
            qs = [100 * statistics.mean(r["quarters"][q] for r in rows) for q in range(QUARTERS)]
            print(
                f"         {m:24s}"
                + "".join(f" {q:5.1f}" for q in qs)
                + f" | whole {100 * statistics.mean(r['f1'] for r in rows):5.1f}"
                + f", spend {statistics.mean(r['spend'] for r in rows):.2f} B"
                + f", max window {max(r['max_window'] for r in rows):.2f} B"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
