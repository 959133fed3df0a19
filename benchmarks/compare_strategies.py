"""Compare streamal's query strategies with random sampling, all labels and peer libraries.

Every method runs the same protocol (see ``benchmarks/README.md``): prequential test-then-train
with :func:`streamal.core.evaluator.prequential`, the same River model
(``make_model("logreg")``), labels learned 50 events after they are requested. Peers are wrapped
as gates (``benchmarks/peers.py``), so they differ from streamal's strategies only in the
decision "ask or not".

Run it from the benchmark virtualenv (it needs scikit-activeml, a benchmark-only dependency)::

    python benchmarks/compare_strategies.py --budgets 0.01,0.05,0.1,0.2 --seeds 10 \\
        --out benchmarks/results.json --markdown benchmarks/results.md
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Hashable, Iterable, Mapping
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PEERS, AllLabelsGate, EntropySamplerGate, make_peer  # noqa: E402

import streamal  # noqa: E402
from streamal.adapters.sources import open_source  # noqa: E402
from streamal.config import Settings  # noqa: E402
from streamal.core.class_balance import ClassBalance  # noqa: E402
from streamal.core.evaluator import StreamClock, prequential  # noqa: E402
from streamal.core.learner import ActiveLearner  # noqa: E402
from streamal.core.messages import ClassSet, parse_time  # noqa: E402
from streamal.core.model import OnlineModel, make_model  # noqa: E402
from streamal.core.policy import STRATEGIES, build_gate  # noqa: E402
from streamal.core.synthetic import drifting_transactions  # noqa: E402
from streamal.evaluate import LabelDelay  # noqa: E402
from streamal.presets import PRESETS  # noqa: E402
from streamal.service import build_learner  # noqa: E402

STREAMS = ("sea", "agrawal", "rbf", "hyperplane", "phishing", "imbalanced")
#: Real streams, run only when named in ``--streams``: data from ``../shared/datasets`` beside the
#: clone, through the service's learner (see :func:`_evaluate_service`).
REAL_STREAMS = ("fdh",)
#: Streams whose positive class is rare: their cells show F1 and average precision too.
RARE_POSITIVES = ("imbalanced", "fdh")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
#: The handbook's card transactions from this day on; seed ``s`` takes the ``s``-th slice of
#: ``--events`` (April, when two of the three fraud scenarios are still building up, is left out).
FDH_FROM = "2018-05-01"
LABEL_DELAY = 50
SPEND_WINDOW = 1000
CLASSES: list[Hashable] = [False, True]
#: Events of the prefix on which River's EntropySampler's discount factor is tuned.
TUNE_PREFIX = 4000
TUNE_STEPS = 8
#: Methods that do not depend on the budget (run once per stream and seed).
BUDGET_FREE = ("all_labels", "river_entropy")
#: streamal strategies that need not spend their whole budget (by design).
MAY_UNDERSPEND = ("fixed",)


#: The measure of the ``streamal_<strategy>`` methods: the service's default (``auto``).
DEFAULT_MEASURE: str = Settings().measure
#: streamal methods that pair a strategy with another measure: name -> (strategy, measure).
#: ``pal`` is probabilistic active learning behind the balanced quantile filter, the pairing
#: scikit-activeml's PAL uses (its utilities have no fixed scale for a variable threshold);
#: ``fraud_pal`` adds the exploit lane; ``balanced_entropy`` is the default strategy with plain
#: entropy, the default measure before ``auto``.
MEASURE_METHODS = {
    "streamal_pal": ("balanced", "pal"),
    "streamal_fraud_pal": ("fraud", "pal"),
    "streamal_balanced_entropy": ("balanced", "entropy"),
}


def streamal_methods() -> list[str]:
    return [f"streamal_{s}" for s in STRATEGIES] + list(MEASURE_METHODS)


# --------------------------------------------------------------------------------------- streams


def _river_stream(name: str, seed: int) -> Iterable[tuple[Mapping[Any, Any], Any]]:
    from river import datasets
    from river.datasets import synth

    if name == "sea":
        return synth.ConceptDriftStream(
            synth.SEA(variant=0, seed=seed),
            synth.SEA(variant=2, seed=seed + 1000),
            position=10_000,
            width=1000,
            seed=seed,
        )
    if name == "agrawal":
        return synth.ConceptDriftStream(
            synth.Agrawal(classification_function=0, seed=seed),
            synth.Agrawal(classification_function=2, seed=seed + 1000),
            position=10_000,
            width=1000,
            seed=seed,
        )
    if name == "rbf":
        return synth.RandomRBFDrift(
            seed_model=seed, seed_sample=seed, n_classes=2, n_features=10, change_speed=0.0001
        )
    if name == "hyperplane":
        return synth.Hyperplane(seed=seed, n_features=10, n_drift_features=5, mag_change=0.001)
    if name == "phishing":
        return datasets.Phishing()
    raise ValueError(name)


@functools.lru_cache(maxsize=8)
def load_stream(name: str, seed: int, n: int) -> tuple[tuple[dict[str, Any], bool], ...]:
    """The first ``n`` events of a stream, features keyed by strings, labels as bools."""
    if name == "fdh":
        return tuple(_fdh(seed, n))
    if name == "imbalanced":
        source: Iterable[tuple[Mapping[Any, Any], Any]] = drifting_transactions(
            n, fraud_rate=0.01, seed=seed
        )
    else:
        source = _river_stream(name, seed)
    out = []
    for x, y in itertools.islice(source, n):
        out.append(({str(k): v for k, v in x.items()}, bool(y)))
    return tuple(out)


def _fdh(seed: int, n: int) -> Iterable[tuple[dict[str, Any], bool]]:
    """Slice ``seed`` of the Fraud-Detection Handbook's raw card transactions (0.84 % fraud).

    The raw columns only, with the preset's column roles: the service computes the card and
    terminal features itself, the terminal fraud risk from the labels the method bought.
    """
    preset = PRESETS["card-fraud-handbook"]
    source = open_source(
        str(SHARED / "fdh_simulated_raw.csv.gz"),
        target=preset.target,
        positive=preset.positive,
        drop=preset.drop,
        time_column=preset.time_column,
    )
    start = parse_time(f"{FDH_FROM}T00:00:00Z")
    events = itertools.dropwhile(lambda pair: pair[0][preset.time_column] < start, source)
    return itertools.islice(events, (seed - 1) * n, seed * n)


# ------------------------------------------------------------------------------------------- runs


def _model() -> OnlineModel:
    return OnlineModel(make_model("logreg", step=LOGREG_STEP), CLASSES, "logreg")


def _gate(method: str, budget: float | None, seed: int, model: OnlineModel, **extra: Any) -> Any:
    if method.startswith("streamal_"):
        assert budget is not None
        strategy, measure = MEASURE_METHODS.get(
            method, (method.removeprefix("streamal_"), DEFAULT_MEASURE)
        )
        return build_gate(strategy, measure, budget, SPEND_WINDOW, model=model.model, seed=seed)
    if method == "all_labels":
        return AllLabelsGate()
    scaler = model.model["StandardScaler"]
    return make_peer(
        method,
        budget or 1.0,
        seed,
        CLASSES,
        label_delay=LABEL_DELAY,
        scale=scaler.transform_one,
        discount_factor=extra.get("discount_factor"),
    )


#: Power of the class-balanced learning weights for every method (``--class-balance``; 0: off).
CLASS_BALANCE = 0.0
#: SGD step of every method's model on the generated streams (``--logreg-step``; None: 0.05).
LOGREG_STEP: float | None = None


def _set_protocol(class_balance: float, logreg_step: float | None = None) -> None:
    """What every method learns with, set in each worker process."""
    global CLASS_BALANCE, LOGREG_STEP
    CLASS_BALANCE, LOGREG_STEP = class_balance, logreg_step


def prequential_report(events: Iterable[tuple[dict[str, Any], bool]], gate_of: Any) -> Any:
    """The protocol's run of one method: ``gate_of(model)`` gates the shared model."""
    model = _model()
    learner = ActiveLearner(model, gate_of(model), class_balance=ClassBalance(CLASS_BALANCE))
    return prequential(events, learner, label_delay=LABEL_DELAY, spend_window=SPEND_WINDOW)


