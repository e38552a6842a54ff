"""The held-out test split: front points and baselines of a tiny BERT super-network, per-sample outcomes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from simqnas.data import save_split
from simqnas.evalstore import EvaluationStore
from simqnas.heldout import baseline_test, evaluate_test, front_test_table, record_problem, run_front
from simqnas.history import genome_column, history_from_tables
from simqnas.pareto import pareto_front_mask
from simqnas.shard import EvaluationContext, evaluate_baseline, evaluate_quality
from simqnas.statistics import decode_correct
from simqnas.summary import add_normalized_latency
from tests.test_shard import job_files, load_context, split  # noqa: F401 (job_files is a fixture)


@pytest.fixture(scope="module")
def test_files(job_files):  # noqa: F811
    """The job files with a test split (other rows than validation and calibration) as `validation`."""
    save_split(job_files / "test.safetensors", split(30, 3))
    return job_files


def held_out_context(root) -> EvaluationContext:
    """The loading the rule does: the test split where the search reads validation."""
    return EvaluationContext.load(
        root / "supernet.safetensors",
        root / "space.yaml",
        "joint",
        root / "calibration.safetensors",
        root / "test.safetensors",
        load_context(root).settings,
    )


def test_front_points_get_the_search_pipeline_s_accuracy_with_per_sample_outcomes(test_files, tmp_path):
    context = held_out_context(test_files)
    store = EvaluationStore(tmp_path / "evals")
    genomes = context.space.sample(3, np.random.default_rng(0))
    tested = evaluate_test(context, list(enumerate(genomes)), store)
    assert not tested["test_cached"].any() and (tested["test_samples"] == 30).all()
    # the search's own evaluation of the same networks on the same file gives the same accuracy
    quality = evaluate_quality(context, list(enumerate(genomes)), EvaluationStore(tmp_path / "quality"))
    assert tested["test_accuracy"].tolist() == quality["accuracy"].tolist()
    for row in tested.itertuples():
        assert decode_correct(row.test_correct, 30).mean() == row.test_accuracy
    assert not set(tested["test_key"]) & set(quality["quality_key"])
    again = evaluate_test(context, list(enumerate(genomes)), store)
    assert again["test_cached"].all()
    pd.testing.assert_frame_equal(tested.drop(columns="test_cached"), again.drop(columns="test_cached"))


def test_the_split_file_is_part_of_the_key(test_files, tmp_path):
    genome = held_out_context(test_files).space.sample(1, np.random.default_rng(1))
    on_test = evaluate_test(held_out_context(test_files), [(0, genome[0])], EvaluationStore(tmp_path))
    on_validation = evaluate_test(load_context(test_files), [(0, genome[0])], EvaluationStore(tmp_path))
    assert on_test["test_key"][0] != on_validation["test_key"][0]
    assert on_test["test_samples"][0] == 30 and on_validation["test_samples"][0] == 24


def test_baselines_on_the_test_split_match_the_baseline_definitions(test_files, tmp_path):
    context = held_out_context(test_files)
    store = EvaluationStore(tmp_path)
    for precision in ("fp32", "int8"):
        record = baseline_test(context, precision, store)
        reference = evaluate_baseline(context, precision)
        assert record["accuracy"] == reference["accuracy"]
        assert record["size_bytes"] == reference["size_bytes"]
        assert decode_correct(record["correct"], record["samples"]).mean() == record["accuracy"]


def test_a_tampered_record_is_refused():
    good = {"accuracy": 0.5, "samples": 2, "correct": "gA=="}  # bits 1, 0
    assert record_problem(good) is None
    assert "is not that of its correctness" in record_problem({**good, "accuracy": 1.0})
    assert "is not that of its correctness" in record_problem({**good, "accuracy": "0.5"})
    assert "no readable per-sample correctness" in record_problem({"accuracy": 0.5, "samples": 2})


def test_run_front_keeps_equal_points_and_drops_dominated_ones():
    evaluations = pd.DataFrame(
        {
            "evaluation": [0, 1, 2, 3, 4],
            "accuracy": [0.80, 0.85, 0.85, 0.70, 0.84],
            "size_bytes": [10, 20, 20, 30, 20],
            "genome": genome_column(np.arange(10).reshape(5, 2)),
        }
    )
    assert run_front(evaluations, "size")["evaluation"].tolist() == [0, 1, 2]


def test_the_front_table_joins_test_results_to_the_front(test_files, tmp_path):
    context = held_out_context(test_files)
    genomes = context.space.sample(4, np.random.default_rng(5))
    evaluations = pd.DataFrame(
        {
            "evaluation": range(4),
            "accuracy": [0.5, 0.7, 0.6, 0.9],
            "size_bytes": [10, 30, 40, 50],
            "genome": genome_column(genomes),
        }
    )
    table = front_test_table(context, evaluations, "size", EvaluationStore(tmp_path))
    assert table["evaluation"].tolist() == [0, 1, 3]
    assert [json.loads(g) for g in table["genome"]] == [genomes[i].tolist() for i in (0, 1, 3)]
    assert table["test_accuracy"].between(0, 1).all()


def test_an_unstable_latency_is_on_no_front_tested_on_the_held_out_split():
    """The summary keeps evaluations whose latency stayed unstable off every front; so does the test
    evaluation, which reports only points the summary's fronts can pick."""
    evaluations = pd.DataFrame(
        {
            "evaluation": [0, 1, 2],
            "accuracy": [0.80, 0.85, 0.90],
            "latency_ms": [5.0, 4.0, 6.0],
            "latency_stable": [True, False, True],
            "genome": genome_column(np.arange(6).reshape(3, 2)),
        }
    )
    assert run_front(evaluations, "latency")["evaluation"].tolist() == [0, 2]


