"""What a candidate is (a sub-network architecture + a per-layer INT8/FP32 policy) and how it is measured:
accuracy, exact size and compiled end-to-end INT8 latency, in one pass, with per-phase timings.

A job evaluates many candidates in one process: the caller loads the super-network and the data once and
passes them in; per candidate only what depends on it runs. The candidate is quantized once (INC static
PTQ, `quantize.quantize_static`) and that one model serves both measurements:

- accuracy on the converted (QDQ) model: the same quantized numbers as the compiled INT8 kernels, in the
  family's accuracy batches (`SuperNetwork.accuracy_batches`: for text, sentences sorted by length and each
  batch cut to its longest, which the export's symbolic token dimension allows);
- latency: the same model compiled by Inductor to oneDNN INT8 kernels, checked to run one INT8 kernel per
  INT8 layer of its policy, timed on the host profile's batch size and threads (set before the compile).

Baselines are candidates too: the largest architecture with every layer INT8, or every layer FP32
(`full_network_policy`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from simqnas.data.batching import Data, Inputs, batches
from simqnas.eager_int8 import quantize_eager
from simqnas.latency import LatencySettings, measure_latency_gated
from simqnas.quantize import (
    FP32,
    INT8,
    check_int8_kernels,
    check_policy,
    compile_for_inference,
    model_size_bytes,
    quantizable_layers,
    quantize_static,
)
from simqnas.supernets.base import Arch, SuperNetwork

#: the version of how a candidate is measured; part of every evaluation key. Bump it whenever quantization,
#: the accuracy pass, the size computation or the latency measurement changes what a number means.
#: 2: accuracy in length-sorted batches cut to their longest sentence; latency of a compiled model checked
#:    for one INT8 kernel per INT8 layer, threads set before compiling, the host's batch size and affinity
EVALUATION_RECIPE = 2


@dataclass(frozen=True)
class EvaluationSettings:
    calibration_batch_size: int
    eval_batch_size: int
    latency: LatencySettings | None = None


def correct_predictions(model: nn.Module, labelled: Iterable[tuple[Inputs, torch.Tensor]]) -> torch.Tensor:
    """Per sample, in batch order, whether the top-1 class of `model(*inputs)` is its label. Non-finite
    logits are an error, not a prediction: argmax would score NaN as class 0."""
    correct, seen = [], 0
    with torch.inference_mode():
        for inputs, labels in labelled:
            logits = model(*inputs)
            if not torch.isfinite(logits).all():
                raise FloatingPointError(
                    f"accuracy: non-finite logits in the batch of samples {seen}..{seen + len(labels) - 1}"
                )
            correct.append(logits.argmax(dim=-1) == labels)
            seen += len(labels)
    if not seen:
        raise ValueError("accuracy: no samples")
    return torch.cat(correct)


def accuracy(model: nn.Module, labelled: Iterable[tuple[Inputs, torch.Tensor]]) -> float:
    """Top-1 accuracy of `model(*inputs)` logits over (inputs, labels) batches (`correct_predictions`)."""
    correct = correct_predictions(model, labelled)
    return int(correct.sum()) / len(correct)


class PhaseTimer:
    """Wall-clock seconds per named phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def subnetwork_policy(subnet: nn.Module, policy: Mapping[str, str]) -> dict[str, str]:
    """The part of a super-network policy that applies to a sub-network (layers it dropped are ignored)."""
    layers = quantizable_layers(subnet)
    missing = [name for name in layers if name not in policy]
    if missing:
        raise ValueError(f"policy: sub-network layers without a precision: {', '.join(missing)}")
    return {name: policy[name] for name in layers}


def full_network_policy(supernet: SuperNetwork, precision: str) -> dict[str, str]:
    """The baselines' policies: every searched layer INT8 (fixed layers keep their precision), or every
    layer FP32 (the unquantized network)."""
    if precision == INT8:
        return dict.fromkeys(supernet.quantizable_layers(), INT8)
    if precision == FP32:
        return dict.fromkeys([*supernet.quantizable_layers(), *supernet.fixed_precisions()], FP32)
    raise ValueError(f"baseline precision {precision!r} is not {INT8} or {FP32}")


