"""Sample efficiency of the search algorithms at equal evaluation budgets, through the same propose / History
loop the workflow runs, next to two outside peers run natively (Optuna's NSGA-II sampler; Optuna's TPE is
the workflow's `tpe`).

Problems:

- `minilm-size`, `minilm-latency` (default): the embedded default's space, config/spaces/minilm.yaml (depth
  3-6, heads and FFN per layer, 38 per-Linear INT8/FP32 genes, the genes of layers a depth drops), with
  synthetic objectives shaped like the measured ones (README: smallest sub-network 81.8%, largest 85.4%;
  FP32 90.9 MB / 18.2 ms, all-INT8 58.8 MB / 8.5 ms). Accuracy: capacity of the active layers (heads, FFN)
  with diminishing returns, minus a per-Linear INT8 penalty (a few sensitive Linears, 0.5 pp each; the
  rest 0.4 pp together), read as a binomial draw on 500 sentences (standard error ~1.6 pp), fixed per
  network like a fixed validation set. Size: FP32 embeddings and norms (48.4 MB) plus each active Linear's
  weights at 1 (INT8) or 4 (FP32) bytes per parameter. Latency: a fixed part, attention per layer by heads,
  each Linear's MACs at FP32 or INT8 speed, a quantize/dequantize cost at every precision switch between
  consecutive Linears, and 1.5% multiplicative measurement noise, fixed per network.
- `zdt1`, `zdt2`, `dtlz2`: pymoo test problems, each variable a categorical gene of `--levels` values.

Hypervolume is normalized per problem with bounds that do not depend on the algorithms: for the MiniLM
problems the space's extremes (true accuracy of the smallest all-INT8 and the largest FP32 network, widened by
three standard errors; their size / latency), for the test problems the true front's ideal point and the worst
values of 1000 random genomes. `hypervolume` is on the measured values (what the workflow's Fig 2c shows),
`true_hypervolume` on the noise-free values of the same evaluated networks.

    nice -n 15 .venv/bin/python benchmarks/search_efficiency.py          # default: 85 s CPU, 1 core
    nice -n 15 .venv/bin/python benchmarks/search_efficiency.py --grid      # populations 4, 8, 12 x 200 evals

Algorithms: random, nsga2, linas (random proposals while a predictor orders held-out evaluations no better
than a constant), linas-nofallback (always searches its predictors, as DyNAS-T), linas-nsga2 (NSGA-II's step
as the fallback), tpe, optuna-nsga2 (NSGAIISampler, native
ask/tell, its first generation the shared random iteration 0; its duplicates cost evaluations as they do in
Optuna). LINAS: `--inner-evaluations` predicted evaluations per iteration, inner population 100, coarse
predictor grids (the workflow's defaults: 20000, the outer population, the published grids).

Writes OUT/search_efficiency.csv (algorithm, problem, population, seed, evaluations, hypervolume,
true_hypervolume: after every evaluation), OUT/search_efficiency_summary.csv (mean, std over seeds at the
reported budgets), OUT/search_efficiency_lead.csv (the budget where LINAS first leads each other
algorithm) and OUT/normalization.json, and prints the tables.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import CategoricalDistribution
from pymoo.problems import get_problem

from simqnas.io import write_json_atomic, write_text_atomic
from simqnas.pareto import Normalization, hypervolume_progression
from simqnas.search import get_algorithm
from simqnas.search.base import History, Objective, network_key
from simqnas.search.random import RandomSearch
from simqnas.space import SearchSpace

MINILM_SPACE = Path(__file__).resolve().parents[1] / "config" / "spaces" / "minilm.yaml"
# A coarse predictor grid (5 x 5 instead of 100 x 100): ~15x faster fits.
COARSE_RIDGE_ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
COARSE_SVR_CS = (1.0, 3.0, 10.0, 30.0, 100.0)
NORMALIZATION_SAMPLES = 1000
REPORTED_BUDGETS = (12, 24, 36, 48, 72, 96, 120, 150, 200)

optuna.logging.set_verbosity(optuna.logging.WARNING)


class MiniLMProblem:
    """Synthetic accuracy x size or accuracy x latency over the embedded default's space (module doc)."""

    HIDDEN, HEAD_DIM = 384, 32
    SMALLEST, LARGEST = 0.818, 0.854  # true accuracy of the smallest / largest FP32 sub-network
    VALIDATION_SENTENCES = 500
    OTHER_BYTES = 48.4e6  # FP32 embeddings, norms, biases outside the policy
    FIXED_MS, ATTENTION_MS, FP32_MS_PER_PARAM, INT8_SPEEDUP, SWITCH_MS = 1.8, 0.4, 14.0 / 10.6e6, 3.5, 0.04
    LATENCY_NOISE = 0.015

    def __init__(self, cost: str) -> None:
        self.name = f"minilm-{cost}"
        self.cost = cost
        self.space = SearchSpace.from_yaml(MINILM_SPACE)
        self.objectives = (Objective("accuracy", maximize=True), Objective(cost, maximize=False))
        self.maximize = [True, False]
        offsets = np.cumsum([0, *(p.count for p in self.space.elastic)])
        self.depth_gene, self.heads_genes, self.ffn_genes = 0, np.arange(1, 7), np.arange(7, 13)
        assert offsets.tolist() == [0, 1, 7, 13] and self.space.n_genes == 13 + 38
        # INT8 accuracy cost per Linear (fixed, the problem's own): 3 sensitive Linears at 0.5 pp, the other
        # 35 share 0.4 pp.
        rng = np.random.default_rng(12345)
        penalty = rng.dirichlet(np.ones(38)) * 0.004
        penalty[rng.choice(38, size=3, replace=False)] = 0.005
        self.int8_penalty = penalty

    def _linears(self, genomes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(n, 38) parameters per Linear, active mask, INT8 mask."""
        space = self.space
        choices = {p.name: np.asarray(p.choices) for p in space.elastic}
        depth = choices["num_layers"][genomes[:, self.depth_gene]]
        heads = choices["num_heads"][genomes[:, self.heads_genes]] * self.HEAD_DIM  # (n, 6) attention width
        ffn = choices["ffn_size"][genomes[:, self.ffn_genes]]
        d = self.HIDDEN
        per_layer = np.stack([d * heads, d * heads, d * heads, heads * d, d * ffn, ffn * d], axis=2)
        params = np.concatenate(
            [per_layer.reshape(len(genomes), 36), np.full((len(genomes), 2), [d * d, d * 2])], axis=1
        )
        active = np.concatenate(
            [np.repeat(np.arange(6)[None] < depth[:, None], 6, axis=1), np.ones((len(genomes), 2), bool)],
            axis=1,
        )
        int8 = genomes[:, 13:] == space.quantization.choices.index("int8")
        return params.astype(float), active, int8

    def true_values(self, genomes: np.ndarray) -> np.ndarray:
        genomes = self.space.canonical(genomes)
        choices = {p.name: np.asarray(p.choices) for p in self.space.elastic}
        depth = choices["num_layers"][genomes[:, self.depth_gene]]
        layers = np.arange(6)[None] < depth[:, None]
        heads = choices["num_heads"][genomes[:, self.heads_genes]] / 12
        ffn = choices["ffn_size"][genomes[:, self.ffn_genes]] / 1536
        capacity = ((0.35 * heads + 0.65 * ffn) * layers).sum(axis=1)
        params, active, int8 = self._linears(genomes)

        def saturation(c: np.ndarray | float) -> np.ndarray:
            return 1.0 - np.exp(-0.45 * np.asarray(c))

        low, high = saturation(3 * (0.35 * 0.5 + 0.65 / 3)), saturation(6.0)
        accuracy = self.SMALLEST + (self.LARGEST - self.SMALLEST) * (saturation(capacity) - low) / (
            high - low
        )
        accuracy -= (self.int8_penalty * (active & int8)).sum(axis=1)
        if self.cost == "size":
            cost = self.OTHER_BYTES + (params * active * np.where(int8, 1.0, 4.0)).sum(axis=1)
        else:
            linear = params * active * self.FP32_MS_PER_PARAM * np.where(int8, 1 / self.INT8_SPEEDUP, 1.0)
            # precision switches between consecutive Linears that both exist
            both = active[:, 1:] & active[:, :-1]
            switches = ((int8[:, 1:] != int8[:, :-1]) & both).sum(axis=1)
            attention = (self.ATTENTION_MS * (0.25 + 0.75 * heads) * layers).sum(axis=1)
            cost = self.FIXED_MS + attention + linear.sum(axis=1) + self.SWITCH_MS * switches
        return np.stack([accuracy, cost], axis=1)

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        """Measured values: accuracy on 500 sentences, latency with timing noise; fixed per network."""
        values = self.true_values(genomes)
        for i, genome in enumerate(genomes):
            rng = np.random.default_rng(np.random.SeedSequence(network_key(self.space, genome)))
            values[i, 0] = rng.binomial(self.VALIDATION_SENTENCES, values[i, 0]) / self.VALIDATION_SENTENCES
            if self.cost == "latency":
                values[i, 1] *= np.exp(self.LATENCY_NOISE * rng.standard_normal())
        return values

    def normalization(self) -> Normalization:
        quant = self.space.quantization
        int8, fp32 = quant.choices.index("int8"), quant.choices.index("fp32")
        smallest = np.zeros((1, self.space.n_genes), dtype=np.int64)
        smallest[0, 13:] = int8
        largest = (self.space.cardinalities - 1)[None].astype(np.int64)
        largest[0, 13:] = fp32
        (low_acc, low_cost), (high_acc, high_cost) = self.true_values(np.concatenate([smallest, largest]))
        margin = 3 * np.sqrt(0.85 * 0.15 / self.VALIDATION_SENTENCES)
        return Normalization.from_bounds([low_acc - margin, low_cost], [high_acc + margin, high_cost])


class DiscretizedProblem:
    """A pymoo test problem over a grid of `levels` values per variable, as a SearchSpace (noise-free)."""

    FACTORIES: ClassVar[dict[str, Callable[[], object]]] = {
        "zdt1": lambda: get_problem("zdt1"),
        "zdt2": lambda: get_problem("zdt2"),
        "dtlz2": lambda: get_problem("dtlz2", n_obj=2),
    }

    def __init__(self, name: str, levels: int) -> None:
        self.name = name
        self.problem = self.FACTORIES[name]()
        self.levels = levels
        self.space = SearchSpace.from_dict(
            {"elastic": {"x": {"count": int(self.problem.n_var), "choices": list(range(levels))}}}
        )
        self.objectives = (Objective("f1", maximize=False), Objective("f2", maximize=False))
        self.maximize = [False, False]

    def true_values(self, genomes: np.ndarray) -> np.ndarray:
        x = self.problem.xl + genomes / (self.levels - 1) * (self.problem.xu - self.problem.xl)
        return np.asarray(self.problem.evaluate(x, return_values_of=["F"]), dtype=float)

    evaluate = true_values

    def normalization(self) -> Normalization:
        random_values = self.evaluate(self.space.sample(NORMALIZATION_SAMPLES, np.random.default_rng(0)))
        return Normalization.from_bounds(self.problem.pareto_front().min(axis=0), random_values.max(axis=0))


Problem = MiniLMProblem | DiscretizedProblem


def make_problem(name: str, levels: int) -> Problem:
    if name.startswith("minilm-"):
        return MiniLMProblem(name.removeprefix("minilm-"))
    return DiscretizedProblem(name, levels)


def run_search(
    problem: Problem, algorithm_name: str, params: dict, budget: int, population: int, seed: int
) -> History:
    """The workflow's loop: propose from the history, evaluate, append; until the budget is spent."""
    algorithm = get_algorithm(algorithm_name, **params)
    history = History.empty(problem.space.n_genes, problem.objectives)
    iteration = 0
    while len(history) < budget:
        n = min(population, budget - len(history))
        genomes = algorithm.propose(problem.space, history, n, seed, iteration)
        history = History(
            np.concatenate([history.genomes, genomes]),
            np.concatenate([history.values, problem.evaluate(genomes)]),
            problem.objectives,
        )
        iteration += 1
    return history


def run_optuna_nsga2(problem: Problem, budget: int, population: int, seed: int) -> History:
    """Optuna's NSGAIISampler as Optuna runs it (one study, ask / tell, a generation per population), its
    first generation the shared random iteration 0. Every ask is evaluated, duplicates included."""
    space = problem.space
    names = [gene.label for gene in space.genes]
    distributions = {
        name: CategoricalDistribution(tuple(range(int(c))))
        for name, c in zip(names, space.cardinalities, strict=True)
    }
    sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    study = optuna.create_study(
        directions=["maximize" if o.maximize else "minimize" for o in problem.objectives], sampler=sampler
    )
    empty = History.empty(space.n_genes, problem.objectives)
    for genome in RandomSearch().propose(space, empty, min(population, budget), seed, 0):
        study.enqueue_trial({name: int(g) for name, g in zip(names, genome, strict=True)})
    genomes, values = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while len(genomes) < budget:
            trials = [study.ask(distributions) for _ in range(min(population, budget - len(genomes)))]
            batch = space.canonical(np.array([[t.params[name] for name in names] for t in trials]))
            measured = problem.evaluate(batch)
            for trial, value in zip(trials, measured, strict=True):
                study.tell(trial, [float(v) for v in value])
            genomes += list(batch)
            values += list(measured)
    return History(np.array(genomes, dtype=np.int64), np.array(values), problem.objectives)


def predictor_quality(
    problem: Problem, linas_params: dict, sizes: tuple[int, ...], seeds: int, test: int = 500
) -> pd.DataFrame:
    """How well LINAS's predictors rank unseen networks after n random evaluations: Kendall's tau between
    the predicted and the true (noise-free) value on `test` fresh random networks, per objective, and
    whether LINAS would search them (every predictor beats the constant in cross-validation)."""
    from scipy.stats import kendalltau

    from simqnas.search.linas import LINAS
    from simqnas.search.random import sample_unseen

    linas = LINAS(**linas_params)
    rows = []
    for seed in range(seeds):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 99]))
        pool = sample_unseen(problem.space, max(sizes) + test, rng, set())
        train, held_out = pool[: max(sizes)], pool[max(sizes) :]
        truth = problem.true_values(held_out)
        for n in sizes:
            history = History(train[:n], problem.evaluate(train[:n]), problem.objectives)
            predictors = linas.fit_predictors(problem.space, history, seed)
            predicted = LINAS.predict(problem.space, predictors, held_out)
            row = {"problem": problem.name, "seed": seed, "samples": n}
            for j, objective in enumerate(problem.objectives):
                row[f"{objective.name}_tau"] = kendalltau(predicted[:, j], truth[:, j]).statistic
                row[f"{objective.name}_beats_constant"] = predictors[j].beats_constant
            rows.append(row)
    return pd.DataFrame(rows)