def _evaluate(events: Iterable[tuple[dict[str, Any], bool]], gate_of: Any) -> dict[str, Any]:
    return _run_dict(prequential_report(events, gate_of))


def _run_dict(report: Any) -> dict[str, Any]:
    d: dict[str, Any] = report.as_dict()
    d.pop("windows", None)
    d.pop("unbiased_accuracy", None)
    d["accuracy_curve"] = [w.accuracy for w in report.windows]
    return d


def _evaluate_service(
    events: Iterable[tuple[dict[str, Any], bool]], gate_of: Any
) -> dict[str, Any]:
    """:func:`_evaluate` for a real fraud stream: the service's own learner, card and terminal
    features included, with the handbook preset's column roles; each label arrives an hour of
    stream time after its request (the preset's investigators), and no chargebacks: a method
    learns only the labels it bought."""
    preset = PRESETS["card-fraud-handbook"]
    roles = ("id_field", "card_field", "terminal_field", "amount_field")
    settings = Settings(
        **{k: preset.settings[k] for k in roles},
        time_field=preset.time_column,
        model="logreg",
        budget_window=SPEND_WINDOW,
        class_balance=CLASS_BALANCE,
    )
    clock = StreamClock()
    learner = build_learner(settings, ClassSet(), clock=clock)
    learner.gate = gate_of(learner.model)
    report = prequential(
        events,
        learner,
        label_delay_seconds=LabelDelay.parse(preset.label_delay).seconds,
        clock=clock,
        spend_window=SPEND_WINDOW,
    )
    return _run_dict(report)


