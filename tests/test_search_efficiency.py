"""The search-efficiency benchmark at a tiny size: it runs, writes the tables it promises, and its
MiniLM-shaped problem behaves like the measured network it imitates."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "search_efficiency.py"
ALGORITHMS = ["random", "nsga2", "linas", "linas-nofallback", "tpe", "optuna-nsga2"]


@pytest.fixture(scope="module")
def benchmark():
    spec = importlib.util.spec_from_file_location("search_efficiency", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_writes_hypervolume_after_every_evaluation(benchmark, tmp_path, capsys):
    arguments = "--budget 16 --populations 4,8 --seeds 2 --problems minilm-latency --inner-evaluations 200"
    benchmark.main(
        [
            *arguments.split(),
            "--inner-population",
            "20",
            "--algorithms",
            ",".join(ALGORITHMS),
            "--out",
            str(tmp_path),
        ]
    )
    frame = pd.read_csv(tmp_path / "search_efficiency.csv")
    assert list(frame.columns) == [
        "algorithm",
        "problem",
        "population",
        "seed",
        "evaluations",
        "hypervolume",
        "true_hypervolume",
    ]
    assert len(frame) == len(ALGORITHMS) * 2 * 2 * 16
    # iteration 0 is shared, Optuna's NSGA-II included: one hypervolume per seed after the first population
    first = frame[frame["evaluations"] == frame["population"]].groupby(["population", "seed"])
    assert (first["hypervolume"].nunique() == 1).all()
    lead = pd.read_csv(tmp_path / "search_efficiency_lead.csv")
    assert sorted(lead["versus"].unique()) == sorted(set(ALGORITHMS) - {"linas"})
    summary = pd.read_csv(tmp_path / "search_efficiency_summary.csv")
    assert {"hypervolume_mean", "hypervolume_std", "true_hypervolume_mean"} <= set(summary.columns)
    assert (tmp_path / "normalization.json").exists()
    assert "where LINAS's mean hypervolume first leads" in capsys.readouterr().out


@pytest.mark.parametrize("cost", ["size", "latency"])
def test_minilm_problem_matches_the_measured_extremes(benchmark, cost):
    problem = benchmark.MiniLMProblem(cost)
    space = problem.space
    int8, fp32 = space.quantization.choices.index("int8"), space.quantization.choices.index("fp32")
    largest = (space.cardinalities - 1)[None].astype(np.int64)
    largest[0, 13:] = fp32
    all_int8 = largest.copy()
    all_int8[0, 13:] = int8
    (acc_fp32, cost_fp32), (acc_int8, cost_int8) = problem.true_values(np.concatenate([largest, all_int8]))
    assert acc_fp32 == pytest.approx(0.854)
    assert 0.0 < acc_fp32 - acc_int8 < 0.03
    measured = {"size": (90.9e6, 58.8e6), "latency": (18.2, 8.5)}[cost]
    assert (cost_fp32, cost_int8) == pytest.approx(measured, rel=0.03)


def test_minilm_noise_is_binomial_and_fixed_per_network(benchmark):
    problem = benchmark.MiniLMProblem("latency")
    genomes = problem.space.canonical(problem.space.sample(400, np.random.default_rng(0)))
    true, measured = problem.true_values(genomes), problem.evaluate(genomes)
    assert np.std(measured[:, 0] - true[:, 0]) == pytest.approx(np.sqrt(0.84 * 0.16 / 500), rel=0.15)
    assert np.array_equal(measured, problem.evaluate(genomes))
    # a genome of the same network (a dropped gene changed) measures the same
    shallow = genomes[problem.space.active_mask(genomes).sum(axis=1) < problem.space.n_genes][:1].copy()
    dropped = np.flatnonzero(~problem.space.active_mask(shallow)[0])[0]
    other = shallow.copy()
    other[0, dropped] = problem.space.cardinalities[dropped] - 1
    assert np.array_equal(problem.evaluate(shallow), problem.evaluate(other))


def test_first_lead_and_the_budget_from_which_linas_stays_ahead(benchmark):
    budgets = np.array([8, 16, 24, 32])
    other = np.array([0.5, 0.5, 0.5, 0.5])
    assert benchmark.first_lead(np.array([0.4, 0.6, 0.4, 0.6]), other, budgets) == (16, 32)
    assert benchmark.first_lead(np.array([0.6, 0.6, 0.6, 0.6]), other, budgets) == (8, 8)
    assert benchmark.first_lead(np.array([0.6, 0.4, 0.4, 0.4]), other, budgets) == (8, None)
    assert benchmark.first_lead(np.array([0.5, 0.4, 0.4, 0.4]), other, budgets) == (None, None)
