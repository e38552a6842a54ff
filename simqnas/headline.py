"""The paper's headline claims, measured on our fronts, each next to the paper's number.

Fronts are the Pareto fronts of all joint-search evaluations of one algorithm (seeds pooled) for one second
objective; the baseline is the all-INT8 super-network (latency normalized on the same host, so its cost is 1)
or, for claims against a fixed reference network (ResNet50/101/152 shapes), that network all-INT8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simqnas.pareto import (
    best_accuracy_gain_at_cost,
    best_cost_ratio_at_accuracy,
    most_accurate_versus_baseline,
    pareto_front_mask,
)
from simqnas.summary import COST_COLUMN, own_baselines, reference_baselines

#: what a claim is measured against when it names no reference network
OWN_BASELINE = "all-INT8 super-network"
#: the algorithms' column order: the names of simqnas.search.ALGORITHMS (not imported here: the plot rules'
#: environment has neither scikit-learn nor optuna)
ALGORITHM_ORDER = ("linas", "nsga2", "random", "tpe")


@dataclass(frozen=True)
class Claim:
    """One sentence of the paper's results section, as a measure on a front."""

    measure: str
    objective: str  # size | latency
    kind: str  # ratio_at_iso_accuracy | gain_at_cost | most_accurate_ratio | most_accurate_gain
    paper: str
    #: None: against the network's own all-INT8 baseline; i: against the i-th of its `references` (all-INT8)
    reference: int | None = None


def _versus_resnets(measure: str, objective: str, papers: tuple[str, str, str]) -> tuple[Claim, ...]:
    """One claim at iso-accuracy against each fixed ResNet shape: the i-th of the config's `references`."""
    shapes = ("ResNet50", "ResNet101", "ResNet152")
    return tuple(
        Claim(f"{measure} at iso-accuracy vs {shape}", objective, "ratio_at_iso_accuracy", paper, reference=i)
        for i, (shape, paper) in enumerate(zip(shapes, papers, strict=True))
    )


PAPER_CLAIMS: dict[str, tuple[Claim, ...]] = {
    "bert": (
        Claim("speed-up at iso-accuracy vs INT8 baseline", "latency", "ratio_at_iso_accuracy", "2.20x"),
        Claim("slowest front configuration: speed-up", "latency", "most_accurate_ratio", "1.23x"),
        Claim("slowest front configuration: accuracy gain", "latency", "most_accurate_gain", "+1.70%"),
        Claim("size reduction at iso-accuracy", "size", "ratio_at_iso_accuracy", "1.83x"),
        Claim("most accurate network: size reduction", "size", "most_accurate_ratio", "1.06x"),
    ),
    # ratios are baseline cost / cost: the paper's "1.22x larger" is 1 / 1.22 = 0.82x
    "vit": (
        Claim("speed-up at iso-accuracy vs INT8 baseline", "latency", "ratio_at_iso_accuracy", "1.97x"),
        Claim("most accurate network: speed-up", "latency", "most_accurate_ratio", "1.20x"),
        Claim("most accurate network: accuracy gain", "latency", "most_accurate_gain", "+2.30%"),
        # "the improvement ... is 42.40%": size 42.40% below the baseline's, 1 / (1 - 0.424) = 1.74x
        Claim("size reduction at iso-accuracy", "size", "ratio_at_iso_accuracy", "1.74x (42.40%)"),
        Claim("accuracy gain at the baseline's size", "size", "gain_at_cost", "+2.03%"),
    ),
    "multiway": (
        Claim("size reduction at iso-accuracy", "size", "ratio_at_iso_accuracy", "1.02x"),
        Claim("most accurate network: size reduction", "size", "most_accurate_ratio", "0.82x (1.22x larger)"),
        Claim("most accurate network: accuracy gain", "size", "most_accurate_gain", "+0.64%"),
        Claim("speed-up at iso-accuracy vs INT8 baseline", "latency", "ratio_at_iso_accuracy", "1.12x"),
        Claim("most accurate network: speed-up", "latency", "most_accurate_ratio", "0.94x (1.06x slower)"),
        Claim("most accurate network: accuracy gain", "latency", "most_accurate_gain", "+0.69%"),
    ),
    # "without accuracy loss model size was reduced by 2x, 3.06x and 3.44x for ResNet50, ResNet101 and
    # ResNet152 baselines ... for the latency objective, an improvement of 2.30x, 4.36x and 4.8x": the
    # OFA-ResNet50 front against fixed networks of those shapes, all-INT8. The config's `references` name
    # them in that order.
    "resnet": (
        *_versus_resnets("size reduction", "size", ("2x", "3.06x", "3.44x")),
        *_versus_resnets("speed-up", "latency", ("2.30x", "4.36x", "4.8x")),
    ),
}


def _format(kind: str, value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value * 100:+.2f}%" if "gain" in kind else f"{value:.2f}x"


def reference_of(claim: Claim, references: Sequence[str]) -> str | None:
    """The reference network a claim is measured against (None: the network's own baseline, or a claim
    whose reference the config does not name)."""
    if claim.reference is None or claim.reference >= len(references):
        return None
    return references[claim.reference]