def first_lead(linas: np.ndarray, other: np.ndarray, budgets: np.ndarray) -> tuple[int | None, int | None]:
    """(first budget where LINAS's mean is ahead, first budget from which it stays ahead) or None."""
    ahead = linas > other
    first = int(budgets[np.argmax(ahead)]) if ahead.any() else None
    behind = np.flatnonzero(~ahead)
    if not len(behind):
        return first, int(budgets[0])
    stays = int(budgets[behind[-1] + 1]) if behind[-1] + 1 < len(budgets) else None
    return first, stays


def summary(frame: pd.DataFrame, budgets: tuple[int, ...]) -> pd.DataFrame:
    """Mean and std over seeds of both hypervolumes at the reported budgets (and each run's last)."""
    last = frame.groupby(["problem", "population"])["evaluations"].transform("max")
    at = frame[frame["evaluations"].isin(budgets) | (frame["evaluations"] == last)]
    return (
        at.groupby(["problem", "population", "evaluations", "algorithm"])[["hypervolume", "true_hypervolume"]]
        .agg(["mean", "std"])
        .pipe(lambda s: s.set_axis([f"{a}_{b}" for a, b in s.columns], axis=1))
        .reset_index()
    )


def lead_table(frame: pd.DataFrame, column: str = "hypervolume") -> pd.DataFrame:
    """Per problem, population and other algorithm: the budget (an iteration's end) where LINAS's mean
    hypervolume first exceeds the other's, and the budget from which it stays ahead."""
    rows = []
    for (problem, population), runs in frame.groupby(["problem", "population"]):
        ends = runs[runs["evaluations"] % population == 0]
        means = ends.groupby(["algorithm", "evaluations"])[column].mean().unstack("evaluations")
        budgets = means.columns.to_numpy()
        for other in means.index.drop("linas"):
            first, stays = first_lead(means.loc["linas"].to_numpy(), means.loc[other].to_numpy(), budgets)
            rows.append(
                {
                    "problem": problem,
                    "population": population,
                    "versus": other,
                    "first_leads_at": first,
                    "leads_from": stays,
                    "linas_final": means.loc["linas"].iloc[-1],
                    "other_final": means.loc[other].iloc[-1],
                }
            )
    return pd.DataFrame(rows)


