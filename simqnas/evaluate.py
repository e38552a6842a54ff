"""Accuracy, size and latency of one candidate (sub-network + quantization policy), with per-phase timings.

A shard evaluates many candidates in one process: the caller loads the super-network and the data once and
passes them in; per candidate only what depends on it runs (extract, quantize + calibrate, the measurements).
Data are dicts of named tensors (the model's `input_names` plus "labels"), first dimension = samples.

Accuracy is measured on the converted (QDQ) INT8 model: the same quantized numbers as the compiled INT8
kernels, without paying a compile for every batch shape. Latency compiles the model (oneDNN INT8 kernels) and
times batch 1, or, as a cheaper search-time estimate, times a torch.ao eager INT8 copy (`LatencySettings`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from simqnas.eager_int8 import quantize_eager
from simqnas.latency import measure_latency
from simqnas.quantize import (
    check_policy,
    compile_for_inference,
    model_size_bytes,
    quantizable_layers,
    quantize_static,
)
from simqnas.supernets.base import Arch, SuperNetwork

Data = Mapping[str, torch.Tensor]
LABELS = "labels"


#: how latency is measured: "compiled" INC INT8 model through Inductor (end-to-end, what results report)
#: or "eager_int8" torch.ao eager INT8 model (no compile: a search-time estimate, see simqnas.eager_int8)
LATENCY_METHODS = ("compiled", "eager_int8")


@dataclass(frozen=True)
class LatencySettings:
    warmup: int
    runs: int
    threads: int
    trim: float = 0.05
    method: str = "compiled"

    def __post_init__(self) -> None:
        if self.method not in LATENCY_METHODS:
            raise ValueError(f"latency method {self.method!r} is not one of {', '.join(LATENCY_METHODS)}")


@dataclass(frozen=True)
class EvaluationSettings:
    calibration_batch_size: int
    eval_batch_size: int
    latency: LatencySettings | None = None


def batches(data: Data, input_names: Sequence[str], batch_size: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Consecutive batches of the named inputs (the last one may be smaller)."""
    missing = [name for name in input_names if name not in data]
    if missing:
        raise ValueError(f"data: missing inputs {', '.join(missing)} (have {', '.join(sorted(data))})")
    count = len(data[input_names[0]])
    for start in range(0, count, batch_size):
        yield tuple(data[name][start : start + batch_size] for name in input_names)


def accuracy(model: nn.Module, data: Data, input_names: Sequence[str], batch_size: int) -> float:
    """Top-1 accuracy of `model(*inputs)` logits against `data["labels"]`."""
    if LABELS not in data:
        raise ValueError(f"data: no {LABELS!r} tensor (have {', '.join(sorted(data))})")
    labels = data[LABELS]
    correct = seen = 0
    with torch.inference_mode():
        for inputs in batches(data, input_names, batch_size):
            predicted = model(*inputs).argmax(dim=-1)
            correct += int((predicted == labels[seen : seen + len(predicted)]).sum())
            seen += len(predicted)
    return correct / len(labels)


