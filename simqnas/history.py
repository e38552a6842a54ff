"""Tidy tables of a search run: candidates proposed, evaluations gathered, and the History they form.

An iteration's `evaluated.csv` has one row per candidate: iteration, candidate, genome (JSON list of gene
indices), accuracy, size_bytes, latency_ms (empty when the run does not measure latency), and provenance.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simqnas.io import write_json_atomic
from simqnas.search.base import History, Objective
from simqnas.summary import prefer_same_rounds

log = logging.getLogger(__name__)

#: objective name -> (column of the tidy tables, maximize?)
OBJECTIVES: dict[str, tuple[str, bool]] = {
    "accuracy": ("accuracy", True),
    "size": ("size_bytes", False),
    "latency": ("latency_ms", False),
}


def objectives_for(second: str) -> tuple[Objective, ...]:
    """Accuracy is always the first objective; `second` is size or latency."""
    return tuple(Objective(name, OBJECTIVES[name][1]) for name in ("accuracy", second))


def ranked_values(frame: pd.DataFrame, second: str) -> np.ndarray:
    """(accuracy, second objective) of each row as searches and run fronts rank them: latency as the ratio
    over the all-INT8 baseline timed in the same rounds where a row has it (what the summaries report as
    normalized latency), so that a slow spell of the machine steers neither a search nor a front."""
    cost = frame[OBJECTIVES[second][0]].astype(float)
    if second == "latency":
        cost = prefer_same_rounds(frame, cost)
    return np.column_stack([frame["accuracy"].to_numpy(dtype=float), cost.to_numpy(dtype=float)])


def write_candidates(path: str | Path, genomes: np.ndarray, meta: dict[str, Any]) -> None:
    write_json_atomic(path, {**meta, "genomes": [[int(g) for g in row] for row in genomes]})


def read_candidates(path: str | Path) -> np.ndarray:
    genomes = json.loads(Path(path).read_text())["genomes"]
    return np.asarray(genomes, dtype=np.int64).reshape(len(genomes), -1)


def genome_column(genomes: np.ndarray) -> list[str]:
    return [json.dumps([int(g) for g in row]) for row in genomes]


def history_from_tables(tables: Sequence[str | Path], n_genes: int, second: str) -> History:
    """The History of a run from its iterations' evaluated.csv files, in evaluation order."""
    objectives = objectives_for(second)
    if not tables:
        return History.empty(n_genes, objectives)
    frame = pd.concat([pd.read_csv(t) for t in tables], ignore_index=True)
    columns = [OBJECTIVES[o.name][0] for o in objectives]
    missing = frame[columns].isna().any(axis=1)
    if missing.any():
        raise ValueError(f"{tables[-1]}: {int(missing.sum())} evaluations lack {columns}")
    genomes = np.array([json.loads(g) for g in frame["genome"]], dtype=np.int64).reshape(len(frame), n_genes)
    return History(genomes, ranked_values(frame, second), objectives)


def check_measurements(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    """Refuse NaN, infinite or negative measurements: they would silently corrupt a Pareto front."""
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame.index[~np.isfinite(values) | (values < 0)]
        if len(bad):
            first = bad[0]
            candidate = int(frame.at[first, "candidate"]) if "candidate" in frame else first
            raise ValueError(f"{source}: candidate {candidate}: invalid {column} {frame.at[first, column]!s}")


#: what an accuracy + size evaluation writes per candidate (shards, and latency jobs of a latency run)
QUALITY_COLUMNS = ["candidate", "accuracy", "size_bytes", "quality_key", "quality_cached"]


def gather_iteration(
    genomes: np.ndarray,
    shards: Sequence[str | Path],
    latency: Sequence[str | Path],
    iteration: int,
    run: str | None = None,
) -> pd.DataFrame:
    """One row per proposed candidate: accuracy and size (from the shards or, in a latency run, from the
    latency job, which measures all three in one pass) joined with latency if measured. Shards that pool
    several runs' candidates (a `run` column) give the rows of `run`.

    An iteration without candidates (the search has evaluated every network of its space) has no shards
    and gives an empty table: the run ends with what it has, logged, instead of failing.
    """
    if not len(genomes):
        log.warning("iteration %d: no candidates left, every network of the space is evaluated", iteration)
        return pd.DataFrame({"iteration": [], "candidate": [], "genome": []})
    timing = pd.concat([pd.read_csv(t) for t in latency], ignore_index=True) if latency else None
    if shards:
        frame, source = pd.concat([pd.read_csv(s) for s in shards], ignore_index=True), str(shards[0])
        if "run" in frame:
            frame = frame[frame["run"] == run].drop(columns="run")
    elif timing is not None:
        frame, source = timing[QUALITY_COLUMNS], str(latency[0])
        timing = timing.drop(columns=QUALITY_COLUMNS[1:])
    else:
        raise ValueError(f"iteration {iteration}: neither shards nor latency tables to gather")
    frame = frame.sort_values("candidate")
    expected = list(range(len(genomes)))
    if frame["candidate"].tolist() != expected:
        whose = f" of {run}" if run else ""
        expected_range = f"0..{len(genomes) - 1}"
        raise ValueError(f"{source}: the evaluations{whose} do not cover candidates {expected_range} once")
    check_measurements(frame, ["accuracy", "size_bytes"], source)
    if timing is not None:
        check_measurements(timing, ["latency_ms"], str(latency[0]))
        frame = frame.merge(timing, on="candidate", how="left", validate="one_to_one")
        check_measurements(frame, ["latency_ms"], str(latency[0]))
    frame.insert(0, "iteration", iteration)
    frame["genome"] = genome_column(genomes)
    return frame.reset_index(drop=True)
