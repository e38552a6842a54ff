"""Summaries: fixed hypervolume normalizations, final hypervolumes over seeds, the test split's tables."""

import json

import numpy as np
import pandas as pd
import pytest

from simqnas.statistics import encode_correct
from simqnas.summary import (
    chance_accuracy,
    final_hypervolumes,
    fixed_normalization,
    heldout_baselines_table,
    heldout_points,
    hypervolume_table,
)

#: FP32 90 MB and 2.0x the all-INT8 latency; all-INT8 60 MB
BASELINES = pd.DataFrame(
    [
        {"baseline": "fp32", "host": None, "accuracy": 0.86, "size_mb": 90.0, "normalized_latency": np.nan},
        {"baseline": "int8", "host": None, "accuracy": 0.85, "size_mb": 60.0, "normalized_latency": np.nan},
        {"baseline": "fp32", "host": "local", "accuracy": 0.86, "size_mb": 90.0, "normalized_latency": 2.0},
        {"baseline": "int8", "host": "local", "accuracy": 0.85, "size_mb": 60.0, "normalized_latency": 1.0},
    ]
)


def runs(algorithms=("linas", "nsga2"), spaces=("joint",), seeds=(0, 1, 2), n=8) -> pd.DataFrame:
    rows = []
    for space in spaces:
        for a, algorithm in enumerate(algorithms):
            for seed in seeds:
                rng = np.random.default_rng(100 * a + seed + 7 * len(space))
                for evaluation in range(n):
                    rows.append(
                        {
                            "space": space,
                            "objective": "size",
                            "algorithm": algorithm,
                            "seed": seed,
                            "evaluation": evaluation,
                            "accuracy": rng.uniform(0.6, 0.86),
                            "size_mb": rng.uniform(20, 90),
                            "normalized_latency": np.nan,
                            "host": None,
                        }
                    )
    return pd.DataFrame(rows)


def test_chance_is_the_validation_split_s_majority_class():
    assert chance_accuracy({"splits": {"validation": {"positive_fraction": 0.496}}}) == pytest.approx(0.504)
    image = {"splits": {"validation": {"per_class": [50, 50, 60, 40]}}}
    assert chance_accuracy(image) == pytest.approx(0.3)


def test_normalization_comes_from_chance_and_the_costlier_full_network():
    size = fixed_normalization("size", BASELINES, 0.5)
    assert (size.lower, size.upper) == ((0.5, 0.0), (1.0, 90.0))
    latency = fixed_normalization("latency", BASELINES, 0.5)
    assert (latency.lower, latency.upper) == ((0.5, 0.0), (1.0, 2.0))
    with pytest.raises(ValueError, match="no full-network baseline normalized_latency"):
        fixed_normalization("latency", BASELINES[BASELINES["host"].isna()], 0.5)
    # where the FP32 network runs faster than the all-INT8 one, the all-INT8 network bounds latency
    fast_fp32 = BASELINES.assign(normalized_latency=BASELINES["normalized_latency"].replace(2.0, 0.5))
    assert fixed_normalization("latency", fast_fp32, 0.5).upper == (1.0, 1.0)


def test_adding_an_algorithm_changes_no_other_algorithm_s_hypervolume():
    both = runs(("linas", "nsga2"))
    alone, _ = hypervolume_table(both[both["algorithm"] == "linas"], BASELINES, 0.5)
    together, normalizations = hypervolume_table(both, BASELINES, 0.5)
    linas = together[together["algorithm"] == "linas"].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, linas)
    # a third, better algorithm: still the same
    better = runs(("random",)).assign(accuracy=0.86, size_mb=20.0)
    more, _ = hypervolume_table(pd.concat([both, better]), BASELINES, 0.5)
    pd.testing.assert_frame_equal(alone, more[more["algorithm"] == "linas"].reset_index(drop=True))
    assert normalizations["size"]["lower"] == [0.5, 0.0] and normalizations["size"]["upper"] == [1.0, 90.0]
    assert set(normalizations["size"]["rule"]) == {"accuracy", "size_mb"}


def test_quantization_only_and_joint_searches_share_one_normalization():
    table, normalizations = hypervolume_table(runs(("linas",), spaces=("quant", "joint")), BASELINES, 0.5)
    assert list(normalizations) == ["size"]
    bounds = table.groupby("space")[["accuracy_bounds", "cost_bounds", "reference_point"]].first()
    assert bounds.loc["quant"].tolist() == bounds.loc["joint"].tolist() == ["0.5..1", "0..90", "1.1,1.1"]


def test_final_hypervolumes_over_seeds():
    table, _ = hypervolume_table(runs(("linas",)), BASELINES, 0.5)
    final = final_hypervolumes(table).iloc[0]
    last = table[table["evaluations"] == 8]["hypervolume"]
    assert final["seeds"] == 3 and final["evaluations"] == 8
    assert final["mean"] == pytest.approx(last.mean()) and final["std"] == pytest.approx(last.std(ddof=1))
    assert final["ci95_low"] < final["mean"] < final["ci95_high"]
    assert final["cost_bounds"] == "0..90"


def test_test_points_join_front_points_to_their_evaluations(tmp_path):
    evaluations = runs(("linas",), seeds=(0, 1), n=3)
    correct = encode_correct([True, False])
    files, described = [], []
    for seed in (0, 1):
        path = tmp_path / f"seed{seed}.csv"
        pd.DataFrame(
            {
                "evaluation": [0, 2],
                "accuracy": [0.0, 0.0],  # the validation accuracy comes from the summary's evaluations
                "genome": ["[0]", "[1]"],
                "test_accuracy": [0.5, 0.5],
                "test_samples": [2, 2],
                "test_correct": [correct, correct],
                "test_key": ["k", "k"],
                "test_cached": [False, True],
            }
        ).to_csv(path, index=False)
        files.append(path)
        described.append({"space": "joint", "objective": "size", "algorithm": "linas", "seed": seed})
    points = heldout_points(evaluations, described, files)
    assert len(points) == 4 and points["seed"].tolist() == [0, 0, 1, 1]
    expected = evaluations.set_index(["seed", "evaluation"]).loc[[(0, 0), (0, 2), (1, 0), (1, 2)], "accuracy"]
    assert points["accuracy"].tolist() == expected.tolist()
    described[1] = {**described[1], "seed": 5}
    with pytest.raises(ValueError, match="not among the summary's evaluations"):
        heldout_points(evaluations, described, files)


def test_test_baselines_of_the_network_and_its_references(tmp_path):
    def record(name: str, accuracy: float) -> str:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"accuracy": accuracy, "samples": 2, "correct": "gA=="}))
        return str(path)

    table = heldout_baselines_table(
        {"fp32": record("fp32", 0.5), "int8": record("int8", 0.5)},
        {"r50": {"int8": record("r50", 0.5)}},
        "resnet",
    )
    assert table[["network", "reference", "baseline"]].values.tolist() == [
        ["resnet", False, "fp32"],
        ["resnet", False, "int8"],
        ["r50", True, "int8"],
    ]