def quantize_subnetwork(
    subnet: nn.Module,
    policy: Mapping[str, str],
    calibration: Data,
    input_names: Sequence[str],
    calibration_batch_size: int,
    variable_dims: Sequence[Mapping[int, str]] | None = None,
) -> torch.fx.GraphModule:
    """INC static PTQ calibrated on `calibration`, exported with the family's variable dimensions."""
    example = next(batches(calibration, input_names, 2))  # a symbolic dimension needs a size >= 2
    return quantize_static(
        subnet,
        example,
        batches(calibration, input_names, calibration_batch_size),
        policy,
        variable_dims=variable_dims,
    )


def timed_inputs(data: Data, input_names: Sequence[str], batch_size: int) -> Inputs:
    """What a latency times: the first `batch_size` samples of `data` as stored (text at full length)."""
    inputs = next(batches(data, input_names, batch_size))
    if len(inputs[0]) < batch_size:
        raise ValueError(f"latency: batch size {batch_size} but only {len(inputs[0])} samples to time")
    return inputs


#: a compiled reference network and its timed inputs, timed interleaved with each candidate
Reference = tuple[Any, Inputs]


def time_latency(
    model: Any, inputs: Inputs, settings: LatencySettings, reference: Reference | None = None
) -> dict[str, Any]:
    """Latency of `model(*inputs)` through the settings' stability gate (`measure_latency_gated`; with a
    `reference`, timed in alternating blocks with it), as a record: the gated measurement and how it
    was taken."""
    gated = measure_latency_gated(
        model,
        inputs,
        warmup=settings.warmup,
        runs=settings.runs,
        threads=settings.threads,
        trim=settings.trim,
        gate=settings.gate,
        reference=reference[0] if reference else None,
        reference_inputs=reference[1] if reference else None,
    )
    return {**gated.to_dict(), "method": settings.method, "batch_size": settings.batch_size}


