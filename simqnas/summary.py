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


def experiment_normalization(frame: pd.DataFrame, objective: str) -> Normalization:
    """Fixed bounds per experiment (all algorithms and seeds pooled), so their hypervolumes compare."""
    cost = COST_COLUMN[objective]
    return Normalization.from_values(frame[["accuracy", cost]].to_numpy(dtype=float), margin=0.1)


def hypervolume_table(evaluations: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Hypervolume after every evaluation of every run, and the normalization of each experiment. An
    evaluation with an unstable latency counts as an evaluation but adds no point (nor bound)."""
    rows, normalizations = [], {}
    for (space, objective), experiment in evaluations.groupby(["space", "objective"]):
        cost = COST_COLUMN[objective]
        normalization = experiment_normalization(split_unstable_latency(experiment)[0], objective)
        normalizations[f"{space}-{objective}"] = {
            **normalization.to_dict(),
            "columns": ["accuracy", cost],
            "directions": ["max", "min"],
        }
        for (algorithm, seed), run in experiment.groupby(["algorithm", "seed"]):
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
                }
                for i, hv in enumerate(progression)
            ]
    return pd.DataFrame(rows), normalizations
