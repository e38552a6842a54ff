"""simqnas.evaluate: accuracy on known predictions, sub-network policies, a full candidate evaluation."""

from __future__ import annotations

import pytest
import torch

from simqnas.evaluate import (
    EvaluationSettings,
    LatencySettings,
    accuracy,
    batches,
    evaluate_candidate,
    subnetwork_policy,
)
from simqnas.quantize import model_size_bytes
from tests.tiny_models import TinySuperNetwork, text_data


class ParityModel(torch.nn.Module):
    """Predicts class x % 2 of its single input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(x % 2, 2).float()


@pytest.mark.parametrize("batch_size", [1, 3, 8, 100])
def test_accuracy_counts_every_sample_once(batch_size: int) -> None:
    x = torch.arange(8)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])  # 6 of 8 equal x % 2
    assert accuracy(ParityModel(), {"x": x, "labels": labels}, ("x",), batch_size) == 0.75


def test_accuracy_needs_labels_and_inputs() -> None:
    with pytest.raises(ValueError, match="'labels'"):
        accuracy(ParityModel(), {"x": torch.arange(4)}, ("x",), 2)
    with pytest.raises(ValueError, match="missing inputs y"):
        next(batches({"x": torch.arange(4)}, ("x", "y"), 2))


def test_batches_keep_order_and_the_remainder() -> None:
    data = {"a": torch.arange(5), "b": torch.arange(5) * 10}
    got = [tuple(t.tolist() for t in batch) for batch in batches(data, ("b", "a"), 2)]
    assert got == [([0, 10], [0, 1]), ([20, 30], [2, 3]), ([40], [4])]


def test_subnetwork_policy_drops_layers_the_subnetwork_lacks() -> None:
    supernet = TinySuperNetwork()
    policy = dict.fromkeys(supernet.quantizable_layers(), "int8")
    sub = supernet.extract({"num_blocks": [1]})
    assert subnetwork_policy(sub, policy) == {
        "blocks.0.up": "int8",
        "blocks.0.down": "int8",
        "mix": "int8",
        "classifier": "int8",
    }
    del policy["mix"]
    with pytest.raises(ValueError, match="without a precision: mix"):
        subnetwork_policy(sub, policy)


@pytest.mark.slow
def test_evaluate_candidate_measures_the_quantized_subnetwork() -> None:
    torch.manual_seed(0)  # the same weights as the teacher that labelled the data
    supernet = TinySuperNetwork().eval()
    policy = dict.fromkeys(supernet.quantizable_layers(), "int8") | {"classifier": "fp32"}
    settings = EvaluationSettings(
        calibration_batch_size=8,
        eval_batch_size=16,
        latency=LatencySettings(warmup=2, runs=10, threads=1),
    )
    record = evaluate_candidate(
        supernet, supernet.largest_arch(), policy, text_data(32, seed=1), text_data(40, seed=2), settings
    )
    # the labels are the FP32 network's own predictions: INT8 flips only a few
    assert 0.8 <= record["accuracy"] <= 1.0
    assert record["size_bytes"] == model_size_bytes(supernet.extract(supernet.largest_arch()), policy)
    assert record["latency"]["n"] == 10 and record["latency"]["threads"] == 1
    assert 0 < record["latency"]["min"] <= record["latency"]["mean"]
    assert list(record["timings_s"]) == ["extract", "size", "quantize", "accuracy", "compile", "latency"]
    assert all(t >= 0 for t in record["timings_s"].values())


@pytest.mark.slow
def test_a_shallower_candidate_is_smaller_and_skips_latency_when_not_asked() -> None:
    torch.manual_seed(0)
    supernet = TinySuperNetwork().eval()
    policy = dict.fromkeys(supernet.quantizable_layers(), "int8")
    settings = EvaluationSettings(calibration_batch_size=8, eval_batch_size=16)
    data = text_data(16, seed=1)
    small = evaluate_candidate(supernet, supernet.smallest_arch(), policy, data, data, settings)
    large = evaluate_candidate(
        supernet, supernet.largest_arch(), policy, data, data, settings, measure_accuracy=False
    )
    assert small["size_bytes"] < large["size_bytes"]
    assert "latency" not in small and "accuracy" not in large


def test_eager_int8_latency_skips_inc_and_the_compile() -> None:
    torch.manual_seed(0)
    supernet = TinySuperNetwork().eval()
    policy = dict.fromkeys(supernet.quantizable_layers(), "int8")
    latency = LatencySettings(warmup=1, runs=5, threads=1, method="eager_int8")
    settings = EvaluationSettings(calibration_batch_size=8, eval_batch_size=16, latency=latency)
    data = text_data(16, seed=1)
    record = evaluate_candidate(
        supernet, supernet.largest_arch(), policy, data, data, settings, measure_accuracy=False
    )
    assert record["latency"]["method"] == "eager_int8" and record["latency"]["n"] == 5
    assert list(record["timings_s"]) == ["extract", "size", "eager_quantize", "latency"]


def test_unknown_latency_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="'jit' is not one of compiled, eager_int8"):
        LatencySettings(warmup=1, runs=1, threads=1, method="jit")