def tune_discount(
    events: tuple[tuple[dict[str, Any], bool], ...],
    budget: float,
    seed: int,
    evaluate: Any = _evaluate,
) -> float:
    """Bisect River EntropySampler's discount factor (log scale) until its spend is about B."""
    prefix = events[:TUNE_PREFIX]
    lo, hi = math.log(1e-3), math.log(1e4)  # spend falls as the factor rises
    best = (math.inf, 3.0)
    for _ in range(TUNE_STEPS):
        mid = (lo + hi) / 2
        factor = math.exp(mid)
        d = evaluate(prefix, lambda m, f=factor: EntropySamplerGate(f, seed))
        spend = d["spend_ratio"]
        best = min(best, (abs(spend - budget), factor))
        if spend > budget:
            lo = mid
        else:
            hi = mid
    return best[1]


def quiet_sklearn() -> None:
    """Skip scikit-learn's input checks (finite values, parameter types) on every call: the
    peers' decisions are the same, they just cost less time."""
    import sklearn

    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)


def run_task(task: tuple[str, int, float | None, str, int]) -> dict[str, Any]:
    quiet_sklearn()
    stream, seed, budget, method, n = task
    started = time.perf_counter()
    events = load_stream(stream, seed, n)
    evaluate = _evaluate_service if stream in REAL_STREAMS else _evaluate
    extra: dict[str, Any] = {}
    if method == "river_entropy_tuned":
        assert budget is not None
        extra["discount_factor"] = tune_discount(events, budget, seed, evaluate)
    d = evaluate(events, lambda m: _gate(method, budget, seed, m, **extra))
    d.update(stream=stream, seed=seed, budget=budget, method=method, **extra)
    d["wall_seconds"] = time.perf_counter() - started
    return d


def _key(stream: str, seed: int, budget: float | None, method: str) -> str:
    return f"{stream}|{seed}|{budget}|{method}"


#: Rough relative cost per event, to start the slowest tasks first.
_COST = {"skal_pal": 8.0, "river_entropy_tuned": 3.0, "all_labels": 1.5}


def plan(
    streams: list[str], budgets: list[float], seeds: list[int], methods: list[str], n: int
) -> list[tuple[str, int, float | None, str, int]]:
    tasks: list[tuple[str, int, float | None, str, int]] = []
    for stream, seed in itertools.product(streams, seeds):
        for method in methods:
            if method in BUDGET_FREE:
                tasks.append((stream, seed, None, method, n))
            else:
                tasks.extend((stream, seed, b, method, n) for b in budgets)
    size = {"phishing": 0.1}
    # Seed by seed (so that a run cut short still has whole seeds), slowest tasks first.
    tasks.sort(key=lambda t: (t[1], -_COST.get(t[3], 1.0) * size.get(t[0], 1.0) * n))
    return tasks


# ------------------------------------------------------------------------------------ aggregation


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(values) if values else math.nan


