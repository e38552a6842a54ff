"""Tidy summaries of a super-network's searches: all evaluations, baselines, hypervolume progressions.

Everything downstream (tables, figures) reads these CSVs, so a figure can be regenerated from files alone.
Normalized latency = latency / all-INT8 baseline latency on the same host. The baselines table also holds
the baselines of the fixed reference networks a super-network names (`references:`), normalized by the
super-network's own all-INT8 latency. Evaluations whose latency the stability gate left unstable
(`latency_stable` False, simqnas.latency) are listed apart (`split_unstable_latency`) and kept out of the
evaluations table, hence out of every front, hypervolume, headline claim and figure drawn from it; in the
hypervolume progression they still spend an evaluation of the budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simqnas.pareto import Normalization, hypervolume_progression
from simqnas.statistics import t_interval

#: the cost column each second objective is judged on in summaries and figures
COST_COLUMN = {"size": "size_mb", "latency": "normalized_latency"}

#: one network's baseline files: {precision: quality JSON} and {(host, precision): latency JSON}
BaselineFiles = tuple[Mapping[str, str | Path], Mapping[tuple[str, str], str | Path]]


def load_evaluations(run_tables: Sequence[str | Path]) -> pd.DataFrame:
    frame = pd.concat([pd.read_csv(t) for t in run_tables], ignore_index=True)
    frame["size_mb"] = frame["size_bytes"] / 1e6
    return frame


def _baseline_rows(
    quality: Mapping[str, str | Path], latency: Mapping[tuple[str, str], str | Path]
) -> list[dict[str, Any]]:
    rows = []
    for precision, path in quality.items():
        record = json.loads(Path(path).read_text())
        rows.append(
            {
                "baseline": precision,
                "host": None,
                "accuracy": record["accuracy"],
                "size_bytes": record["size_bytes"],
                "latency_ms": np.nan,
            }
        )
    for (host, precision), path in latency.items():
        record = json.loads(Path(path).read_text())
        base = next(r for r in rows if r["baseline"] == precision and r["host"] is None)
        rows.append({**base, "host": host, "latency_ms": record["latency_ms"]})
    return rows


def baselines_table(
    quality: Mapping[str, str | Path],
    latency: Mapping[tuple[str, str], str | Path],
    network: str | None = None,
    references: Mapping[str, BaselineFiles] | None = None,
) -> pd.DataFrame:
    """One row per baseline (fp32, int8): accuracy, size and, per host, latency; first the network's own,
    then those of each fixed reference network it is compared against (`network` names the row's network,
    `reference` tells them apart). Normalized latency divides by the network's own all-INT8 latency on the
    same host, for reference rows too: a reference's says how it compares with this network's baseline, on
    the scale the network's fronts are drawn on."""
    rows = [{"network": network, "reference": False, **row} for row in _baseline_rows(quality, latency)]
    for name, (reference_quality, reference_latency) in (references or {}).items():
        rows += [
            {"network": name, "reference": True, **row}
            for row in _baseline_rows(reference_quality, reference_latency)
        ]
    table = pd.DataFrame(rows)
    table["size_mb"] = table["size_bytes"] / 1e6
    own = own_baselines(table)
    int8 = own[(own["baseline"] == "int8") & own["host"].notna()].set_index("host")["latency_ms"]
    table["normalized_latency"] = [
        row.latency_ms / int8.get(row.host, np.nan) if isinstance(row.host, str) else np.nan
        for row in table.itertuples()
    ]
    return table


def reference_files(
    described: Sequence[Sequence[str | None]], paths: Sequence[str | Path]
) -> dict[str, BaselineFiles]:
    """Reference baseline files grouped per reference network, as `baselines_table` takes them: `described`
    says what each of `paths` is, (reference, host or None for quality, precision)."""
    references: dict[str, BaselineFiles] = {}
    for (reference, host, precision), path in zip(described, paths, strict=True):
        quality, latency = references.setdefault(reference, ({}, {}))
        if host is None:
            quality[precision] = path
        else:
            latency[host, precision] = path
    return references


def own_baselines(baselines: pd.DataFrame) -> pd.DataFrame:
    """The network's own FP32 and all-INT8 rows (a table without a `reference` column is all its own)."""
    if "reference" not in baselines:
        return baselines
    return baselines[~baselines["reference"].astype(bool)]


def reference_names(baselines: pd.DataFrame) -> list[str]:
    """The reference networks of a baselines table, in the order the config names them."""
    if "reference" not in baselines:
        return []
    return list(dict.fromkeys(baselines.loc[baselines["reference"].astype(bool), "network"]))


