"""The paper's headline claims, measured on our fronts, each next to the paper's number.

Fronts are the Pareto fronts of all joint-search evaluations of one algorithm (seeds pooled) for one second
objective; the baseline is the all-INT8 super-network (latency normalized on the same host, so its cost is 1)
or, for claims against a fixed reference network (ResNet50/101/152 shapes), that network all-INT8.

Validation picks the point, the held-out test split reports it: a claim's point is chosen on the validation
accuracies the search saw (at iso-accuracy: accuracy >= the baseline's minus the margin), then its test
accuracy is compared with the baseline's on the same test samples (paired bootstrap, 95%). The point is
iso-accurate when that interval's lower bound lies above -margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simqnas.pareto import at_cost_pick, iso_accuracy_pick, most_accurate_pick, pareto_front_mask
from simqnas.statistics import PairedDifference, decode_correct, paired_difference
from simqnas.summary import COST_COLUMN, RUN_KEYS, own_baselines, reference_baselines

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


@dataclass(frozen=True)
class Measured:
    """A claim measured on validation: its value (cost ratio or accuracy gain) and the evaluation row of
    the front point it read (None for both when no point qualifies), against which baseline network."""

    value: float | None
    point: pd.Series | None
    baseline_network: str | None


def _pick(
    kind: str, acc: np.ndarray, costs: np.ndarray, base_acc: float, base_cost: float, margin: float
) -> int | None:
    if kind == "ratio_at_iso_accuracy":
        return iso_accuracy_pick(acc, costs, base_acc, base_cost, margin)
    if kind == "gain_at_cost":
        return at_cost_pick(acc, costs, base_acc, base_cost)
    return most_accurate_pick(acc, costs)


def measure_claim(
    claim: Claim,
    evaluations: pd.DataFrame,
    baselines: pd.DataFrame,
    algorithm: str,
    margin: float,
    references: Sequence[str] = (),
) -> Measured:
    """The claim on the algorithm's pooled validation front against the compared all-INT8 baseline."""
    cost = COST_COLUMN[claim.objective]
    points = evaluations[
        (evaluations["space"] == "joint")
        & (evaluations["objective"] == claim.objective)
        & (evaluations["algorithm"] == algorithm)
    ].dropna(subset=["accuracy", cost])
    if points.empty:
        return Measured(None, None, None)
    if claim.reference is None:
        base = own_baselines(baselines)
    else:
        name = reference_of(claim, references)
        if name is None:
            return Measured(None, None, None)
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
    network = base["network"].iloc[0] if "network" in base else None
    front = points[pareto_front_mask(points[["accuracy", cost]].to_numpy(dtype=float), (True, False))]
    acc, costs = front["accuracy"].to_numpy(dtype=float), front[cost].to_numpy(dtype=float)
    pick = _pick(claim.kind, acc, costs, base_acc, base_cost, margin)
    if pick is None:
        return Measured(None, None, network)
    value = base_cost / costs[pick] if "ratio" in claim.kind else acc[pick] - base_acc
    return Measured(float(value), front.iloc[pick], network)


def paired_test_difference(
    measured: Measured, test: pd.DataFrame, test_baselines: pd.DataFrame, reference: bool
) -> PairedDifference | None:
    """The picked point's test accuracy minus its all-INT8 baseline's, on the same test samples (None when
    no point was picked, or the test tables do not hold it)."""
    if measured.point is None:
        return None
    key = measured.point[RUN_KEYS]
    match = test.loc[(test[RUN_KEYS] == key.to_numpy()).all(axis=1)]
    base = test_baselines[
        (test_baselines["baseline"] == "int8") & (test_baselines["reference"].astype(bool) == reference)
    ]
    if reference:
        base = base[base["network"] == measured.baseline_network]
    if match.empty or base.empty:
        return None
    point, base = match.iloc[0], base.iloc[0]
    return paired_difference(
        decode_correct(point["test_correct"], int(point["test_samples"])),
        decode_correct(base["test_correct"], int(base["test_samples"])),
    )


def format_test_difference(difference: PairedDifference | None) -> str:
    """A paired test difference in percentage points with its 95% interval ("n/a" without one)."""
    if difference is None:
        return "n/a"
    d = difference.difference
    return f"{d.estimate * 100:+.2f} pp [{d.low * 100:+.2f}, {d.high * 100:+.2f}]"


def headline_table(
    family: str,
    evaluations: pd.DataFrame,
    baselines: pd.DataFrame,
    margin: float,
    references: Sequence[str] = (),
    test: pd.DataFrame | None = None,
    test_baselines: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per claim: the paper's number and ours for every algorithm that ran, with, when the test
    tables are given, the picked point's test accuracy difference to the baseline (paired 95% interval, pp)
    and whether it is iso-accurate (interval's lower bound above -margin). `margin` is absolute accuracy
    (0.01 = 1 pp); `references` are the network's reference networks in config order (claims against a
    reference match them by position)."""
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
            measured = measure_claim(claim, evaluations, baselines, algorithm, margin, references)
            row[algorithm] = _format(claim.kind, measured.value)
            row[f"{algorithm}_value"] = measured.value
            difference = (
                None
                if test is None or test_baselines is None
                else paired_test_difference(measured, test, test_baselines, claim.reference is not None)
            )
            row[f"{algorithm}_test"] = format_test_difference(difference)
            interval = difference.difference if difference else None
            row[f"{algorithm}_test_diff_value"] = interval.estimate if interval else np.nan
            row[f"{algorithm}_test_low_value"] = interval.low if interval else np.nan
            row[f"{algorithm}_test_high_value"] = interval.high if interval else np.nan
            row[f"{algorithm}_iso_accurate_value"] = (
                float(interval.low > -margin)
                if interval and claim.kind == "ratio_at_iso_accuracy"
                else np.nan
            )
        row["iso_accuracy_margin_pp"] = margin * 100
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
        if column.endswith("_value") or column == "iso_accuracy_margin_pp":
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


def headline_markdown(table: pd.DataFrame, margin: float) -> str:
    """The table without its machine-readable columns, and how points are picked and judged."""
    shown = table[[c for c in table.columns if not c.endswith("_value") and c != "iso_accuracy_margin_pp"]]
    note = (
        "\n\nValidation picks each claim's point on the pooled front of an algorithm's seeds (at "
        f"iso-accuracy: validation accuracy >= the compared all-INT8 baseline's minus {margin * 100:.2f} pp, "
        "best cost ratio); "
        "`<algorithm>_test` is its held-out test accuracy minus the baseline's on the same test samples, in "
        "percentage points, with the paired bootstrap 95% interval. A point is iso-accurate when that "
        f"interval's lower bound lies above -{margin * 100:.2f} pp. Ratios are the baseline's cost / ours.\n"
    )
    return shown.fillna("").to_markdown(index=False) + note