def test_a_latency_front_is_taken_on_the_same_rounds_ratio_the_summaries_report():
    """A latency job's candidate and its all-INT8 reference are timed in the same rounds; the summaries and
    claims rank points by that ratio, so the points tested on the held-out split are picked by it too (the
    raw latency of a point timed while the machine was slower can rank it otherwise)."""
    evaluations = pd.DataFrame(
        {
            "evaluation": [0, 1, 2],
            "accuracy": [0.80, 0.85, 0.90],
            "latency_ms": [5.0, 6.0, 7.0],  # by raw latency, every point is on the front
            "latency_reference_ratio": [1.0, 0.9, 1.1],  # by the ratio, point 1 dominates point 0
            "latency_stable": [True, True, True],
            "genome": genome_column(np.arange(6).reshape(3, 2)),
        }
    )
    assert run_front(evaluations, "latency")["evaluation"].tolist() == [1, 2]
    int8 = pd.DataFrame({"baseline": ["int8"], "host": ["local"], "latency_ms": [6.0]})
    summarized = add_normalized_latency(evaluations.assign(host="local"), int8)
    values = summarized[["accuracy", "normalized_latency"]].to_numpy(dtype=float)
    assert summarized[pareto_front_mask(values, (True, False))]["evaluation"].tolist() == [1, 2]


def test_a_latency_search_ranks_its_history_by_the_same_rounds_ratio(tmp_path):
    """The search sees latency as the fronts and summaries do: a candidate timed while the machine was
    slower (raw latency up, its ratio to the baseline timed beside it unchanged) keeps its rank."""
    evaluated = pd.DataFrame(
        {
            "candidate": [0, 1],
            "accuracy": [0.80, 0.85],
            "size_bytes": [10, 20],
            "latency_ms": [5.0, 9.0],
            "latency_reference_ratio": [1.0, 0.9],
            "genome": genome_column(np.arange(4).reshape(2, 2)),
        }
    )
    evaluated.to_csv(tmp_path / "evaluated.csv", index=False)
    tables = [tmp_path / "evaluated.csv"]
    assert history_from_tables(tables, 2, "latency").values.tolist() == [[0.80, 1.0], [0.85, 0.9]]
    assert history_from_tables(tables, 2, "size").values.tolist() == [[0.80, 10], [0.85, 20]]
