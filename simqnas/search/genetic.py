"""pymoo plumbing shared by NSGA-II and LINAS: integer genomes as a pymoo problem, NSGA-II with integer
operators, and duplicate elimination that also rejects genomes already evaluated."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.duplicate import DefaultDuplicateElimination
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding

from simqnas.search.base import network_key

if TYPE_CHECKING:
    from simqnas.space import SearchSpace

# SBX as in pymoo's NSGA2 and DyNAS-T. Polynomial mutation with pymoo's integer recipe (eta 3) rather than
# the real-valued default (eta 20): after rounding, eta 20 never changes a binary gene (INT8/FP32) and
# changes a 3-choice gene 0.2% of the times it mutates it; eta 3 changes them 3% and 20% of the times
# (measured), and NSGA-II on the discretized benchmarks stagnates less (benchmarks/search_efficiency.py).
CROSSOVER_PROB = 0.9
CROSSOVER_ETA = 15.0
MUTATION_ETA = 3.0


class GenomeProblem(Problem):
    """Genomes as pymoo decision vectors: gene i is an integer in [0, cardinality_i - 1].

    `evaluate` maps an (n, n_genes) int64 array to (n, n_obj) values to minimize; without it the problem
    only describes the bounds (for operators working on real evaluations, which pymoo never evaluates).
    """

    def __init__(
        self, space: SearchSpace, n_obj: int, evaluate: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        super().__init__(
            n_var=space.n_genes,
            n_obj=n_obj,
            xl=np.zeros(space.n_genes),
            xu=np.asarray(space.cardinalities, dtype=float) - 1,
            vtype=int,
        )
        self.evaluate_genomes = evaluate

    def _evaluate(self, x: np.ndarray, out: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if self.evaluate_genomes is None:
            raise RuntimeError("this GenomeProblem has no objective function")
        out["F"] = self.evaluate_genomes(np.asarray(x).astype(np.int64))


class ExcludeEvaluated(DefaultDuplicateElimination):
    """pymoo's duplicate elimination, plus: a genome of a network already evaluated counts as a duplicate."""

    def __init__(self, space: SearchSpace, evaluated: set[tuple[int, ...]]) -> None:
        super().__init__()
        self.space = space
        self.evaluated = evaluated

    def _do(self, pop: Population, other: Population | None, is_duplicate: np.ndarray) -> np.ndarray:
        is_duplicate = super()._do(pop, other, is_duplicate)
        if other is None:
            for i, x in enumerate(pop.get("X")):
                if network_key(self.space, np.rint(x).astype(np.int64)) in self.evaluated:
                    is_duplicate[i] = True
        return is_duplicate


def integer_nsga2(pop_size: int, eliminate_duplicates: DefaultDuplicateElimination) -> NSGA2:
    """pymoo's NSGA-II (binary tournament, RankAndCrowding survival) with SBX and polynomial mutation on
    integer genes: pymoo's recipe for integer variables (operate on floats, round back)."""
    return NSGA2(
        pop_size=pop_size,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=CROSSOVER_PROB, eta=CROSSOVER_ETA, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=MUTATION_ETA, vtype=float, repair=RoundingRepair()),
        survival=RankAndCrowding(),
        eliminate_duplicates=eliminate_duplicates,
    )


def genomes_of(pop: Population) -> np.ndarray:
    return np.rint(np.asarray(pop.get("X"), dtype=float)).astype(np.int64)
