"""Optuna's multi-objective TPE, replayed from the history into a fresh in-memory study at every iteration."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.samplers import TPESampler
from optuna.trial import TrialState, create_trial

from simqnas.search.base import History, SearchAlgorithm, network_key
from simqnas.search.random import RandomSearch, iteration_rng, iteration_seed, sample_unseen

if TYPE_CHECKING:
    from simqnas.space import SearchSpace

# Asks per proposed genome before the rest is filled with random unseen genomes (TPE re-proposes a network
# already evaluated only rarely, except in a nearly exhausted space).
_ASKS_PER_GENOME = 10

optuna.logging.set_verbosity(optuna.logging.WARNING)


class TPESearch(SearchAlgorithm):
    """Optuna's TPESampler (multi-objective), as a pure step: nothing survives between calls.

    Iteration 0 is `RandomSearch`'s iteration 0 (shared across algorithms). Afterwards every evaluation so
    far is added, in order, to a fresh in-memory study as a completed trial: one categorical parameter per
    gene (its choice index), only the genes the network has (a shallower depth drops the others, so TPE
    models them conditionally, on the trials that have them), and the measured values with each
    objective's direction. The sampler, seeded from (seed, iteration), is then asked for trials one by one;
    with Optuna's constant liar the pending ones steer the later asks apart. An ask whose network was
    already evaluated or proposed is marked failed and asked again; if `_ASKS_PER_GENOME` x n asks leave
    fewer than n networks, random unseen genomes fill the rest.

    `n_startup_trials` is TPE's random start (Optuna's default 10); it defaults to 0 here because
    iteration 0 already is a random start. `multivariate` (default) is Optuna's multivariate TPE with
    `group` (which models the depth-dependent genes per group of trials that have them); False is the
    independent TPE, Optuna's multi-objective default, which on the MiniLM space re-proposes the same
    network on most asks (4-5 asks per new network) and is 13x slower (benchmarks/search_efficiency.py).
    """

    name = "tpe"

    def __init__(self, n_startup_trials: int = 0, multivariate: bool = True) -> None:
        if n_startup_trials < 0:
            raise ValueError(f"tpe: n_startup_trials {n_startup_trials} must be >= 0")
        super().__init__(n_startup_trials=n_startup_trials, multivariate=multivariate)

    def propose(self, space: SearchSpace, history: History, n: int, seed: int, iteration: int) -> np.ndarray:
        if iteration == 0 or len(history) == 0:
            return RandomSearch().propose(space, history, n, seed, iteration)
        names = [gene.label for gene in space.genes]
        distributions = {
            name: CategoricalDistribution(tuple(range(int(c))))
            for name, c in zip(names, space.cardinalities, strict=True)
        }
        taken = history.seen(space)
        chosen: list[np.ndarray] = []
        with warnings.catch_warnings():
            # constant liar and group are flagged experimental on construction and on every ask
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                directions=["maximize" if o.maximize else "minimize" for o in history.objectives],
                sampler=TPESampler(
                    n_startup_trials=self.params["n_startup_trials"],
                    multivariate=self.params["multivariate"],
                    group=self.params["multivariate"],
                    constant_liar=True,
                    seed=iteration_seed(seed, iteration),
                ),
            )
            for genome, active, values in zip(
                history.genomes, space.active_mask(history.genomes), history.values, strict=True
            ):
                params = {names[i]: int(genome[i]) for i in np.flatnonzero(active)}
                study.add_trial(
                    create_trial(
                        params=params,
                        distributions={name: distributions[name] for name in params},
                        values=[float(v) for v in values],
                    )
                )
            for _ in range(_ASKS_PER_GENOME * n):
                if len(chosen) == n:
                    break
                trial = study.ask(distributions)
                genome = space.canonical(np.array([trial.params[name] for name in names], dtype=np.int64))
                key = network_key(space, genome)
                if key in taken:
                    study.tell(trial, state=TrialState.FAIL)
                    continue
                taken.add(key)
                chosen.append(genome)
        genomes = np.array(chosen, dtype=np.int64).reshape(-1, space.n_genes)
        if len(genomes) < n:
            fill = sample_unseen(space, n - len(genomes), iteration_rng(seed, iteration), taken)
            genomes = np.concatenate([genomes, fill])
        return genomes
