"""Search-time latency without a compile: torch.ao eager static quantization with the x86 engine.

Each INT8 layer of the policy is wrapped in quantize/dequantize stubs and converted to a real quantized
module (quantized::linear / quantized::conv2d, the same oneDNN/FBGEMM INT8 kernels family), calibrated with
the same data; FP32 layers stay as they are. Building one takes about a second, against 10-40 s for
Inductor-compiling the INC model, and its batch-1 latency ranks sub-networks like the compiled INT8
latency does (benchmarks/evaluation_cost.py, section tau). Its numbers are an estimate for ranking during
a search only; figures and tables report compiled end-to-end latency (`quantize.compile_for_inference`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from simqnas.quantize import INT8, check_policy

ENGINE = "x86"


def quantize_eager(
    model: nn.Module, policy: Mapping[str, str], calibration_batches: Iterable[tuple[torch.Tensor, ...]]
) -> nn.Module:
    """Quantize `model` in place (pass a fresh extract): INT8 layers of `policy` become eager INT8 modules
    (per-channel weights, per-tensor activations, observers calibrated on the batches)."""
    import torch.ao.quantization as tq

    check_policy(model, policy)
    torch.backends.quantized.engine = ENGINE
    qconfig = tq.get_default_qconfig(ENGINE)
    model.eval()
    for name, precision in policy.items():
        if precision != INT8:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = getattr(parent, child)
        layer.qconfig = qconfig
        setattr(parent, child, tq.QuantWrapper(layer))
    with warnings.catch_warnings():
        # torch.ao.quantization announces its deprecation on every call (it works in the pinned torch)
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        tq.prepare(model, inplace=True)
        with torch.no_grad():
            for inputs in calibration_batches:
                model(*inputs)
        return tq.convert(model, inplace=True)