def reference_baselines(baselines: pd.DataFrame, name: str) -> pd.DataFrame:
    """The FP32 and all-INT8 rows of one reference network (none if the table has no such reference)."""
    if "reference" not in baselines:
        return baselines.iloc[0:0]
    return baselines[baselines["reference"].astype(bool) & (baselines["network"] == name)]


def add_normalized_latency(evaluations: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Latency divided by the all-INT8 baseline latency of the same host (NaN where not measured): by the
    baseline timed in the same rounds as the candidate (`latency_reference_ratio`, what a latency job
    records), else by the host's baseline measured in its own job."""
    frame = evaluations.copy()
    if "latency_ms" not in frame:
        frame["latency_ms"] = np.nan
    if "host" not in frame:
        frame["host"] = None
    own = own_baselines(baselines)
    int8 = own[(own["baseline"] == "int8") & own["host"].notna()].set_index("host")
    reference = frame["host"].map(int8["latency_ms"]) if len(int8) else np.nan
    frame["normalized_latency"] = prefer_same_rounds(frame, frame["latency_ms"] / reference)
    return frame


def prefer_same_rounds(frame: pd.DataFrame, normalized: pd.Series) -> pd.Series:
    """`latency_reference_ratio` (the latency over the all-INT8 baseline timed in the same interleaved
    rounds) where a row has it, `normalized` elsewhere."""
    if "latency_reference_ratio" not in frame:
        return normalized
    same_rounds = pd.to_numeric(frame["latency_reference_ratio"], errors="coerce")
    return same_rounds.where(np.isfinite(same_rounds), normalized)


def unstable_latency(evaluations: pd.DataFrame) -> pd.Series:
    """Rows whose latency the stability gate left unstable: `latency_stable` False (or 0, as a column that
    mixes it with empty cells reads back); a table without the column, or a row that measured no latency,
    counts as stable."""
    if "latency_stable" not in evaluations:
        return pd.Series(False, index=evaluations.index)
    return evaluations["latency_stable"].astype(str).str.strip().str.lower().isin(["false", "0", "0.0"])


def split_unstable_latency(evaluations: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(evaluations with a stable or no latency, evaluations with an unstable latency)."""
    unstable = unstable_latency(evaluations)
    return evaluations[~unstable], evaluations[unstable]


def chance_accuracy(data_summary: Mapping[str, Any]) -> float:
    """The accuracy of always answering the validation split's most frequent class (a data rule's
    summary.json: a text split's positive fraction, an image split's per-class counts)."""
    split = data_summary["splits"]["validation"]
    if "per_class" in split:
        counts = np.asarray(split["per_class"], dtype=float)
        return float(counts.max() / counts.sum())
    return float(max(split["positive_fraction"], 1 - split["positive_fraction"]))


#: how each hypervolume bound is fixed, as written next to the result
NORMALIZATION_RULE = {
    "accuracy": "chance (the validation split's majority class) .. 1.0",
    "size_mb": "0 .. the costlier full network's size (FP32)",
    "normalized_latency": "0 .. the slower full network's latency, FP32 or all-INT8 (all-INT8 = 1 per host)",
}


def fixed_normalization(objective: str, baselines: pd.DataFrame, chance: float) -> Normalization:
    """One normalization per objective, from quantities no search changes: accuracy from chance to 1, cost
    from 0 to the costlier of the FP32 and all-INT8 full networks (every sub-network and policy is at most
    that large; on latency, the slowest of the searched hosts, and an all-INT8 network can be the slower one
    on a CPU without fast INT8 kernels). Every algorithm, seed and space (Fig 3's quantization-only and joint
    searches) is judged in it, so adding or removing a run changes no other run's hypervolume. Cost 0 rather
    than the smallest sub-network's cost: it needs no extra measurement, and a measured latency bound would
    carry its own noise.
    """
    cost = COST_COLUMN[objective]
    full = own_baselines(baselines)
    full = full[full["host"].notna()] if objective == "latency" else full[full["host"].isna()]
    upper = float(full[cost].max()) if len(full) else np.nan
    if not np.isfinite(upper) or upper <= 0:
        raise ValueError(
            f"hypervolume: no full-network baseline {cost} to bound the {objective} objective with"
        )
    return Normalization.from_bounds((chance, 0.0), (1.0, upper))


def normalization_columns(normalization: Normalization, objective: str) -> dict[str, Any]:
    """The normalization of a hypervolume as columns of the table that holds it."""
    return {
        "accuracy_bounds": f"{normalization.lower[0]:.4g}..{normalization.upper[0]:.4g}",
        "cost_column": COST_COLUMN[objective],
        "cost_bounds": f"{normalization.lower[1]:.4g}..{normalization.upper[1]:.4g}",
        "reference_point": ",".join(f"{r:g}" for r in normalization.reference),
    }


def hypervolume_table(
    evaluations: pd.DataFrame, baselines: pd.DataFrame, chance: float
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Hypervolume after every evaluation of every run, each objective in its one fixed normalization
    (`fixed_normalization`, written in every row and returned per objective). An evaluation with an
    unstable latency counts as an evaluation but adds no point."""
    rows, normalizations = [], {}
    for objective in sorted(set(evaluations["objective"])):
        cost = COST_COLUMN[objective]
        normalization = fixed_normalization(objective, baselines, chance)
        normalizations[objective] = {
            **normalization.to_dict(),
            "columns": ["accuracy", cost],
            "directions": ["max", "min"],
            "rule": {"accuracy": NORMALIZATION_RULE["accuracy"], cost: NORMALIZATION_RULE[cost]},
        }
        columns = normalization_columns(normalization, objective)
        experiment = evaluations[evaluations["objective"] == objective]
        for (space, algorithm, seed), run in experiment.groupby(["space", "algorithm", "seed"]):
            run = run.sort_values("evaluation")
            counted = ~unstable_latency(run).to_numpy()
            hypervolumes = hypervolume_progression(
                run.loc[counted, ["accuracy", cost]].to_numpy(dtype=float), (True, False), normalization
            )
            # after an excluded evaluation the hypervolume stays that of the evaluations before it
            progression = np.concatenate([[0.0], hypervolumes])[np.cumsum(counted)]
            rows += [
                {
                    "space": space,
                    "objective": objective,
                    "algorithm": algorithm,
                    "seed": seed,
                    "evaluations": i + 1,
                    "hypervolume": hv,
                    **columns,
                }
                for i, hv in enumerate(progression)
            ]
    return pd.DataFrame(rows), normalizations


def final_hypervolumes(hypervolume: pd.DataFrame) -> pd.DataFrame:
    """Each experiment's (space, objective, algorithm) final hypervolume over seeds: mean, std and the 95% t
    interval of the mean, with the normalization it was computed in."""
    rows = []
    keys = ["space", "objective", "algorithm"]
    normalization = [
        c for c in ("accuracy_bounds", "cost_column", "cost_bounds", "reference_point") if c in hypervolume
    ]
    for (space, objective, algorithm), runs in hypervolume.groupby(keys):
        last = runs.sort_values("evaluations").groupby("seed").tail(1)
        summary = t_interval(last["hypervolume"].to_numpy(dtype=float))
        rows.append(
            {
                "space": space,
                "objective": objective,
                "algorithm": algorithm,
                "evaluations": int(last["evaluations"].max()),
                "seeds": summary.seeds,
                "mean": summary.mean,
                "std": summary.std,
                "ci95_low": summary.low,
                "ci95_high": summary.high,
                **last.iloc[0][normalization].to_dict(),
            }
        )
    return pd.DataFrame(rows)


#: what identifies a search run's evaluation across the tidy tables
RUN_KEYS = ["space", "objective", "algorithm", "seed", "evaluation"]


def heldout_points(
    evaluations: pd.DataFrame, runs: Sequence[Mapping[str, Any]], tables: Sequence[str | Path]
) -> pd.DataFrame:
    """Every run's own front points with their held-out test results (a run's `test.csv`, in the order of
    `runs`), beside their validation accuracy and costs from the summary's evaluations."""
    parts = []
    for run, path in zip(runs, tables, strict=True):
        table = pd.read_csv(path)
        identity = {key: run[key] for key in ("space", "objective", "algorithm", "seed")}
        parts.append(table.drop(columns=["accuracy", "genome"]).assign(**identity))
    tested = pd.concat(parts, ignore_index=True)
    columns = [*RUN_KEYS, "accuracy", "size_mb", "normalized_latency", "host"]
    joined = evaluations[columns].merge(tested, on=RUN_KEYS, how="inner", validate="one_to_one")
    if len(joined) != len(tested):
        raise ValueError("test: front points that are not among the summary's evaluations")
    return joined


def heldout_baselines_table(
    own: Mapping[str, str | Path], references: Mapping[str, Mapping[str, str | Path]], network: str
) -> pd.DataFrame:
    """The FP32 and all-INT8 full networks on the test split: the network's own (`own`: precision -> record
    file) and each reference network's, with per-sample correctness."""
    rows = []
    for name, files, is_reference in [(network, own, False)] + [(n, f, True) for n, f in references.items()]:
        for precision, path in files.items():
            record = json.loads(Path(path).read_text())
            rows.append(
                {
                    "network": name,
                    "reference": is_reference,
                    "baseline": precision,
                    "test_accuracy": record["accuracy"],
                    "test_samples": record["samples"],
                    "test_correct": record["correct"],
                }
            )
    return pd.DataFrame(rows)