def versus(claim: Claim, references: Sequence[str]) -> str:
    """What a claim is measured against, as the table says it."""
    if claim.reference is None:
        return OWN_BASELINE
    name = reference_of(claim, references)
    return f"{name} all-INT8" if name else f"(no reference {claim.reference + 1} configured)"


def measure_claim(
    claim: Claim,
    evaluations: pd.DataFrame,
    baselines: pd.DataFrame,
    algorithm: str,
    tolerance: float,
    references: Sequence[str] = (),
) -> float | None:
    cost = COST_COLUMN[claim.objective]
    points = evaluations[
        (evaluations["space"] == "joint")
        & (evaluations["objective"] == claim.objective)
        & (evaluations["algorithm"] == algorithm)
    ].dropna(subset=["accuracy", cost])
    if points.empty:
        return None
    if claim.reference is None:
        base = own_baselines(baselines)
    else:
        name = reference_of(claim, references)
        if name is None:
            return None
        base = reference_baselines(baselines, name)
    base = base[base["baseline"] == "int8"]
    if claim.objective == "latency":
        base = base[base["host"] == points["host"].iloc[0]]
    else:
        base = base[base["host"].isna()]
    if base.empty:
        # the rules always summarize every configured reference on the search's host: a missing row is a bug
        raise ValueError(
            f"no all-INT8 {claim.objective} baseline of {versus(claim, references)} to compare with"
        )
    base_acc, base_cost = float(base["accuracy"].iloc[0]), float(base[cost].iloc[0])
    values = points[["accuracy", cost]].to_numpy(dtype=float)
    front = values[pareto_front_mask(values, (True, False))]
    acc, costs = front[:, 0], front[:, 1]
    if claim.kind == "ratio_at_iso_accuracy":
        return best_cost_ratio_at_accuracy(acc, costs, base_acc, base_cost, tolerance)
    if claim.kind == "gain_at_cost":
        return best_accuracy_gain_at_cost(acc, costs, base_acc, base_cost)
    point = most_accurate_versus_baseline(acc, costs, base_acc, base_cost)
    return point.cost_ratio if claim.kind == "most_accurate_ratio" else point.accuracy_gain


def headline_table(
    family: str,
    evaluations: pd.DataFrame,
    baselines: pd.DataFrame,
    tolerance: float,
    references: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per claim: the paper's number and ours for every algorithm that ran. `references` are the
    network's reference networks in config order (claims against a reference match them by position)."""
    algorithms = [a for a in ALGORITHM_ORDER if a in set(evaluations["algorithm"])]
    rows = []
    for claim in PAPER_CLAIMS.get(family, ()):
        row = {
            "measure": claim.measure,
            "objective": claim.objective,
            "versus": versus(claim, references),
            "paper": claim.paper,
        }
        for algorithm in algorithms:
            value = measure_claim(claim, evaluations, baselines, algorithm, tolerance, references)
            row[algorithm] = _format(claim.kind, value)
            row[f"{algorithm}_value"] = value
        row["iso_accuracy_tolerance"] = tolerance
        rows.append(row)
    return pd.DataFrame(rows)


def read_headline(path: str | Path) -> pd.DataFrame:
    """A per-network headline table as written: "n/a" stays text (pandas would read it as missing), the
    `*_value` columns are numbers; a family without claims wrote an empty file."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    for column in table.columns:
        if column.endswith("_value") or column == "iso_accuracy_tolerance":
            table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


#: the combined table's leading columns; the algorithms' columns follow, then their values
COMBINED_COLUMNS = ["network", "family", "measure", "objective", "versus", "paper"]


def combined_headline(
    nets: Sequence[str], families: Sequence[str], tables: Sequence[pd.DataFrame]
) -> pd.DataFrame:
    """Every network's headline table stacked, with the network and its family in front; an algorithm a
    network did not run is empty in its rows."""
    parts = [
        table.assign(network=net, family=family)
        for net, family, table in zip(nets, families, tables, strict=True)
        if len(table)
    ]
    if not parts:
        return pd.DataFrame(columns=COMBINED_COLUMNS)
    combined = pd.concat(parts, ignore_index=True)
    algorithms = [a for a in ALGORITHM_ORDER if a in combined]
    values = [f"{a}_value" for a in algorithms if f"{a}_value" in combined]
    rest = [c for c in combined.columns if c not in {*COMBINED_COLUMNS, *algorithms, *values}]
    return combined[[c for c in COMBINED_COLUMNS if c in combined] + algorithms + values + rest]


def headline_markdown(table: pd.DataFrame, tolerance: float) -> str:
    """The table without its machine-readable columns, and how iso-accuracy is judged."""
    shown = table[[c for c in table.columns if not c.endswith("_value") and c != "iso_accuracy_tolerance"]]
    note = (
        f"\n\nIso-accuracy: a point counts when its accuracy >= the compared all-INT8 baseline's minus "
        f"{tolerance * 100:.2f} percentage points. Fronts pool every seed of an algorithm; ratios are the "
        "baseline's cost / ours.\n"
    )
    return shown.fillna("").to_markdown(index=False) + note
