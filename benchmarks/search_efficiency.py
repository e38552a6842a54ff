"""Sample efficiency of random search, NSGA-II and LINAS at equal evaluation budgets, on test problems
with known Pareto fronts, through the same propose / History loop the workflow runs.

Each continuous variable of a pymoo test problem becomes one categorical gene of `--levels` values
(x = level / (levels - 1) between the variable's bounds), so the searches face a discrete space like a
super-network's. Hypervolume is normalized per problem with fixed bounds: the ideal point of the true front
and the worst objective values of 1000 random genomes drawn with a fixed seed (reference point 1.1).

    .venv/bin/python benchmarks/search_efficiency.py --budget 400 --population 20 --seeds 5

(LINAS: 5000 predicted evaluations per iteration with an inner population of 100, coarse predictor grids;
the workflow's defaults are 20000, the outer population and the published grids.)

writes OUT/search_efficiency.csv (algorithm, problem, seed, evaluations, hypervolume: after every
evaluation) and OUT/normalization.json, and prints hypervolume vs evaluations (mean +- std over seeds)
and the evaluations LINAS needs to reach NSGA-II's final hypervolume.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from pymoo.problems import get_problem

from simqnas.io import write_json_atomic, write_text_atomic
from simqnas.pareto import Normalization, hypervolume, hypervolume_progression
from simqnas.search import get_algorithm
from simqnas.search.base import History, Objective
from simqnas.space import SearchSpace

PROBLEMS: dict[str, Callable[[], object]] = {
    "zdt1": lambda: get_problem("zdt1"),
    "zdt2": lambda: get_problem("zdt2"),
    "dtlz2": lambda: get_problem("dtlz2", n_obj=2),
}
OBJECTIVES = (Objective("f1", maximize=False), Objective("f2", maximize=False))
MINIMIZE = [False, False]
# A coarse predictor grid (5 x 5 instead of 100 x 100): ~15x faster fits; the published grid is
# available with --published-grid.
COARSE_RIDGE_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
COARSE_SVR_CS = (1.0, 3.0, 10.0, 30.0, 100.0)
NORMALIZATION_SAMPLES = 1000


class DiscretizedProblem:
    """A pymoo test problem over a grid of `levels` values per variable, as a SearchSpace."""

    def __init__(self, name: str, levels: int) -> None:
        self.name = name
        self.problem = PROBLEMS[name]()
        self.levels = levels
        self.space = SearchSpace.from_dict(
            {"elastic": {"x": {"count": int(self.problem.n_var), "choices": list(range(levels))}}}
        )

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        x = self.problem.xl + genomes / (self.levels - 1) * (self.problem.xu - self.problem.xl)
        return np.asarray(self.problem.evaluate(x, return_values_of=["F"]), dtype=float)

    def normalization(self) -> Normalization:
        random_values = self.evaluate(self.space.sample(NORMALIZATION_SAMPLES, np.random.default_rng(0)))
        return Normalization.from_bounds(self.problem.pareto_front().min(axis=0), random_values.max(axis=0))


def run_search(
    problem: DiscretizedProblem, algorithm_name: str, params: dict, budget: int, population: int, seed: int
) -> History:
    """The workflow's loop: propose from the history, evaluate, append; until the budget is spent."""
    algorithm = get_algorithm(algorithm_name, **params)
    history = History.empty(problem.space.n_genes, OBJECTIVES)
    iteration = 0
    while len(history) < budget:
        n = min(population, budget - len(history))
        genomes = algorithm.propose(problem.space, history, n, seed, iteration)
        history = History(
            np.concatenate([history.genomes, genomes]),
            np.concatenate([history.values, problem.evaluate(genomes)]),
            OBJECTIVES,
        )
        iteration += 1
    return history


def evaluations_to_reach(progression: np.ndarray, target: float) -> int | None:
    reached = np.flatnonzero(progression >= target)
    return int(reached[0]) + 1 if len(reached) else None


