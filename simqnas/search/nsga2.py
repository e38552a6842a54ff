"""NSGA-II on real evaluations: the baseline LINAS is compared with (same population and budget)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pymoo.core.population import Population

from simqnas.search.base import History, SearchAlgorithm, distinct_networks
from simqnas.search.genetic import ExcludeEvaluated, GenomeProblem, genomes_of, integer_nsga2
from simqnas.search.random import RandomSearch, iteration_rng, iteration_seed, sample_unseen

if TYPE_CHECKING:
    from simqnas.space import SearchSpace


class NSGA2Search(SearchAlgorithm):
    """One NSGA-II generation per iteration, rebuilt from the history (nothing survives between calls).

    Iteration 0 is `RandomSearch`'s iteration 0 (shared across algorithms). Afterwards the parents are the
    n survivors of RankAndCrowding over every evaluation so far (NSGA-II's elitist (mu + lambda) survival
    of parents plus offspring, since the previous parents are themselves survivors of the earlier
    evaluations); offspring come from binary tournament, SBX and polynomial mutation, with duplicates and
    already-evaluated genomes rejected. If mating cannot produce n new genomes (a nearly exhausted space),
    random unseen genomes fill the rest.
    """

    name = "nsga2"

    def __init__(self) -> None:
        super().__init__()

    def propose(self, space: SearchSpace, history: History, n: int, seed: int, iteration: int) -> np.ndarray:
        if iteration == 0 or len(history) == 0:
            return RandomSearch().propose(space, history, n, seed, iteration)
        seen = history.seen(space)
        problem = GenomeProblem(space, len(history.objectives))
        algorithm = integer_nsga2(pop_size=n, eliminate_duplicates=ExcludeEvaluated(space, seen))
        algorithm.setup(problem, seed=iteration_seed(seed, iteration))

        evaluated = Population.new(X=history.genomes.astype(float), F=history.minimization_values())
        parents = algorithm.survival.do(
            problem, evaluated, n_survive=n, algorithm=algorithm, random_state=algorithm.random_state
        )
        offspring = algorithm.mating.do(
            problem, parents, n, algorithm=algorithm, random_state=algorithm.random_state
        )
        genomes = distinct_networks(space, genomes_of(offspring), seen)[:n]
        if len(genomes) < n:
            taken = seen | {tuple(int(g) for g in row) for row in genomes}
            fill = sample_unseen(space, n - len(genomes), iteration_rng(seed, iteration), taken)
            genomes = np.concatenate([genomes, fill])
        return genomes
