"""The whole DAG on the smoke config: real data, real MiniLM weights, real INC quantization and latency.

One session-scoped run (a few minutes on 2 cores) feeds several assertions; a second run must do nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from simqnas.pareto import non_dominated_mask
from simqnas.statistics import decode_correct
from tests.workflow_utils import all_evaluations, snakemake

pytestmark = pytest.mark.slow


# `smoke_run` (the uninterrupted smoke workflow) is session-scoped in tests/conftest.py: the crash-and-resume
# test compares its evaluations with it.


def test_figures_and_tables_exist(smoke_run: Path):
    figures = smoke_run / "results" / "figures" / "bert"
    for name in (
        "fig1_accuracy_vs_size",
        "fig1_accuracy_vs_latency",
        "fig2_progression_size",
        "fig2_hypervolume_size",
        "fig3_quant_vs_joint",
    ):
        assert (figures / f"{name}.png").stat().st_size > 10_000, name
        assert (figures / f"{name}.pdf").is_file(), name
    tables = smoke_run / "results" / "tables"
    for name in ("table1_search_space", "table2_3_elastic_parameters", "bert_headline", "headline", "claims"):
        assert (tables / f"{name}.csv").is_file() and (tables / f"{name}.md").is_file(), name


def test_every_run_spends_its_budget_on_unique_candidates(smoke_run: Path):
    evaluations = all_evaluations(smoke_run / "results", "bert")
    for (space, objective, algorithm, seed), run in evaluations.groupby(
        ["space", "objective", "algorithm", "seed"]
    ):
        assert len(run) == 6, (space, objective, algorithm, seed)
        assert run["genome"].is_unique, (space, objective, algorithm, seed)
        assert run["accuracy"].between(0, 1).all()
        assert (run["size_bytes"] > 0).all()
        if objective == "latency":
            assert (run["latency_ms"] > 0).all()
            assert run["normalized_latency"].notna().all()


def test_iteration_zero_is_shared_through_the_evaluation_store(smoke_run: Path):
    evaluations = all_evaluations(smoke_run / "results", "bert")
    first = evaluations[(evaluations["iteration"] == 0) & (evaluations["space"] == "joint")]
    # the same seeded random population for every algorithm and objective: one evaluation each
    assert first.groupby(["objective", "algorithm"])["genome"].apply(tuple).nunique() == 1
    stored = list((smoke_run / "results" / "bert" / "evals").rglob("*.json"))
    quality = [p for p in stored if json.loads(p.read_text())["fields"]["metric"] == "quality"]
    assert len(quality) == evaluations["quality_key"].nunique()


def test_baselines_follow_the_paper(smoke_run: Path):
    baselines = pd.read_csv(smoke_run / "results" / "bert" / "summary" / "baselines.csv")
    quality = baselines[baselines["host"].isna()].set_index("baseline")
    # all-INT8 stores Linear weights in a quarter of the bytes; MiniLM's FP32 embeddings are half its size
    assert quality.loc["int8", "size_bytes"] < 0.7 * quality.loc["fp32", "size_bytes"]
    local = baselines[baselines["host"] == "local"].set_index("baseline")
    assert local.loc["int8", "normalized_latency"] == pytest.approx(1.0)


def test_front_points_and_baselines_are_evaluated_on_the_held_out_test_split(smoke_run: Path):
    results = smoke_run / "results"
    data = json.loads((results / "data" / "sentences" / "summary.json").read_text())
    assert data["splits"]["test"]["rows"] == 128
    summary = results / "bert" / "summary"
    evaluations = pd.read_csv(summary / "evaluations.csv")
    points = pd.read_csv(summary / "test.csv")
    # every run's own validation front is on the test split, with its per-sample outcomes
    for (space, objective, algorithm, seed), run in evaluations.groupby(
        ["space", "objective", "algorithm", "seed"]
    ):
        cost = "size_bytes" if objective == "size" else "normalized_latency"  # the summaries' ranking
        front = run[non_dominated_mask(run[["accuracy", cost]].to_numpy(dtype=float), (True, False))]
        tested = points[
            (points["space"] == space)
            & (points["objective"] == objective)
            & (points["algorithm"] == algorithm)
            & (points["seed"] == seed)
        ]
        assert sorted(tested["evaluation"]) == sorted(front["evaluation"]), (
            space,
            objective,
            algorithm,
            seed,
        )
    for row in points.itertuples():
        assert row.test_samples == 128
        assert decode_correct(row.test_correct, 128).mean() == pytest.approx(row.test_accuracy)
    baselines = pd.read_csv(summary / "test_baselines.csv").set_index("baseline")
    assert set(baselines.index) == {"fp32", "int8"}
    stored = [json.loads(p.read_text()) for p in (results / "bert" / "evals").rglob("*.json")]
    per_sample = [e for e in stored if e["fields"]["metric"] == "per_sample_quality"]
    assert len(per_sample) == points["test_key"].nunique() + 2  # + the two baselines
    headline = pd.read_csv(results / "tables" / "bert_headline.csv")
    assert headline["linas_test"].str.contains(" pp \\[").any()


def test_claims_and_hypervolumes_come_with_intervals(smoke_run: Path):
    claims = pd.read_csv(smoke_run / "results" / "tables" / "claims.csv")
    assert sorted(claims["claim"].unique()) == [1, 2, 3, 4]
    verdicts = {"reproduced", "not reproduced", "not resolved at this budget", "not run"}
    assert set(claims["verdict"]) <= verdicts and set(claims["claim_verdict"]) <= verdicts
    final = pd.read_csv(smoke_run / "results" / "bert" / "summary" / "hypervolume_final.csv")
    assert {"mean", "std", "ci95_low", "ci95_high", "accuracy_bounds", "cost_bounds"} <= set(final.columns)
    normalization = json.loads(
        (smoke_run / "results" / "bert" / "summary" / "normalization.json").read_text()
    )
    assert set(normalization) == {"size", "latency"}


def test_second_run_does_nothing(smoke_run: Path):
    result = snakemake(smoke_run, "-n", "results/figures")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_interrupted_iteration_resumes_without_redoing_finished_evaluations(smoke_run: Path):
    """The state a kill mid-iteration leaves: some evaluations stored, the iteration's tables missing."""
    iteration = smoke_run / "results/bert/search/joint-size/linas/seed0/it1"
    before = pd.read_csv(iteration / "evaluated.csv")
    store = smoke_run / "results/bert/evals"
    lost = store / before["quality_key"][0][:2] / f"{before['quality_key'][0]}.json"
    lost.unlink()  # the candidate the killed shard was working on
    # the iteration's tables and everything downstream of them did not exist yet when the run was killed
    pool = smoke_run / "results/bert/search/joint-size/shards/it1"  # the shards of every size run
    for table in [
        *pool.glob("shard*.csv"),
        iteration / "evaluated.csv",
        iteration.parent / "evaluations.csv",
    ]:
        table.unlink()
    for later in ("results/bert/summary", "results/figures"):
        shutil.rmtree(smoke_run / later)
    for table in (smoke_run / "results/tables").glob("bert_headline.*"):
        table.unlink()
    kept = {p: p.stat().st_mtime_ns for p in store.rglob("*.json")}

    result = snakemake(smoke_run, "results/figures")
    assert result.returncode == 0, result.stderr[-4000:]
    after = pd.read_csv(iteration / "evaluated.csv")
    pd.testing.assert_frame_equal(
        after.drop(columns="quality_cached"), before.drop(columns="quality_cached"), check_exact=True
    )
    # exactly the lost evaluation was computed again; every finished one was read back untouched
    assert lost.is_file()
    assert after["quality_cached"].tolist() == [False] + [True] * (len(after) - 1)
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())


def test_report_holds_every_figure_with_its_caption(smoke_run: Path):
    result = snakemake(smoke_run, "--report", "report.html")
    assert result.returncode == 0, result.stderr[-3000:]
    html = (smoke_run / "report.html").read_text(errors="replace")
    for figure in ("fig1_accuracy_vs_size", "fig2_hypervolume_size", "fig3_quant_vs_joint"):
        assert figure in html, figure
    assert "Quantization-policy-only search" in html  # a caption from report/figures.rst
