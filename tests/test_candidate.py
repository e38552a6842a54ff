"""simqnas.candidate: accuracy on known predictions, sub-network policies, a full candidate evaluation."""

from __future__ import annotations

import pytest
import torch

from simqnas.candidate import EvaluationSettings, accuracy, evaluate_candidate, subnetwork_policy
from simqnas.data.batching import batches, labelled_batches, length_sorted_batches
from simqnas.latency import LatencySettings
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
    data = {"x": x, "labels": labels}
    assert accuracy(ParityModel(), labelled_batches(data, ("x",), batch_size)) == 0.75


class NaNModel(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((len(x), 2), float("nan"))


def test_accuracy_refuses_non_finite_logits_instead_of_scoring_them_class_0() -> None:
    data = {"x": torch.arange(4), "labels": torch.zeros(4, dtype=torch.int64)}
    with pytest.raises(FloatingPointError, match=r"non-finite logits in the batch of samples 0\.\.1"):
        accuracy(NaNModel(), labelled_batches(data, ("x",), 2))


def test_accuracy_needs_labels_and_inputs() -> None:
    with pytest.raises(ValueError, match="'labels'"):
        next(labelled_batches({"x": torch.arange(4)}, ("x",), 2))
    with pytest.raises(ValueError, match="missing inputs y"):
        next(batches({"x": torch.arange(4)}, ("x", "y"), 2))


def test_batches_keep_order_and_the_remainder() -> None:
    data = {"a": torch.arange(5), "b": torch.arange(5) * 10}
    got = [tuple(t.tolist() for t in batch) for batch in batches(data, ("b", "a"), 2)]
    assert got == [([0, 10], [0, 1]), ([20, 30], [2, 3]), ([40], [4])]


def test_length_sorted_batches_cover_every_sentence_once_cut_to_the_longest() -> None:
    lengths = [5, 2, 7, 3, 3, 8, 1]
    ids = torch.zeros(len(lengths), 8, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        ids[row, :length] = torch.arange(1, length + 1) + 10 * row
        mask[row, :length] = 1
    data = {"ids": ids, "mask": mask, "labels": torch.arange(len(lengths))}
    got = list(length_sorted_batches(data, ("ids", "mask"), 3, mask="mask"))
    # stable order of lengths 1, 2, 3, 3, 5, 7, 8; widths cut to each batch's longest (at least 2)
    assert [labels.tolist() for _, labels in got] == [[6, 1, 3], [4, 0, 2], [5]]
    assert [inputs[0].shape[1] for inputs, _ in got] == [3, 7, 8]
    for (ids_batch, mask_batch), labels in got:
        for row, label in enumerate(labels.tolist()):
            assert ids_batch[row, : lengths[label]].tolist() == ids[label, : lengths[label]].tolist()
            assert int(mask_batch[row].sum()) == lengths[label]


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
    stats = record["latency"]["stats"]
    assert stats["n"] == 10 and stats["threads"] == 1
    assert 0 < stats["min"] <= stats["median"]
    assert record["latency"]["int8_kernel_calls"] == sum(p == "int8" for p in policy.values())
    assert record["latency"]["compile_threads"] == 1 and record["latency"]["batch_size"] == 1
    assert list(record["timings_s"]) == [
        "extract",
        "size",
        "quantize",
        "accuracy",
        "compile",
        "kernel_check",
        "latency",
    ]
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
    assert record["latency"]["method"] == "eager_int8" and record["latency"]["stats"]["n"] == 5
    assert list(record["timings_s"]) == ["extract", "size", "eager_quantize", "latency"]


def test_unknown_latency_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="'jit' is not one of compiled, eager_int8"):
        LatencySettings(warmup=1, runs=1, threads=1, method="jit")