class _Timer:
    """Wall-clock seconds per named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - start


def subnetwork_policy(subnet: nn.Module, policy: Mapping[str, str]) -> dict[str, str]:
    """The part of a super-network policy that applies to a sub-network (layers it dropped are ignored)."""
    layers = quantizable_layers(subnet)
    missing = [name for name in layers if name not in policy]
    if missing:
        raise ValueError(f"policy: sub-network layers without a precision: {', '.join(missing)}")
    return {name: policy[name] for name in layers}


def quantize_subnetwork(
    subnet: nn.Module,
    policy: Mapping[str, str],
    calibration: Data,
    input_names: Sequence[str],
    calibration_batch_size: int,
) -> torch.fx.GraphModule:
    """INC static PTQ calibrated on `calibration`, exported with a dynamic batch dimension."""
    example = next(batches(calibration, input_names, 2))  # dynamic-batch export needs a batch >= 2
    return quantize_static(
        subnet, example, batches(calibration, input_names, calibration_batch_size), policy, dynamic_batch=True
    )


def _timed_latency(model: Any, inputs: tuple[torch.Tensor, ...], settings: LatencySettings) -> dict[str, Any]:
    stats = measure_latency(
        model,
        inputs,
        warmup=settings.warmup,
        runs=settings.runs,
        threads=settings.threads,
        trim=settings.trim,
    )
    return {**stats.to_dict(), "method": settings.method}


def compiled_latency(
    qmodel: nn.Module, inputs: tuple[torch.Tensor, ...], settings: LatencySettings, timer: _Timer
) -> dict[str, Any]:
    """Compile the INC model to INT8 kernels and time `inputs` (batch 1 as given)."""
    with timer.phase("compile"):
        compiled = compile_for_inference(qmodel, inputs)
    with timer.phase("latency"):
        return _timed_latency(compiled, inputs, settings)


def eager_int8_latency(
    subnet: nn.Module,
    policy: Mapping[str, str],
    calibration: Data,
    input_names: Sequence[str],
    calibration_batch_size: int,
    inputs: tuple[torch.Tensor, ...],
    settings: LatencySettings,
    timer: _Timer,
) -> dict[str, Any]:
    """Time a torch.ao eager INT8 copy of the sub-network (no compile): the search-time estimate."""
    with timer.phase("eager_quantize"):
        eager = quantize_eager(
            copy.deepcopy(subnet), policy, batches(calibration, input_names, calibration_batch_size)
        )
    with timer.phase("latency"):
        return _timed_latency(eager, inputs, settings)


def evaluate_subnetwork(
    subnet: nn.Module,
    policy: Mapping[str, str],
    calibration: Data,
    validation: Data,
    input_names: Sequence[str],
    settings: EvaluationSettings,
    *,
    measure_accuracy: bool = True,
) -> dict[str, Any]:
    """Quantize an extracted sub-network with its policy and measure it.

    Returns {"accuracy", "size_bytes", "latency" (stats in ms, only with `settings.latency`), "timings_s"}.
    """
    timer = _Timer()
    check_policy(subnet, policy)
    latency = settings.latency
    with timer.phase("size"):
        record: dict[str, Any] = {"size_bytes": model_size_bytes(subnet, policy)}
    qmodel = None
    if measure_accuracy or (latency is not None and latency.method == "compiled"):
        with timer.phase("quantize"):
            qmodel = quantize_subnetwork(
                subnet, policy, calibration, input_names, settings.calibration_batch_size
            )
    if measure_accuracy:
        with timer.phase("accuracy"):
            record["accuracy"] = accuracy(qmodel, validation, input_names, settings.eval_batch_size)
    if latency is not None:
        one = next(batches(validation, input_names, 1))
        if latency.method == "compiled":
            record["latency"] = compiled_latency(qmodel, one, latency, timer)
        else:
            record["latency"] = eager_int8_latency(
                subnet, policy, calibration, input_names, settings.calibration_batch_size, one, latency, timer
            )
    record["timings_s"] = timer.seconds
    return record


def deployable_subnetwork(
    supernet: SuperNetwork, arch: Arch, calibration: Data, calibration_batch_size: int
) -> nn.Module:
    """`arch` extracted from a loaded super-network, as it is deployed (`SuperNetwork.deployable`: for a
    family with BatchNorm, statistics re-estimated on the calibration data and folded into the convs)."""
    subnet = supernet.extract(arch).eval()
    return supernet.deployable(subnet, batches(calibration, supernet.input_names, calibration_batch_size))


def evaluate_candidate(
    supernet: SuperNetwork,
    arch: Arch,
    policy: Mapping[str, str],
    calibration: Data,
    validation: Data,
    settings: EvaluationSettings,
    *,
    measure_accuracy: bool = True,
) -> dict[str, Any]:
    """Extract `arch` from a loaded super-network (`deployable_subnetwork`), then `evaluate_subnetwork`
    with the policy (and the super-network's fixed precisions) restricted to the layers the sub-network
    keeps. Timings include "extract"."""
    start = time.perf_counter()
    subnet = deployable_subnetwork(supernet, arch, calibration, settings.calibration_batch_size)
    extract_s = time.perf_counter() - start
    record = evaluate_subnetwork(
        subnet,
        subnetwork_policy(subnet, {**supernet.fixed_precisions(), **policy}),
        calibration,
        validation,
        supernet.input_names,
        settings,
        measure_accuracy=measure_accuracy,
    )
    record["timings_s"] = {"extract": extract_s, **record["timings_s"]}
    return record
