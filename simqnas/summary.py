"""Tidy summaries of a super-network's searches: all evaluations, baselines, hypervolume progressions.

Everything downstream (tables, figures) reads these CSVs, so a figure can be regenerated from files alone.
Normalized latency = latency / all-INT8 baseline latency on the same host.
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


def load_evaluations(run_tables: Sequence[str | Path]) -> pd.DataFrame:
    frame = pd.concat([pd.read_csv(t) for t in run_tables], ignore_index=True)
    frame["size_mb"] = frame["size_bytes"] / 1e6
    return frame


def baselines_table(
    quality: Mapping[str, str | Path], latency: Mapping[tuple[str, str], str | Path]
) -> pd.DataFrame:
    """One row per reference network (fp32, int8): accuracy, size and, per host, latency."""
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
    table = pd.DataFrame(rows)
    table["size_mb"] = table["size_bytes"] / 1e6
    int8 = table[(table["baseline"] == "int8") & table["host"].notna()].set_index("host")["latency_ms"]
    table["normalized_latency"] = [
        row.latency_ms / int8[row.host] if isinstance(row.host, str) else np.nan for row in table.itertuples()
    ]
    return table


def add_normalized_latency(evaluations: pd.DataFrame, baselines: pd.DataFrame) -> pd.DataFrame:
    """Latency divided by the all-INT8 baseline latency of the same host (NaN where not measured)."""
    frame = evaluations.copy()
    if "latency_ms" not in frame:
        frame["latency_ms"] = np.nan
    if "host" not in frame:
        frame["host"] = None
    int8 = baselines[(baselines["baseline"] == "int8") & baselines["host"].notna()].set_index("host")
    reference = frame["host"].map(int8["latency_ms"]) if len(int8) else np.nan
    frame["normalized_latency"] = frame["latency_ms"] / reference
    return frame


def experiment_normalization(frame: pd.DataFrame, objective: str) -> Normalization:
    """Fixed bounds per experiment (all algorithms and seeds pooled), so their hypervolumes compare."""
    cost = COST_COLUMN[objective]
    return Normalization.from_values(frame[["accuracy", cost]].to_numpy(dtype=float), margin=0.1)


def hypervolume_table(evaluations: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Hypervolume after every evaluation of every run, and the normalization of each experiment."""
    rows, normalizations = [], {}
    for (space, objective), experiment in evaluations.groupby(["space", "objective"]):
        cost = COST_COLUMN[objective]
        normalization = experiment_normalization(experiment, objective)
        normalizations[f"{space}-{objective}"] = {
            **normalization.to_dict(),
            "columns": ["accuracy", cost],
            "directions": ["max", "min"],
        }
        for (algorithm, seed), run in experiment.groupby(["algorithm", "seed"]):
            run = run.sort_values("evaluation")
            progression = hypervolume_progression(
                run[["accuracy", cost]].to_numpy(dtype=float), (True, False), normalization
            )
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