def format_summary(table: pd.DataFrame, column: str) -> str:
    """One column per algorithm: `column`'s mean +- std over seeds."""
    cells = table.assign(
        hv=table[f"{column}_mean"].map("{:.3f}".format) + " +- " + table[f"{column}_std"].map("{:.3f}".format)
    )
    return cells.pivot(
        index=["problem", "population", "evaluations"], columns="algorithm", values="hv"
    ).to_string()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=120, help="real evaluations per run")
    parser.add_argument("--populations", default="8", help="comma-separated genomes proposed per iteration")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..SEEDS-1")
    parser.add_argument(
        "--grid", action="store_true", help="the heavy grid: --populations 4,8,12 --budget 200"
    )
    parser.add_argument("--inner-evaluations", type=int, default=2000, help="LINAS predictor evaluations")
    parser.add_argument(
        "--inner-population",
        type=int,
        default=100,
        help="LINAS inner NSGA-II population (0: the outer population, as DyNAS-T)",
    )
    parser.add_argument("--levels", type=int, default=11, help="values per discretized test-problem variable")
    parser.add_argument("--problems", default="minilm-size,minilm-latency", help="comma-separated")
    parser.add_argument(
        "--algorithms",
        default="random,nsga2,linas,tpe,optuna-nsga2",
        help="comma-separated; also linas-nofallback, linas-nsga2",
    )
    parser.add_argument("--published-grid", action="store_true", help="LINAS predictors' full grids")
    parser.add_argument(
        "--predictor-quality",
        action="store_true",
        help="instead of searching: how well LINAS's predictors rank unseen networks after 8-200 samples",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    if args.grid:
        args.populations, args.budget = "4,8,12", 200

    linas: dict = {
        "inner_evaluations": args.inner_evaluations,
        "inner_population": args.inner_population or None,
    }
    if not args.published_grid:
        linas |= {"ridge_alphas": COARSE_RIDGE_ALPHAS, "svr_cs": COARSE_SVR_CS}
    variants = {
        "random": ("random", {}),
        "nsga2": ("nsga2", {}),
        "linas": ("linas", linas),
        "linas-nofallback": ("linas", {**linas, "fallback": "none"}),
        "linas-nsga2": ("linas", {**linas, "fallback": "nsga2"}),
        "tpe": ("tpe", {}),
    }

    if args.predictor_quality:
        quality = pd.concat(
            [
                predictor_quality(
                    make_problem(name, args.levels), linas, (8, 16, 24, 48, 96, 200), args.seeds
                )
                for name in args.problems.split(",")
            ]
        )
        args.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out / "predictor_quality.csv", quality.to_csv(index=False))
        print(quality.drop(columns="seed").groupby(["problem", "samples"]).mean().round(3).to_string())
        return

    rows, normalizations = [], {}
    start = time.perf_counter()
    for name in args.problems.split(","):
        problem = make_problem(name, args.levels)
        normalization = problem.normalization()
        normalizations[name] = normalization.to_dict()
        print(f"{name}: {problem.space.n_genes} genes, normalization {normalization.to_dict()}")
        for population in (int(p) for p in args.populations.split(",")):
            for algorithm in args.algorithms.split(","):
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    if algorithm == "optuna-nsga2":
                        history = run_optuna_nsga2(problem, args.budget, population, seed)
                    else:
                        base, params = variants[algorithm]
                        history = run_search(problem, base, params, args.budget, population, seed)
                    measured = hypervolume_progression(history.values, problem.maximize, normalization)
                    true = hypervolume_progression(
                        problem.true_values(history.genomes), problem.maximize, normalization
                    )
                    rows += [
                        {
                            "algorithm": algorithm,
                            "problem": name,
                            "population": population,
                            "seed": seed,
                            "evaluations": k + 1,
                            "hypervolume": hv,
                            "true_hypervolume": true[k],
                        }
                        for k, hv in enumerate(measured)
                    ]
                    print(
                        f"  pop {population} {algorithm} seed {seed}: HV {measured[-1]:.4f} "
                        f"(true {true[-1]:.4f}, {time.perf_counter() - t0:.1f} s)",
                        flush=True,
                    )

    frame = pd.DataFrame(rows)
    table = summary(frame, REPORTED_BUDGETS)
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "search_efficiency.csv", frame.to_csv(index=False))
    write_text_atomic(args.out / "search_efficiency_summary.csv", table.to_csv(index=False))
    write_json_atomic(args.out / "normalization.json", normalizations)
    for column, what in (("hypervolume", "measured values"), ("true_hypervolume", "noise-free values")):
        print(f"\n{column} ({what} of the evaluated networks), mean +- std over {args.seeds} seeds")
        print(format_summary(table, column))
    if "linas" in set(frame["algorithm"]) and frame["algorithm"].nunique() > 1:
        lead = pd.concat([lead_table(frame, c).assign(on=c) for c in ("hypervolume", "true_hypervolume")])
        write_text_atomic(args.out / "search_efficiency_lead.csv", lead.to_csv(index=False))
        print("\nwhere LINAS's mean hypervolume first leads (and stays ahead from), per other algorithm")
        print(lead.to_string(index=False))
    print(f"\nwall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