def compile_checked(
    qmodel: nn.Module, inputs: Inputs, policy: Mapping[str, str], threads: int, timer: PhaseTimer
) -> tuple[Any, dict[str, int]]:
    """Compile the INC model to INT8 kernels at `threads` intra-op threads (Inductor bakes the thread count
    into its kernels) and check that it runs one INT8 kernel per INT8 layer of `policy`. Returns the
    compiled model and what was checked ({"compile_threads", "int8_kernel_calls"})."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with timer.phase("compile"):
            compiled = compile_for_inference(qmodel, inputs)
            compile_threads = torch.get_num_threads()
        with timer.phase("kernel_check"):
            kernels = check_int8_kernels(compiled, inputs, policy)
    finally:
        torch.set_num_threads(previous)
    return compiled, {"compile_threads": compile_threads, "int8_kernel_calls": kernels}


def compiled_latency(
    qmodel: nn.Module,
    inputs: Inputs,
    policy: Mapping[str, str],
    settings: LatencySettings,
    timer: PhaseTimer,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """`compile_checked`, then time `inputs` on the compiled model (interleaved with `reference`)."""
    compiled, checked = compile_checked(qmodel, inputs, policy, settings.threads, timer)
    with timer.phase("latency"):
        return {**time_latency(compiled, inputs, settings, reference), **checked}


def eager_int8_latency(
    subnet: nn.Module,
    policy: Mapping[str, str],
    calibration: Data,
    input_names: Sequence[str],
    calibration_batch_size: int,
    inputs: Inputs,
    settings: LatencySettings,
    timer: PhaseTimer,
) -> dict[str, Any]:
    """Time a torch.ao eager INT8 copy of the sub-network (no compile): the search-time estimate."""
    with timer.phase("eager_quantize"):
        eager = quantize_eager(
            copy.deepcopy(subnet), policy, batches(calibration, input_names, calibration_batch_size)
        )
    with timer.phase("latency"):
        return time_latency(eager, inputs, settings)


def evaluate_subnetwork(
    supernet: SuperNetwork,
    subnet: nn.Module,
    policy: Mapping[str, str],
    calibration: Data,
    validation: Data,
    settings: EvaluationSettings,
    *,
    measure_accuracy: bool = True,
    timer: PhaseTimer | None = None,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Quantize an extracted sub-network of `supernet` (its family's batching and symbolic dimensions) once
    with its policy and measure it.

    Returns {"size_bytes", "accuracy" (with `measure_accuracy`), "latency" (a gated measurement in ms,
    with `settings.latency`; compiled latency is timed interleaved with `reference` when given),
    "timings_s"}.
    """
    timer = timer or PhaseTimer()
    check_policy(subnet, policy)
    latency = settings.latency
    names = supernet.input_names
    with timer.phase("size"):
        record: dict[str, Any] = {"size_bytes": model_size_bytes(subnet, policy)}
    qmodel = None
    if measure_accuracy or (latency is not None and latency.method == "compiled"):
        with timer.phase("quantize"):
            qmodel = quantize_subnetwork(
                subnet, policy, calibration, names, settings.calibration_batch_size, supernet.variable_dims()
            )
    if measure_accuracy:
        with timer.phase("accuracy"):
            record["accuracy"] = accuracy(
                qmodel, supernet.accuracy_batches(validation, settings.eval_batch_size)
            )
    if latency is not None:
        inputs = timed_inputs(validation, names, latency.batch_size)
        if latency.method == "compiled":
            record["latency"] = compiled_latency(qmodel, inputs, policy, latency, timer, reference)
        else:
            record["latency"] = eager_int8_latency(
                subnet, policy, calibration, names, settings.calibration_batch_size, inputs, latency, timer
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


def quantized_candidate(
    supernet: SuperNetwork,
    arch: Arch,
    policy: Mapping[str, str],
    calibration: Data,
    calibration_batch_size: int,
) -> tuple[nn.Module, dict[str, str], torch.fx.GraphModule]:
    """`arch` as deployed, the policy (with the super-network's fixed precisions) restricted to its layers,
    and its one INC quantization with the family's variable dimensions: what a job measures outside
    `evaluate_candidate` (the test split's per-sample outcomes, the latency jobs' baseline)."""
    subnet = deployable_subnetwork(supernet, arch, calibration, calibration_batch_size)
    layers = subnetwork_policy(subnet, {**supernet.fixed_precisions(), **policy})
    qmodel = quantize_subnetwork(
        subnet, layers, calibration, supernet.input_names, calibration_batch_size, supernet.variable_dims()
    )
    return subnet, layers, qmodel


def evaluate_candidate(
    supernet: SuperNetwork,
    arch: Arch,
    policy: Mapping[str, str],
    calibration: Data,
    validation: Data,
    settings: EvaluationSettings,
    *,
    measure_accuracy: bool = True,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Extract `arch` from a loaded super-network (`deployable_subnetwork`), then `evaluate_subnetwork`
    with the policy (and the super-network's fixed precisions) restricted to the layers the sub-network
    keeps. Timings include "extract"."""
    timer = PhaseTimer()
    with timer.phase("extract"):
        subnet = deployable_subnetwork(supernet, arch, calibration, settings.calibration_batch_size)
    return evaluate_subnetwork(
        supernet,
        subnet,
        subnetwork_policy(subnet, {**supernet.fixed_precisions(), **policy}),
        calibration,
        validation,
        settings,
        measure_accuracy=measure_accuracy,
        timer=timer,
        reference=reference,
    )


def number_problem(name: str, value: Any, low: float, high: float = math.inf) -> str | None:
    """What is wrong with a measured number (None if nothing): not a number, NaN, infinite, out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} {value!r} is not a number"
    if not math.isfinite(value) or not low <= value <= high:
        return f"{name} {value!r} is not a finite number within [{low}, {high}]"
    return None
