"""streamal's strategies on real streams from ``../shared/datasets`` (elec2, usenet1, usenet2).

Not part of the acceptance protocol (no peers, no label delay): a check that the synthetic
benchmark's ranking of the default holds on real data. Run from the repository root with the
datasets beside the clone::

    python benchmarks/real_streams.py

It prints, per stream, budget and method, the mean prequential accuracy and Cohen's kappa (%)
over seeds 1-3 and the range of spend / B.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections import defaultdict
from multiprocessing import Pool
from pathlib import Path
from typing import NamedTuple

from streamal import cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
#: name -> (file, target column, positive class, columns to drop)
STREAMS = {
    "elec2": ("elec2_elecNormNew.csv.gz", "class", "UP", ("date",)),
    "usenet1": ("usenet1_katakis.csv.gz", "interesting", "1", ()),
    "usenet2": ("usenet2_katakis.csv.gz", "interesting", "1", ()),
}
METHODS = (
    ("balanced", "entropy"),
    ("variable", "entropy"),
    ("random", "entropy"),
    ("balanced", "pal"),
)
BUDGETS = (0.01, 0.05, 0.1)
SEEDS = (1, 2, 3)

Task = tuple[str, str, str, float, int]


class Run(NamedTuple):
    stream: str
    method: str
    budget: float
    seed: int
    accuracy: float
    kappa: float
    spend: float


def run(task: Task) -> Run:
    """One ``streamal evaluate`` run; its accuracy, kappa and spend / B."""
    name, strategy, measure, budget, seed = task
    file, target, positive, drop = STREAMS[name]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        args = [
            "evaluate", "--data", str(SHARED / file), "--target", target, "--positive", positive,
            "--budget", str(budget), "--strategy", strategy, "--measure", measure,
            "--seed", str(seed), "--label-delay", "0", "--json", str(out),
        ]  # fmt: skip
        for column in drop:
            args += ["--drop", column]
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            assert cli.main(args) == 0, quiet.getvalue()
        doc = json.loads(out.read_text())
    method = strategy if measure == "entropy" else f"{strategy}+{measure}"
    return Run(
        name,
        method,
        budget,
        seed,
        100 * doc["accuracy"],
        100 * doc["kappa"],
        doc["spend_ratio"] / budget,
    )


def main() -> None:
    tasks = [
        (name, strategy, measure, budget, seed)
        for name in STREAMS
        for strategy, measure in METHODS
        for budget in BUDGETS
        for seed in SEEDS
    ]
    with Pool(2) as pool:
        runs = pool.map(run, tasks)
    cells: dict[tuple[str, float, str], list[Run]] = defaultdict(list)
    for r in runs:
        cells[(r.stream, r.budget, r.method)].append(r)
    for (stream, budget, method), rs in sorted(cells.items()):
        acc = sum(r.accuracy for r in rs) / len(rs)
        kappa = sum(r.kappa for r in rs) / len(rs)
        spend = [r.spend for r in rs]
        print(
            f"{stream:8s} {budget:5.0%} {method:14s} accuracy {acc:5.1f}  kappa {kappa:5.1f}  "
            f"spend/B {min(spend):.3f}-{max(spend):.3f}"
        )


if __name__ == "__main__":
    main()