def _std(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def aggregate(runs: list[dict[str, Any]], budgets: list[float]) -> list[dict[str, Any]]:
    """One cell per stream x budget x method: means (and std) over seeds, spend over B."""
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in runs:
        cell_budgets = budgets if r["budget"] is None else [r["budget"]]
        for b in cell_budgets:
            groups.setdefault((r["stream"], b, r["method"]), []).append(r)
    cells = []
    for (stream, b, method), rs in sorted(groups.items()):
        spend = [r["spend_ratio"] / b for r in rs]
        window = [r["max_window_spend_ratio"] / b for r in rs]
        cell = {
            "stream": stream,
            "budget": b,
            "method": method,
            "seeds": len(rs),
            "accuracy": _mean([r["accuracy"] for r in rs]),
            "accuracy_std": _std([r["accuracy"] for r in rs]),
            "f1": _mean([r["f1"] for r in rs]),
            "f1_std": _std([r["f1"] for r in rs]),
            "average_precision": _mean([r["average_precision"] for r in rs]),
            "kappa": _mean([r["kappa"] for r in rs]),
            "spend_over_budget": _mean(spend),
            "spend_over_budget_max": max(spend),
            "spend_over_budget_min": min(spend),
            "window_spend_over_budget": _mean(window),
            "window_spend_over_budget_max": max(window),
            "labels_requested": _mean([r["labels_requested"] for r in rs]),
            "us_per_event": _mean([r["us_per_event"] for r in rs]),
        }
        if all("positives_learned" in r for r in rs):  # runs before the field: none
            found = sum(r["positives"] for r in rs)
            cell["positives_learned_share"] = (
                sum(r["positives_learned"] for r in rs) / found if found else math.nan
            )
            cell["positive_share_of_labels"] = _mean(
                [r["positives_learned"] / r["labels_learned"] for r in rs if r["labels_learned"]]
            )
        if "discount_factor" in rs[0]:
            cell["discount_factor"] = [r["discount_factor"] for r in rs]
        cells.append(cell)
    return cells


def spend_check(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every streamal budget-managed run that breaks the spend acceptance (per seed)."""
    bad = []
    for r in runs:
        if not r["method"].startswith("streamal_"):
            continue
        b = r["budget"]
        overall = r["spend_ratio"] / b
        window = r["max_window_spend_ratio"] / b
        problems = []
        if overall > 1.05:
            problems.append(f"overall {overall:.3f} > 1.05")
        if window > 1.25:
            problems.append(f"window {window:.3f} > 1.25")
        if overall < 0.9 and r["method"].removeprefix("streamal_") not in MAY_UNDERSPEND:
            problems.append(f"overall {overall:.3f} < 0.9")
        if problems:
            bad.append(
                {
                    "stream": r["stream"],
                    "budget": b,
                    "method": r["method"],
                    "seed": r["seed"],
                    "problems": problems,
                }
            )
    return bad


def quality_check(cells: list[dict[str, Any]], default: str) -> dict[str, Any]:
    """Per cell: streamal's default strategy vs the best peer that stays within 1.05 B."""
    by_cell: dict[tuple[str, float], dict[str, dict[str, Any]]] = {}
    for c in cells:
        by_cell.setdefault((c["stream"], c["budget"]), {})[c["method"]] = c
    rows = []
    for (stream, b), methods in sorted(by_cell.items()):
        mine = methods.get(f"streamal_{default}")
        if mine is None:
            continue
        peers = [c for m, c in methods.items() if m in PEERS and c["spend_over_budget"] <= 1.05]
        # The stricter reading: the peer also keeps the pacing streamal is held to.
        paced = [c for c in peers if c["window_spend_over_budget_max"] <= 1.25]
        best_streamal = max(
            (c for m, c in methods.items() if m.startswith("streamal_") and m != "streamal_random"),
            key=lambda c: c["accuracy"],
        )
        row: dict[str, Any] = {
            "stream": stream,
            "budget": b,
            "default": mine["method"],
            "default_accuracy": mine["accuracy"],
            "default_f1": mine["f1"],
            "best_streamal": best_streamal["method"],
            "best_streamal_accuracy": best_streamal["accuracy"],
            "random_accuracy": methods.get("streamal_random", {}).get("accuracy", math.nan),
            "peers_within_budget": sorted(c["method"] for c in peers),
        }
        any_spend = [c for m, c in methods.items() if m in PEERS]
        if any_spend:
            top = max(any_spend, key=lambda c: c["accuracy"])
            row.update(
                best_peer_any_spend=top["method"],
                best_peer_any_spend_accuracy=top["accuracy"],
                best_peer_any_spend_spend=top["spend_over_budget"],
                diff_points_any_spend=100 * (mine["accuracy"] - top["accuracy"]),
            )
        if paced:
            top = max(paced, key=lambda c: c["accuracy"])
            top_f1 = max(paced, key=lambda c: c["f1"])
            row.update(
                best_paced_peer=top["method"],
                best_paced_peer_accuracy=top["accuracy"],
                diff_points_paced=100 * (mine["accuracy"] - top["accuracy"]),
                best_paced_f1_peer=top_f1["method"],
                f1_diff_points_paced=100 * (mine["f1"] - top_f1["f1"]),
            )
        if peers:
            best = max(peers, key=lambda c: c["accuracy"])
            best_f1 = max(peers, key=lambda c: c["f1"])
            row.update(
                best_peer=best["method"],
                best_peer_accuracy=best["accuracy"],
                diff_points=100 * (mine["accuracy"] - best["accuracy"]),
                best_f1_peer=best_f1["method"],
                best_peer_f1=best_f1["f1"],
                f1_diff_points=100 * (mine["f1"] - best_f1["f1"]),
            )
        rows.append(row)
    diffs = [r["diff_points"] for r in rows if "diff_points" in r]
    paced_diffs = [r["diff_points_paced"] for r in rows if "diff_points_paced" in r]
    return {
        "mean_diff_points_paced": _mean(paced_diffs),
        "cells_within_half_point_paced": sum(d >= -0.5 for d in paced_diffs),
        "cells_compared_paced": len(paced_diffs),
        "default": default,
        "cells": rows,
        "mean_diff_points": _mean(diffs),
        "cells_within_half_point": sum(d >= -0.5 for d in diffs),
        "cells_compared": len(diffs),
        "cells_losing": [
            (r["stream"], r["budget"], r["best_peer"], round(r["diff_points"], 2))
            for r in rows
            if r.get("diff_points", 0.0) < -0.5
        ],
    }


def rank_strategies(
    cells: list[dict[str, Any]], keep: Any = None, name: str = ""
) -> dict[str, Any]:
    """Mean rank by accuracy of every method over the stream x budget cells where it competes.

    ``keep(cell)`` says whether a method's cell competes (default: all but the all-labels
    reference); a method's mean rank is over the cells where it does.
    """
    keep = keep or (lambda c: True)
    by_cell: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for c in cells:
        if c["method"] == "all_labels" or not keep(c):
            continue
        by_cell.setdefault((c["stream"], c["budget"]), []).append(c)
    ranks: dict[str, list[float]] = {}
    accs: dict[str, list[float]] = {}
    wins: dict[str, int] = {}
    for group in by_cell.values():
        ordered = sorted(group, key=lambda c: -c["accuracy"])
        wins[ordered[0]["method"]] = wins.get(ordered[0]["method"], 0) + 1
        for i, c in enumerate(ordered, start=1):
            ranks.setdefault(c["method"], []).append(i)
            accs.setdefault(c["method"], []).append(c["accuracy"])
    rows = sorted(
        (
            {
                "method": m,
                "mean_rank": _mean(r),
                "mean_accuracy": _mean(accs[m]),
                "cells": len(r),
                "wins": wins.get(m, 0),
            }
            for m, r in ranks.items()
        ),
        key=lambda d: d["mean_rank"],
    )
    return {"name": name, "cells": len(by_cell), "rows": rows}


def rankings(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        rank_strategies(
            cells,
            lambda c: c["method"].startswith("streamal_"),
            "streamal strategies only (which is best overall)",
        ),
        rank_strategies(
            cells,
            lambda c: c["method"].startswith("streamal_") or c["spend_over_budget"] <= 1.05,
            "every method, counted only in cells where its overall spend ≤ 1.05 B",
        ),
        rank_strategies(
            cells,
            lambda c: (
                c["method"].startswith("streamal_")
                or (c["spend_over_budget"] <= 1.05 and c["window_spend_over_budget_max"] <= 1.25)
            ),
            "every method, counted only where it also keeps every 1,000-event window ≤ 1.25 B",
        ),
        rank_strategies(cells, None, "every method at whatever it spent (unbudgeted included)"),
    ]


# --------------------------------------------------------------------------------------- markdown

_SHORT = {
    "streamal_random": "random (ref)",
    "all_labels": "all labels (ref)",
}


def _label(method: str) -> str:
    return _SHORT.get(method, method.replace("streamal_", "sa:").replace("skal_", "skal:"))


def _protocol_note(config: dict[str, Any]) -> str:
    notes = []
    if power := config.get("class_balance", 0.0):
        notes.append(f"class-balanced weights (power {power:g})")
    if step := config.get("logreg_step"):
        notes.append(f"an SGD step of {step:g}")
    return f", every method learning with {' and '.join(notes)}" if notes else ""


def _cell_text(c: dict[str, Any], show_f1: bool, show_ap: bool = False) -> str:
    text = f"{100 * c['accuracy']:.1f}"
    if show_f1:
        text += f" / {100 * c['f1']:.1f}"
    if show_ap:
        text += f" / {100 * c['average_precision']:.1f}"
    if c["method"] == "all_labels":
        return text
    flags = []
    s = c["spend_over_budget"]
    budget_managed = c["method"] not in ("river_entropy",)
    if budget_managed and (s > 1.05 or (s < 0.9 and c["method"] != "streamal_fixed")):
        flags.append(f"s{s:.2f}")
    elif not budget_managed:
        flags.append(f"s{s:.2f}")
    if c["window_spend_over_budget_max"] > 1.25 and budget_managed:
        flags.append(f"w{c['window_spend_over_budget_max']:.2f}")
    if c["method"] == "streamal_fixed" and s < 0.9:
        flags.append(f"({s:.2f})")
    return text + (" " + " ".join(flags) if flags else "")


def _paced(r: dict[str, Any]) -> str:
    if "best_paced_peer" not in r:
        return "(none)"
    return (
        f"{_label(r['best_paced_peer'])} ({r['diff_points_paced']:+.2f}, "
        f"{r['f1_diff_points_paced']:+.1f})"
    )


def _positives_section(
    by: dict[tuple[str, float, str], dict[str, Any]],
    streams: list[str],
    budgets: list[float],
    methods: list[str],
) -> list[str]:
    """Per rare-positive stream: the share of its positives whose label each method bought."""
    rare = [
        s
        for s in streams
        if s in RARE_POSITIVES
        and any("positives_learned_share" in c for k, c in by.items() if k[0] == s)
    ]
    if not rare:
        return []
    shown = [m for m in methods if m not in ("all_labels", "river_entropy")]
    lines = [
        "## Positives in the training set (rare-positive streams)",
        "",
        "Share % of the stream's positives whose label the method bought (summed over seeds), and "
        "in brackets the positives' share % of its labels. This is what imbalance-aware "
        "querying is for; F1 is what the shared model then makes of those labels. River's "
        "unbudgeted sampler is left out; all labels have every positive.",
        "",
        "| stream | B | " + " | ".join(_label(m) for m in shown) + " |",
        "|---|---:|" + "---:|" * len(shown),
    ]
    for stream in rare:
        for b in budgets:
            row = [stream, f"{100 * b:g} %"]
            cells = [by.get((stream, b, m), {}) for m in shown]
            top = max((c.get("positives_learned_share", -1.0) for c in cells), default=-1.0)
            for c in cells:
                if "positives_learned_share" not in c:
                    row.append("–")
                    continue
                text = (
                    f"{100 * c['positives_learned_share']:.0f} "
                    f"({100 * c['positive_share_of_labels']:.0f})"
                )
                row.append(f"**{text}**" if c["positives_learned_share"] == top else text)
            lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def markdown(
    cells: list[dict[str, Any]],
    methods: list[str],
    checks: dict[str, Any],
    config: dict[str, Any],
) -> str:
    by = {(c["stream"], c["budget"], c["method"]): c for c in cells}
    streams = [s for s in (*STREAMS, *REAL_STREAMS) if any(c["stream"] == s for c in cells)]
    budgets = sorted({c["budget"] for c in cells})
    lines = [
        "# Strategy comparison",
        "",
        f"{config['events']} events per stream (Phishing: all 1,250), label delay "
        f'{LABEL_DELAY} events, model `make_model("logreg")` for everyone, mean over '
        f"{config['seeds']} seed(s){_protocol_note(config)}. Cells: prequential accuracy % "
        "(Phishing: accuracy % / positive-class F1 %; the rare-positive streams, imbalanced and "
        "fdh: accuracy % / F1 % / average precision %). fdh: the handbook's card transactions, "
        "seed s its s-th slice from 1 May 2018, through the service's learner with its card and "
        "terminal features, labels an hour of stream time after the request. Flags: `sX` overall "
        "spend / B outside "
        "[0.9, 1.05] (always shown for the unbudgeted River EntropySampler), `wX` max spend in a "
        "window of 1,000 events / B above 1.25; `(X)` the fixed-threshold strategy's spend "
        "(allowed to underspend).",
        "",
    ]
    groups = [
        ("streamal strategies and references", [m for m in methods if m not in PEERS]),
        ("peers", [m for m in methods if m in PEERS]),
    ]
    for title, group in groups:
        lines += [f"## {title}", ""]
        lines.append("| stream | B | " + " | ".join(_label(m) for m in group) + " |")
        lines.append("|---|---:|" + "---:|" * len(group))
        for stream in streams:
            for b in budgets:
                row = [stream, f"{100 * b:g} %"]
                best = max(
                    (
                        by[(stream, b, m)]["accuracy"]
                        for m in methods
                        if m != "all_labels" and (stream, b, m) in by
                    ),
                    default=math.nan,
                )
                for m in group:
                    c = by.get((stream, b, m))
                    if c is None:
                        row.append("–")
                        continue
                    text = _cell_text(
                        c, stream in (*RARE_POSITIVES, "phishing"), stream in RARE_POSITIVES
                    )
                    if m != "all_labels" and c["accuracy"] == best:
                        text = f"**{text}**"
                    row.append(text)
                lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += _positives_section(by, streams, budgets, methods)
    q = checks["quality"]
    lines += [
        "## Spend check (streamal budget-managed strategies, every seed)",
        "",
        "Acceptance: overall ≤ 1.05 B, every window of 1,000 events ≤ 1.25 B, overall ≥ 0.9 B "
        "(the fixed threshold may spend less).",
        "",
    ]
    if checks["spend"]:
        for v in checks["spend"]:
            lines.append(
                f"- {v['stream']} B={100 * v['budget']:g} % {v['method']} seed {v['seed']}: "
                + "; ".join(v["problems"])
            )
    else:
        lines.append("No violations.")
    lines += [
        "",
        f"## Quality check: default strategy (`{q['default']}`) vs best peer within budget",
        "",
        "Peers within budget: overall spend ≤ 1.05 B (mean over seeds). Difference in accuracy "
        "points (positive: streamal ahead); F1 difference against the best-F1 peer.",
        "",
        "| stream | B | default acc | best peer | peer acc | Δ acc (pts) | default F1 | "
        "best-F1 peer | peer F1 | Δ F1 (pts) | best paced peer (Δ acc, Δ F1 pts) | "
        "best peer at any spend (spend/B, Δ pts) |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---|---|",
    ]
    for r in q["cells"]:
        if "best_peer" not in r:
            lines.append(
                f"| {r['stream']} | {100 * r['budget']:g} % | "
                f"{100 * r['default_accuracy']:.1f} | (none) | | | | | | {_paced(r)} | |"
            )
            continue
        lines.append(
            f"| {r['stream']} | {100 * r['budget']:g} % | {100 * r['default_accuracy']:.2f} | "
            f"{_label(r['best_peer'])} | {100 * r['best_peer_accuracy']:.2f} | "
            f"{r['diff_points']:+.2f} | {100 * r['default_f1']:.1f} | "
            f"{_label(r['best_f1_peer'])} | {100 * r['best_peer_f1']:.1f} | "
            f"{r['f1_diff_points']:+.1f} | {_paced(r)} | {_label(r['best_peer_any_spend'])} "
            f"({r['best_peer_any_spend_spend']:.2f}, {r['diff_points_any_spend']:+.2f}) |"
        )
    lines += [
        "",
        f"Mean accuracy difference: **{q['mean_diff_points']:+.2f} points**; cells within half a "
        f"point or ahead: {q['cells_within_half_point']} / {q['cells_compared']}.",
        "",
        "Against peers that also keep streamal's pacing (every window of 1,000 events ≤ 1.25 B, "
        f"as well as overall ≤ 1.05 B): mean **{q['mean_diff_points_paced']:+.2f} points**; "
        f"cells within half a point or ahead: {q['cells_within_half_point_paced']} / "
        f"{q['cells_compared_paced']}.",
        "",
        "## Rankings (mean rank by prequential accuracy over stream x budget cells)",
        "",
        "All labels excluded. `cells`: cells where the method competes; `wins`: cells where it is "
        "first.",
    ]
    for ranking in checks["ranking"]:
        lines += [
            "",
            f"### {ranking['name']}",
            "",
            "| method | mean rank | mean accuracy | cells | wins |",
            "|---|---:|---:|---:|---:|",
        ]
        for r in ranking["rows"]:
            lines.append(
                f"| {_label(r['method'])} | {r['mean_rank']:.2f} | {100 * r['mean_accuracy']:.2f} "
                f"| {r['cells']} | {r['wins']} |"
            )
    lines += [
        "",
        f"Wall time: {config['wall_seconds'] / 60:.1f} min on {config['processes']} process(es).",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main


def write_report(
    runs: list[dict[str, Any]], config: dict[str, Any], out: str, markdown_path: str
) -> dict[str, Any]:
    """Aggregate the runs, check them, and write the JSON and the markdown."""
    cells = aggregate(runs, config["budgets"])
    checks = {
        "spend": spend_check(runs),
        "quality": quality_check(cells, config["default_strategy"]),
        "ranking": rankings(cells),
    }
    Path(out).write_text(
        json.dumps({"config": config, "cells": cells, "checks": checks, "runs": runs}, indent=1)
    )
    Path(markdown_path).write_text(markdown(cells, config["methods"], checks, config))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="0.01,0.05,0.1,0.2")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--methods", default=None, help="comma-separated; default: all")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results.json")
    parser.add_argument("--markdown", default="benchmarks/results.md")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 events, 1 seed")
    parser.add_argument(
        "--class-balance",
        type=float,
        default=0.0,
        help="every method learns with class-balanced weights of this power (0: off)",
    )
    parser.add_argument(
        "--logreg-step",
        type=float,
        default=None,
        help="every method's logistic model takes SGD steps of this size (default: the "
        "model's 0.05); generated streams only",
    )
    parser.add_argument(
        "--resume", action="store_true", help="reuse finished runs from <out>.runs.jsonl"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: rebuild the checks and the markdown from the runs in --out",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        saved = json.loads(Path(args.out).read_text())
        checks = write_report(saved["runs"], saved["config"], args.out, args.markdown)
        _summary(checks, saved["config"]["wall_seconds"])
        return 0
    if args.quick:
        args.events, args.seeds = min(args.events, 2000), 1
    budgets = [float(b) for b in args.budgets.split(",")]
    seeds = list(range(1, args.seeds + 1))
    streams = args.streams.split(",")
    if args.logreg_step is not None and set(streams) & set(REAL_STREAMS):
        parser.error(
            "--logreg-step applies to the generated streams, not to " + ",".join(REAL_STREAMS)
        )
    methods = (
        args.methods.split(",") if args.methods else [*streamal_methods(), "all_labels", *PEERS]
    )
    tasks = plan(streams, budgets, seeds, methods, args.events)
    log_path = Path(args.out).with_suffix(".runs.jsonl")
    runs: list[dict[str, Any]] = []
    if args.resume and log_path.exists():
        done = [json.loads(line) for line in log_path.read_text().splitlines() if line]
        wanted = {_key(t[0], t[1], t[2], t[3]) for t in tasks}
        runs = [r for r in done if _key(r["stream"], r["seed"], r["budget"], r["method"]) in wanted]
        have = {_key(r["stream"], r["seed"], r["budget"], r["method"]) for r in runs}
        tasks = [t for t in tasks if _key(t[0], t[1], t[2], t[3]) not in have]
    elif log_path.exists():
        log_path.unlink()
    started = time.perf_counter()
    print(f"{len(tasks)} runs on {args.processes} process(es)", file=sys.stderr, flush=True)
    _set_protocol(args.class_balance, args.logreg_step)
    pool = Pool(
        args.processes,
        initializer=_set_protocol,
        initargs=(args.class_balance, args.logreg_step),
        maxtasksperchild=50,
    )
    with pool, log_path.open("a") as log:
        for i, r in enumerate(pool.imap_unordered(run_task, tasks), start=1):
            runs.append(r)
            log.write(json.dumps(r) + "\n")
            log.flush()
            if i % 20 == 0 or i == len(tasks):
                elapsed = time.perf_counter() - started
                print(f"{i}/{len(tasks)} runs, {elapsed / 60:.1f} min", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    config = {
        "budgets": budgets,
        "seeds": len(seeds),
        "events": args.events,
        "streams": streams,
        "methods": methods,
        "label_delay": LABEL_DELAY,
        "spend_window": SPEND_WINDOW,
        "model": 'make_model("logreg")',
        "logreg_step": args.logreg_step,
        "measure": DEFAULT_MEASURE,
        "class_balance": args.class_balance,
        "default_strategy": Settings().strategy,
        "tune_prefix": TUNE_PREFIX,
        "processes": args.processes,
        "wall_seconds": wall,
        "cpu_count": os.cpu_count(),
        "streamal_version": streamal.__version__,
        "streamal_commit": os.environ.get("STREAMAL_COMMIT") or _commit(),
    }
    checks = write_report(runs, config, args.out, args.markdown)
    _summary(checks, wall)
    return 0


def _commit() -> str:
    """The commit of the streamal that ran, ``-dirty`` with changes not committed."""
    import subprocess

    def git(*args: str) -> str:
        here = str(Path(streamal.__file__).parent)
        done = subprocess.run(
            ["git", "-C", here, *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}-dirty" if dirty else head


def _summary(checks: dict[str, Any], wall: float) -> None:
    q = checks["quality"]
    print(
        f"wall time {wall / 60:.1f} min; spend violations: {len(checks['spend'])}; "
        f"default vs best peer within budget: {q['mean_diff_points']:+.2f} points on average, "
        f"{q['cells_within_half_point']}/{q['cells_compared']} cells within half a point; "
        f"vs best paced peer: {q['mean_diff_points_paced']:+.2f} points, "
        f"{q['cells_within_half_point_paced']}/{q['cells_compared_paced']} cells",
        file=sys.stderr,
    )


if __name__ == "__main__":
    raise SystemExit(main())
