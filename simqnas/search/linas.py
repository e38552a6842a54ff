"""LINAS: NSGA-II on lightly trained predictors, re-fitted on every real evaluation at every iteration."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pymoo.core.duplicate import DefaultDuplicateElimination
from pymoo.core.population import Population
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.optimize import minimize

from simqnas.search.base import History, SearchAlgorithm, network_key
from simqnas.search.genetic import GenomeProblem, genomes_of, integer_nsga2
from simqnas.search.nsga2 import NSGA2Search
from simqnas.search.predictors import (
    DEFAULT_FOLDS,
    PUBLISHED_RIDGE_ALPHAS,
    PUBLISHED_SVR_CS,
    Predictor,
    fit_predictor,
)
from simqnas.search.random import (
    RandomSearch,
    all_genomes,
    iteration_rng,
    iteration_seed,
    sample_unseen,
    space_size,
)

if TYPE_CHECKING:
    from simqnas.space import SearchSpace

DEFAULT_INNER_EVALUATIONS = 20_000
Fallback = Literal["nsga2", "random", "none"]
FALLBACKS: dict[str, type[NSGA2Search] | type[RandomSearch]] = {"nsga2": NSGA2Search, "random": RandomSearch}


def features(space: SearchSpace, genomes: np.ndarray) -> np.ndarray:
    """Predictor features of genomes: the one-hot of every gene the network has; the genes a shallower depth
    drops are all-zero. A function of the network alone: every genome of one network gets the same row."""
    mask = np.repeat(space.active_mask(genomes), space.cardinalities, axis=-1)
    return space.one_hot(space.canonical(genomes)) * mask


class LINAS(SearchAlgorithm):
    """Lightweight Iterative NAS (Cummings et al. 2022), as implemented in DyNAS-T.

    Iteration 0 is `RandomSearch`'s iteration 0 (shared across algorithms). Afterwards: fit one predictor
    per objective on all evaluations so far (`features`: one-hot of every gene the network has;
    `fit_predictor`), run pymoo's NSGA-II on the predictors alone for `inner_evaluations` predicted
    evaluations with population `inner_population` (default n), and propose its final population, minus
    genomes already evaluated and duplicates. If that leaves fewer than n, the rest are the best other
    genomes the inner search visited (RankAndCrowding on predicted values), then random unseen genomes; if
    the final population is larger than n, RankAndCrowding picks n of it. A space no larger than
    `inner_evaluations` is predicted exhaustively instead, and its best unseen genomes (RankAndCrowding)
    proposed. Every genome is predicted as the network it describes (`features`), so genes a shallower
    depth drops change no prediction.

    Too few evaluations: while any objective's predictor orders held-out evaluations no better than a
    constant (`Predictor.beats_constant`: cross-validated Kendall tau <= 0), a search on the predictors
    would follow noise, and the iteration proposes `fallback`'s step instead: "random" (default), "nsga2"
    (NSGA-II's offspring of the best evaluations so far) or "none" (search on the predictors anyway, as
    DyNAS-T does). Random wins on the MiniLM-shaped benchmark (benchmarks/search_efficiency.py, 5 seeds,
    population 8, noise-free hypervolume of the evaluated networks after 48 / 120 evaluations, accuracy x
    latency): random 0.684 / 0.719, none 0.669 / 0.706, nsga2 0.656 / 0.707; new random networks keep the
    predictors' training set spread over the space, where NSGA-II's offspring crowd around a few parents.

    `ridge_alphas`, `svr_cs` and `cv_folds` set the predictors' grid search (default: the published grids,
    about 3-4 s per objective and iteration at 200 samples x 400 features).
    """

    name = "linas"

    def __init__(
        self,
        inner_evaluations: int = DEFAULT_INNER_EVALUATIONS,
        inner_population: int | None = None,
        ridge_alphas: Sequence[float] = PUBLISHED_RIDGE_ALPHAS,
        svr_cs: Sequence[float] = PUBLISHED_SVR_CS,
        cv_folds: int = DEFAULT_FOLDS,
        fallback: Fallback = "random",
    ) -> None:
        if inner_evaluations < 1 or (inner_population is not None and inner_population < 2):
            raise ValueError(
                f"linas: inner_evaluations {inner_evaluations} must be >= 1 and inner_population "
                f"{inner_population} >= 2"
            )
        if fallback not in (*FALLBACKS, "none"):
            raise ValueError(f"linas: fallback {fallback!r} must be one of nsga2, random, none")
        super().__init__(
            inner_evaluations=inner_evaluations,
            inner_population=inner_population,
            ridge_alphas=tuple(ridge_alphas),
            svr_cs=tuple(svr_cs),
            cv_folds=cv_folds,
            fallback=fallback,
        )

    def fit_predictors(self, space: SearchSpace, history: History, seed: int) -> list[Predictor]:
        """One predictor per objective, on raw values (MAPE needs the measured, not negated, labels)."""
        rows = features(space, history.genomes)
        return [
            fit_predictor(
                rows,
                history.values[:, j],
                seed,
                ridge_alphas=self.params["ridge_alphas"],
                svr_cs=self.params["svr_cs"],
                folds=self.params["cv_folds"],
            )
            for j in range(len(history.objectives))
        ]

    @staticmethod
    def predict(space: SearchSpace, predictors: Sequence[Predictor], genomes: np.ndarray) -> np.ndarray:
        """(n, n_objectives) predicted values of genomes, in the objectives' own units."""
        rows = features(space, genomes)
        return np.stack([p.predict(rows) for p in predictors], axis=1)

    def propose(self, space: SearchSpace, history: History, n: int, seed: int, iteration: int) -> np.ndarray:
        if iteration == 0 or len(history) == 0:
            return RandomSearch().propose(space, history, n, seed, iteration)
        int_seed = iteration_seed(seed, iteration)
        predictors = self.fit_predictors(space, history, int_seed)
        fallback = self.params["fallback"]
        if fallback != "none" and not all(p.beats_constant for p in predictors):
            return FALLBACKS[fallback]().propose(space, history, n, seed, iteration)
        signs = np.array([-1.0 if o.maximize else 1.0 for o in history.objectives])
        # Every genome the inner search evaluates, with its predicted values: the pool for topping up.
        visited: list[tuple[np.ndarray, np.ndarray]] = []

        def predicted(genomes: np.ndarray) -> np.ndarray:
            values = self.predict(space, predictors, genomes) * signs
            visited.append((genomes, values))
            return values

        problem = GenomeProblem(space, len(predictors), evaluate=predicted)
        seen = history.seen(space)
        if space_size(space) <= self.params["inner_evaluations"]:
            # The inner budget covers the whole space: predict all of it instead of searching.
            every = all_genomes(space)
            return _best_unseen(space, problem, every, predicted(every), n, seen, int_seed)
        inner = integer_nsga2(
            pop_size=self.params["inner_population"] or n, eliminate_duplicates=DefaultDuplicateElimination()
        )
        final = minimize(problem, inner, ("n_eval", self.params["inner_evaluations"]), seed=int_seed).pop
        final_values = np.asarray(final.get("F"), dtype=float)
        chosen = _best_unseen(space, problem, genomes_of(final), final_values, n, seen, int_seed)
        taken = seen | {tuple(int(g) for g in row) for row in chosen}
        if len(chosen) < n:
            every, every_values = (np.concatenate(parts) for parts in zip(*visited, strict=True))
            extra = _best_unseen(space, problem, every, every_values, n - len(chosen), taken, int_seed)
            chosen = np.concatenate([chosen, extra])
            taken |= {tuple(int(g) for g in row) for row in extra}
        if len(chosen) < n:
            fill = sample_unseen(space, n - len(chosen), iteration_rng(seed, iteration), taken)
            chosen = np.concatenate([chosen, fill])
        return chosen


def _best_unseen(
    space: SearchSpace,
    problem: GenomeProblem,
    genomes: np.ndarray,
    values: np.ndarray,
    n: int,
    seen: set[tuple[int, ...]],
    seed: int,
) -> np.ndarray:
    """Up to n distinct networks not in `seen`, chosen by RankAndCrowding on their (predicted) values."""
    keep: dict[tuple[int, ...], int] = {}
    for i, row in enumerate(genomes):
        key = network_key(space, row)
        if key not in seen and key not in keep:
            keep[key] = i
    index = np.fromiter(keep.values(), dtype=np.int64, count=len(keep))
    genomes = space.canonical(genomes)
    if len(index) <= n:
        return genomes[index].reshape(-1, problem.n_var)
    pop = Population.new(X=genomes[index].astype(float), F=values[index])
    survivors = RankAndCrowding().do(problem, pop, n_survive=n, random_state=np.random.default_rng(seed))
    return genomes_of(survivors)
