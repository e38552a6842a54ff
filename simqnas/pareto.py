"""Pareto fronts, normalized hypervolume, and the paper's headline comparisons against a baseline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

DEFAULT_REFERENCE = 1.1


def _minimization(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or values.shape[1] != len(maximize):
        raise ValueError(f"values {values.shape} do not match {len(maximize)} objectives")
    return values * np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)


def pareto_front_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n, n_objectives).

    Identical rows on the front are kept once: the first occurrence is True, later copies False, so the
    front lists each point once whatever the input order of the copies.
    """
    minimized = _minimization(values, maximize)
    mask = np.zeros(len(minimized), dtype=bool)
    if len(minimized) == 0:
        return mask
    front = NonDominatedSorting().do(minimized, only_non_dominated_front=True)
    _, first = np.unique(minimized[front], axis=0, return_index=True)
    mask[np.sort(np.asarray(front)[first])] = True
    return mask


def non_dominated_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (at least as good in every objective, better in one);
    unlike `pareto_front_mask`, equal rows on the front are all kept."""
    minimized = _minimization(values, maximize)
    no_worse = np.all(minimized[:, None, :] <= minimized[None, :, :], axis=2)  # [j, i]: j no worse than i
    better = np.any(minimized[:, None, :] < minimized[None, :, :], axis=2)
    return ~np.any(no_worse & better, axis=0)


@dataclass(frozen=True)
class Normalization:
    """Fixed per-objective bounds that map raw values into a shared space for hypervolume.

    Each objective is mapped linearly so that its best bound goes to 0 and its worst bound to 1 (for a
    maximized objective `upper` is the best bound, for a minimized one `lower` is); `reference` is the
    hypervolume reference point in that normalized space (1.1 by default: points slightly worse than the
    bounds still count a little, points beyond it not at all). Fixing the bounds once, from config or
    baseline values, and storing them next to the results keeps hypervolumes of different algorithms and
    seeds comparable.
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    reference: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.lower) == len(self.upper) == len(self.reference):
            raise ValueError("normalization: lower, upper and reference differ in length")
        if any(hi <= lo for lo, hi in zip(self.lower, self.upper, strict=True)):
            raise ValueError(f"normalization: upper {self.upper} must exceed lower {self.lower}")

    @classmethod
    def from_bounds(
        cls,
        lower: Sequence[float],
        upper: Sequence[float],
        reference: float | Sequence[float] = DEFAULT_REFERENCE,
    ) -> Normalization:
        ref = [reference] * len(lower) if np.ndim(reference) == 0 else list(reference)
        return cls(
            tuple(float(v) for v in lower), tuple(float(v) for v in upper), tuple(float(r) for r in ref)
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Normalization:
        return cls.from_bounds(data["lower"], data["upper"], data.get("reference", DEFAULT_REFERENCE))

    def to_dict(self) -> dict[str, list[float]]:
        return {"lower": list(self.lower), "upper": list(self.upper), "reference": list(self.reference)}

    def normalize(self, values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
        """Raw values -> normalized, to-be-minimized values (0 = best bound, 1 = worst bound)."""
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] != len(self.lower) or len(maximize) != len(self.lower):
            raise ValueError(
                f"values {values.shape} do not match a {len(self.lower)}-objective normalization"
            )
        lower, upper = np.array(self.lower), np.array(self.upper)
        scaled = (values - lower) / (upper - lower)
        return np.where(np.asarray(maximize, dtype=bool), 1.0 - scaled, scaled)


def _normalized_hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    points = points[np.all(points < reference, axis=1)]
    if len(points) == 0:
        return 0.0
    return float(HV(ref_point=reference)(points))


def hypervolume(values: np.ndarray, maximize: Sequence[bool], normalization: Normalization) -> float:
    """Hypervolume of `values` (raw units) in `normalization`'s space, via pymoo's HV indicator.

    Points that do not dominate the reference point contribute nothing; an empty set has volume 0.
    """
    points = normalization.normalize(values, maximize)
    return _normalized_hypervolume(points, np.array(normalization.reference))


def hypervolume_progression(
    values_in_eval_order: np.ndarray, maximize: Sequence[bool], normalization: Normalization
) -> np.ndarray:
    """Hypervolume of the first k evaluations, for k = 1..n (same units and rules as `hypervolume`)."""
    points = normalization.normalize(values_in_eval_order, maximize)
    reference = np.array(normalization.reference)
    progression = np.zeros(len(points))
    front = np.zeros((0, points.shape[1]))
    current = 0.0
    for k, point in enumerate(points):
        if not np.any(np.all(front <= point, axis=1)):
            # Only a newcomer that no earlier point weakly dominates can change the volume.
            front = np.concatenate([front[~np.all(point <= front, axis=1)], point[None]])
            current = _normalized_hypervolume(front, reference)
        progression[k] = current
    return progression


# Headline comparisons against a baseline (the paper's all-INT8 model): which front point each claim reads.
# "Cost" is model size or latency (lower is better), "accuracy" is a fraction in [0, 1] (higher is better);
# a cost ratio is base_cost / cost, so 2.0 reads "2x smaller / faster than the baseline".


def _as_front(front_acc: Sequence[float], front_cost: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    acc, cost = np.asarray(front_acc, dtype=float), np.asarray(front_cost, dtype=float)
    if acc.shape != cost.shape or acc.ndim != 1:
        raise ValueError(f"accuracies {acc.shape} and costs {cost.shape} do not match")
    return acc, cost


def iso_accuracy_pick(
    front_acc: Sequence[float],
    front_cost: Sequence[float],
    base_acc: float,
    base_cost: float,
    tolerance: float = 0.0,
) -> int | None:
    """Index of the point with the best base_cost / cost among those at least as accurate as the baseline,
    up to `tolerance` (absolute accuracy: acc >= base_acc - tolerance); None when no point qualifies."""
    acc, cost = _as_front(front_acc, front_cost)
    qualifies = np.flatnonzero(acc >= base_acc - tolerance)
    return int(qualifies[np.argmax(base_cost / cost[qualifies])]) if len(qualifies) else None


def at_cost_pick(
    front_acc: Sequence[float], front_cost: Sequence[float], base_acc: float, base_cost: float
) -> int | None:
    """Index of the most accurate point costing no more than the baseline (None: no point is that cheap)."""
    acc, cost = _as_front(front_acc, front_cost)
    qualifies = np.flatnonzero(cost <= base_cost)
    return int(qualifies[np.argmax(acc[qualifies])]) if len(qualifies) else None


def most_accurate_pick(front_acc: Sequence[float], front_cost: Sequence[float]) -> int:
    """Index of the most accurate point (the cheapest of equally accurate ones)."""
    acc, cost = _as_front(front_acc, front_cost)
    if len(acc) == 0:
        raise ValueError("no points to compare with the baseline")
    return int(np.lexsort((cost, -acc))[0])
