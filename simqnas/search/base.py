"""The one interface every search algorithm implements: propose a population from the history so far."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from simqnas.space import SearchSpace


@dataclass(frozen=True)
class Objective:
    """One search objective, e.g. accuracy (maximized) or model size (minimized)."""

    name: str
    maximize: bool


@dataclass(frozen=True)
class History:
    """All real evaluations of one search run so far, in evaluation order.

    `genomes` is (n, n_genes) int64 (gene = index of the chosen value), `values` is (n, n_objectives)
    raw measurements in the units of `objectives` (accuracy in [0, 1], size in bytes, ...).
    """

    genomes: np.ndarray
    values: np.ndarray
    objectives: tuple[Objective, ...]

    def __post_init__(self) -> None:
        if self.genomes.ndim != 2 or self.values.ndim != 2 or len(self.genomes) != len(self.values):
            raise ValueError(
                f"history: genomes {self.genomes.shape} and values {self.values.shape} do not match"
            )
        if self.values.shape[1] != len(self.objectives):
            raise ValueError(
                f"history: {self.values.shape[1]} value columns for {len(self.objectives)} objectives"
            )

    @classmethod
    def empty(cls, n_genes: int, objectives: tuple[Objective, ...]) -> History:
        return cls(np.zeros((0, n_genes), dtype=np.int64), np.zeros((0, len(objectives))), objectives)

    def __len__(self) -> int:
        return len(self.genomes)

    def minimization_values(self) -> np.ndarray:
        """Values with maximized objectives negated, so that every column is to be minimized."""
        signs = np.array([-1.0 if o.maximize else 1.0 for o in self.objectives])
        return self.values * signs

    def seen(self, space: SearchSpace) -> set[tuple[int, ...]]:
        """The networks evaluated so far, as `network_key`s."""
        return {network_key(space, row) for row in self.genomes}


def network_key(space: SearchSpace, genome: np.ndarray) -> tuple[int, ...]:
    """Genomes of one and the same network (they differ only in genes a shallower depth drops) share a key."""
    return tuple(int(g) for g in space.canonical(genome))


def distinct_networks(space: SearchSpace, genomes: np.ndarray, seen: set[tuple[int, ...]]) -> np.ndarray:
    """The canonical genomes of the first occurrence of each network not in `seen`, in order.

    Every proposal passes through here, so a budget is never spent twice on one network.
    """
    keep: dict[tuple[int, ...], None] = {}
    for row in np.asarray(genomes, dtype=np.int64).reshape(-1, space.n_genes):
        key = network_key(space, row)
        if key not in seen:
            keep.setdefault(key)
    return np.array(list(keep), dtype=np.int64).reshape(-1, space.n_genes)


class SearchAlgorithm(ABC):
    """A search algorithm is a pure function of (space, history, n, seed, iteration) -> n new genomes.

    No state survives between calls, so every iteration can run in a fresh process (a Snakemake
    checkpoint) and a killed run resumes exactly. Proposed genomes are unique, valid and not in history.
    """

    name: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        self.params = params

    @abstractmethod
    def propose(self, space: SearchSpace, history: History, n: int, seed: int, iteration: int) -> np.ndarray:
        """Return an (n, space.n_genes) int64 array of new genomes."""