def summary_table(frame: pd.DataFrame, population: int) -> str:
    """Hypervolume (mean +- std over seeds) at the end of each iteration, one column per algorithm."""
    at_iterations = frame[
        (frame["evaluations"] % population == 0) | (frame["evaluations"] == frame["evaluations"].max())
    ]
    stats = at_iterations.groupby(["problem", "evaluations", "algorithm"])["hypervolume"].agg(["mean", "std"])
    cells = stats.apply(lambda r: f"{r['mean']:.4f} +- {r['std']:.4f}", axis=1).unstack("algorithm")
    return cells.to_string()


def reach_table(frame: pd.DataFrame) -> str:
    """Per problem: evaluations LINAS needs to reach NSGA-II's final hypervolume of the same seed."""
    lines = []
    for problem, runs in frame.groupby("problem"):
        needed = []
        for _, run in runs.groupby("seed"):
            nsga2 = run[run["algorithm"] == "nsga2"].sort_values("evaluations")["hypervolume"].to_numpy()
            linas = run[run["algorithm"] == "linas"].sort_values("evaluations")["hypervolume"].to_numpy()
            needed.append(evaluations_to_reach(linas, nsga2[-1]))
        budget = int(runs["evaluations"].max())
        reached = [k for k in needed if k is not None]
        mean = f"{np.mean(reached):.0f}" if reached else "-"
        lines.append(
            f"{problem}: LINAS reaches NSGA-II's final HV (at {budget}) in {len(reached)}/{len(needed)} "
            f"seeds, after {mean} evaluations on average (per seed: {needed})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=400, help="real evaluations per run")
    parser.add_argument("--population", type=int, default=20, help="genomes proposed per iteration")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..SEEDS-1")
    parser.add_argument("--inner-evaluations", type=int, default=5000, help="LINAS predictor evaluations")
    parser.add_argument(
        "--inner-population",
        type=int,
        default=100,
        help="LINAS inner NSGA-II population (0: the outer population, as DyNAS-T)",
    )
    parser.add_argument("--levels", type=int, default=11, help="values per discretized variable")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated")
    parser.add_argument("--algorithms", default="random,nsga2,linas", help="comma-separated")
    parser.add_argument("--published-grid", action="store_true", help="LINAS predictors' full grids")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)

    linas_params: dict = {
        "inner_evaluations": args.inner_evaluations,
        "inner_population": args.inner_population or None,
    }
    if not args.published_grid:
        linas_params |= {"ridge_alphas": COARSE_RIDGE_ALPHAS, "svr_cs": COARSE_SVR_CS}
    params = {"random": {}, "nsga2": {}, "linas": linas_params}

    rows, normalizations = [], {}
    start = time.perf_counter()
    for name in args.problems.split(","):
        problem = DiscretizedProblem(name, args.levels)
        normalization = problem.normalization()
        true_front = hypervolume(problem.problem.pareto_front(), MINIMIZE, normalization)
        normalizations[name] = {**normalization.to_dict(), "true_front_hypervolume": true_front}
        print(f"{name}: {problem.space.n_genes} genes x {args.levels} levels, true-front HV {true_front:.4f}")
        for algorithm in args.algorithms.split(","):
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                history = run_search(
                    problem, algorithm, params[algorithm], args.budget, args.population, seed
                )
                progression = hypervolume_progression(history.values, MINIMIZE, normalization)
                rows += [
                    {
                        "algorithm": algorithm,
                        "problem": name,
                        "seed": seed,
                        "evaluations": k + 1,
                        "hypervolume": hv,
                    }
                    for k, hv in enumerate(progression)
                ]
                print(
                    f"  {algorithm} seed {seed}: HV {progression[-1]:.4f} ({time.perf_counter() - t0:.1f} s)"
                )

    frame = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "search_efficiency.csv", frame.to_csv(index=False))
    write_json_atomic(args.out / "normalization.json", normalizations)
    print()
    print(summary_table(frame, args.population))
    if {"nsga2", "linas"} <= set(frame["algorithm"]):
        print()
        print(reach_table(frame))
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
