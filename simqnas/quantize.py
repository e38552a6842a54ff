"""Static post-training quantization with a per-layer INT8/FP32 policy, and the exact size of the result.

Intel Neural Compressor 3.x (PT2E path): export the FP32 sub-network to an ATen graph, annotate every
Linear/Conv2d INT8 (per-channel symmetric int8 weights, per-tensor asymmetric uint8 input activations;
min/max observers, moving-average for activations) except those the policy keeps FP32, calibrate, convert.
The converted graph is "QDQ": FP32 weights with quantize/dequantize ops around each INT8 layer, numerically
the INT8 model but executed in FP32; `compile_for_inference` lowers it with Inductor (freezing on) to oneDNN
INT8 kernels.

The size of a deployed model follows from the FP32 sub-network and the policy alone (`model_size_bytes`);
`int8_state_dict` extracts the tensors a deployment stores from a converted graph, so the two are checked
against each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from simqnas.nn.quantizable import FP32, INT8, PRECISIONS, quantizable_layers

#: how INC 3.x stores the per-output-channel weight quantization parameters (checked by the tests)
WEIGHT_SCALE_DTYPE = torch.float32
WEIGHT_ZERO_POINT_DTYPE = torch.int64
#: the input activation of an INT8 layer: one scale and one zero point, stored like the weights' (and like
#: torch.ao's QuantStub buffers); INC keeps them as graph literals
ACTIVATION_SCALE_DTYPE = torch.float32
ACTIVATION_ZERO_POINT_DTYPE = torch.int64


_QDQ = torch.ops.quantized_decomposed
_LAYER_OPS = {torch.ops.aten.linear.default, torch.ops.aten.conv2d.default}
#: oneDNN INT8 kernels Inductor emits for quantized Linear/Conv on x86
INT8_KERNEL_NAMES = ("onednn::qlinear_pointwise", "onednn::qconv_pointwise", "onednn::qconv2d_pointwise")

Policy = dict[str, str]
Inputs = tuple[torch.Tensor, ...]


def check_policy(model: nn.Module, policy: Mapping[str, str]) -> None:
    """The policy must name exactly the model's Linear/Conv layers, each int8 or fp32."""
    layers = quantizable_layers(model)
    unknown = sorted(set(policy) - set(layers))
    if unknown:
        raise ValueError(f"policy: layers not in the model: {', '.join(unknown)}")
    missing = [name for name in layers if name not in policy]
    if missing:
        raise ValueError(f"policy: model layers without a precision: {', '.join(missing)}")
    bad = {name: p for name, p in policy.items() if p not in PRECISIONS}
    if bad:
        name, precision = next(iter(bad.items()))
        raise ValueError(f"policy: {name}: precision {precision!r} is not one of {', '.join(PRECISIONS)}")


def _quiet_inc() -> None:
    # INC logs every prepare/convert step at INFO; a shard quantizes hundreds of models
    logging.getLogger("neural_compressor").setLevel(logging.WARNING)


def cpu_info_without_clock_probe() -> dict[str, Any]:
    """py-cpuinfo's `get_cpu_info()`, answered in this process and without its CPUID probe.

    INC 3.10 calls `get_cpu_info()` once, when it is imported, and reads only the architecture and brand;
    it probes VNNI and BF16 itself. py-cpuinfo 9 answers in a fresh interpreter whose CPUID probe sleeps one
    second to measure the clock (`hz_actual`): a second of every evaluation job (measured: 1.01 s of the
    1.09 s it takes). /proc/cpuinfo and lscpu give the architecture and brand.
    """
    from cpuinfo import cpuinfo

    probing = cpuinfo.DataSource.can_cpuid
    cpuinfo.DataSource.can_cpuid = False
    try:
        return cpuinfo._get_cpu_info_internal()
    finally:
        cpuinfo.DataSource.can_cpuid = probing


def _forget_cached_modules() -> None:
    """Empty the two `functools.cache`s of torch.ao and torchao keyed by a module
    (`assert_and_get_unique_device`, which INC's prepare and convert call on every graph): each entry keeps
    a graph alive, with its weights and observers, for the life of the process. Measured on MiniLM
    candidates: about 55 MB a candidate; a job evaluating 96 of them grew to 7.4 GB and its later
    candidates took 17% longer."""
    import torchao.utils
    from torch.ao.quantization.fx import utils as ao_fx_utils

    ao_fx_utils.assert_and_get_unique_device.cache_clear()
    torchao.utils._assert_and_get_unique_device.cache_clear()


def _import_inc_quantization() -> Any:
    """`neural_compressor.torch.quantization`, imported without py-cpuinfo's one-second clock probe."""
    import cpuinfo

    cpuinfo.get_cpu_info = cpu_info_without_clock_probe
    from neural_compressor.torch import quantization

    return quantization


def quantize_static(
    model: nn.Module,
    example_inputs: Inputs,
    calibration_batches: Iterable[Inputs],
    policy: Mapping[str, str],
    *,
    variable_dims: Sequence[Mapping[int, str]] | None = None,
) -> torch.fx.GraphModule:
    """INC static PTQ of `model` honouring `policy` (layer name -> "int8" | "fp32") exactly.

    `variable_dims` names, per input, the dimensions exported symbolic (default: the batch, dim 0 of every
    input), so one converted model serves calibration, batched accuracy passes and batch-1 latency;
    `example_inputs` then needs a size of at least 2 in each of them (torch.export specializes sizes 0 and
    1), and a dimension other than the batch may shrink but not grow beyond its size in `example_inputs`.
    Raises ValueError for a policy that does not match the model and RuntimeError if the converted graph
    does not honour it.
    """
    inc = _import_inc_quantization()
    _quiet_inc()
    _forget_cached_modules()  # whatever a compile or check of the previous model added
    check_policy(model, policy)
    model = model.eval()
    dynamic_shapes = export_dims(example_inputs, variable_dims or tuple({0: "batch"} for _ in example_inputs))
    graph = export_for_quantization(model, example_inputs, dynamic_shapes)

    config = inc.StaticQuantConfig()  # INC defaults: int8 per-channel sym weights, uint8 per-tensor asym acts
    for name, precision in policy.items():
        if precision == FP32:
            config.set_local(name, inc.StaticQuantConfig(w_dtype="fp32", act_dtype="fp32"))
    prepared = inc.prepare(graph, config)
    with torch.no_grad():
        for batch_inputs in calibration_batches:
            prepared(*batch_inputs)
    converted = inc.convert(prepared)
    _forget_cached_modules()  # the exported and prepared graphs, once this function returns, are garbage

    honoured = layer_precisions(converted)
    absent = [name for name in policy if name not in honoured]
    if absent:
        raise RuntimeError(f"quantize: layers the forward pass never calls: {', '.join(absent)}")
    wrong = [name for name in policy if honoured[name] != policy[name]]
    if wrong:
        raise RuntimeError(f"quantize: the converted graph does not honour the policy for {', '.join(wrong)}")
    return converted


def export_dims(
    example_inputs: Inputs, variable_dims: Sequence[Mapping[int, str]]
) -> tuple[dict[int, Any], ...]:
    """torch.export dynamic shapes for `variable_dims`: one `Dim` per name, shared by every input that names
    it; the batch is unbounded, any other dimension bounded by its size in `example_inputs`."""
    if len(variable_dims) != len(example_inputs):
        raise ValueError(f"variable_dims: {len(variable_dims)} entries for {len(example_inputs)} inputs")
    dims: dict[str, Any] = {}
    shapes = []
    for tensor, named in zip(example_inputs, variable_dims, strict=True):
        for axis, name in named.items():
            if tensor.shape[axis] < 2:
                raise ValueError(
                    f"example_inputs: {name} (dim {axis}) is {tensor.shape[axis]}: symbolic needs 2 or more"
                )
            if name not in dims:
                bound = None if axis == 0 else int(tensor.shape[axis])
                dims[name] = torch.export.Dim(name, min=2, max=bound) if bound else torch.export.Dim(name)
        shapes.append({axis: dims[name] for axis, name in named.items()})
    return tuple(shapes)


def export_for_quantization(
    model: nn.Module, example_inputs: Inputs, dynamic_shapes: tuple[dict[int, Any], ...] | None
) -> torch.fx.GraphModule:
    """What `neural_compressor.torch.export.export` does, in non-strict mode.

    INC exports strict (TorchDynamo tracing) first; for our sub-networks non-strict tracing yields the
    identical ATen graph (node for node) 2-4x faster (BERT: 0.7-1.3 s instead of 2.2-3.7 s), a quarter of
    an accuracy + size evaluation. INC's `prepare` requires the two markers its export sets.
    """
    with torch.no_grad():
        graph = torch.export.export(
            model, example_inputs, dynamic_shapes=dynamic_shapes, strict=False
        ).module()
    graph._exported = True
    graph.dynamic_shapes = dynamic_shapes
    return graph


def _weight_name(node: torch.fx.Node) -> str:
    """The `get_attr` target (e.g. `encoder.0.fc.weight`) behind a layer's weight argument."""
    if node.op == "get_attr":
        return str(node.target)
    if node.op == "call_function" and node.target in (
        _QDQ.dequantize_per_channel.default,
        _QDQ.quantize_per_channel.default,
        _QDQ.dequantize_per_tensor.default,
        _QDQ.quantize_per_tensor.default,
    ):
        return _weight_name(node.args[0])
    raise RuntimeError(f"quantize: unexpected weight producer {node.format_node()}")


def _is_dequantized(node: Any, op: Any) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target == op


def layer_precisions(graph: torch.fx.GraphModule) -> Policy:
    """The precision each Linear/Conv of a converted graph actually runs in, read from its QDQ ops.

    INT8: the weight is dequantized per channel and the input per tensor; FP32: neither.
    """
    precisions: Policy = {}
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target not in _LAYER_OPS:
            continue
        activation, weight = node.args[0], node.args[1]
        name = _weight_name(weight).removesuffix(".weight")
        weight_q = _is_dequantized(weight, _QDQ.dequantize_per_channel.default)
        input_q = _is_dequantized(activation, _QDQ.dequantize_per_tensor.default)
        if weight_q != input_q:
            raise RuntimeError(f"quantize: {name}: weight quantized {weight_q} but input quantized {input_q}")
        precisions[name] = INT8 if weight_q else FP32
    return precisions


def int8_state_dict(graph: torch.fx.GraphModule) -> dict[str, torch.Tensor]:
    """The tensors a deployment of a converted graph stores: every parameter and buffer, with INT8 layers'
    weights as int8 plus their per-channel `weight_scale`/`weight_zero_point` and their input activation's
    `input_scale`/`input_zero_point` (INC's own `_scale_N`/`_zero_point_N` buffers are renamed to those).
    """
    state = dict(graph.state_dict())
    attr = dict(graph.named_buffers()) | dict(graph.named_parameters())
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target not in _LAYER_OPS:
            continue
        activation, weight = node.args[0], node.args[1]
        if not _is_dequantized(weight, _QDQ.dequantize_per_channel.default):
            continue
        quantize = weight.args[0]
        weight_attr, scale_attr, zero_point_attr = (str(a.target) for a in quantize.args[:3])
        axis, qmin, qmax, dtype = quantize.args[3:7]
        layer = weight_attr.removesuffix(".weight")
        scale, zero_point = state.pop(scale_attr), state.pop(zero_point_attr)
        state[weight_attr] = _QDQ.quantize_per_channel.default(
            attr[weight_attr].detach(), scale, zero_point, axis, qmin, qmax, dtype
        )
        state[f"{layer}.weight_scale"] = scale
        state[f"{layer}.weight_zero_point"] = zero_point
        input_scale, input_zero_point = activation.args[1:3]
        state[f"{layer}.input_scale"] = torch.tensor([input_scale], dtype=ACTIVATION_SCALE_DTYPE)
        state[f"{layer}.input_zero_point"] = torch.tensor(
            [input_zero_point], dtype=ACTIVATION_ZERO_POINT_DTYPE
        )
    return state


def _nbytes(dtype: torch.dtype, count: int) -> int:
    return torch.empty((), dtype=dtype).element_size() * count


def model_size_bytes(model: nn.Module, policy: Mapping[str, str]) -> int:
    """Bytes a deployment of `model` quantized with `policy` stores.

    Per INT8 layer: its weight at 1 byte an element, a scale and a zero point per output channel, and one
    scale and zero point for its input activation. Everything else (FP32 layers, biases, embeddings, norms,
    buffers) at its own dtype, FP32 for float parameters. Needs only the FP32 model: no quantization run.
    """
    check_policy(model, policy)
    modules = dict(model.named_modules())
    int8_weights = {f"{name}.weight" for name, p in policy.items() if p == INT8}
    total = 0
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name in int8_weights:
            channels = modules[name.removesuffix(".weight")].weight.shape[0]
            total += _nbytes(torch.int8, tensor.numel())
            total += _nbytes(WEIGHT_SCALE_DTYPE, channels) + _nbytes(WEIGHT_ZERO_POINT_DTYPE, channels)
            total += _nbytes(ACTIVATION_SCALE_DTYPE, 1) + _nbytes(ACTIVATION_ZERO_POINT_DTYPE, 1)
        else:
            total += tensor.element_size() * tensor.numel()
    return total


def compile_for_inference(qmodel: nn.Module, example_inputs: Inputs) -> Callable[..., Any]:
    """Inductor-compile a converted graph so its INT8 layers run as oneDNN INT8 kernels.

    Freezing lets Inductor constant-fold the weight quantization into packed int8 weights, which is what
    selects `qlinear_pointwise`/`qconv_pointwise`; without it the QDQ graph runs in FP32. Compilation is lazy,
    so this runs `example_inputs` once (that is the compile cost). Call the result under
    `torch.inference_mode()`: freezing applies only without autograd.
    """
    # process-wide on purpose: passed per call (`options=`) it misses parts of the pipeline and the Conv
    # prepack then fails, and a later recompile (new input shape) must freeze too
    torch._inductor.config.freezing = True
    compiled = torch.compile(qmodel)
    with torch.inference_mode():
        compiled(*example_inputs)
    return compiled


def int8_kernel_calls(compiled: Callable[..., Any], inputs: Inputs) -> dict[str, int]:
    """How often one forward pass of `compiled` calls each oneDNN INT8 kernel (profiler op names)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        compiled(*inputs)
    calls: dict[str, int] = {}
    for event in prof.events():
        if event.name in INT8_KERNEL_NAMES:
            calls[event.name] = calls.get(event.name, 0) + 1
    return calls


def int8_kernels_used(compiled: Callable[..., Any], inputs: Inputs) -> list[str]:
    """Names of the oneDNN INT8 kernels one forward pass of `compiled` runs."""
    return sorted(int8_kernel_calls(compiled, inputs))


def check_int8_kernels(compiled: Callable[..., Any], inputs: Inputs, policy: Mapping[str, str]) -> int:
    """The number of INT8 kernel calls of one forward pass, which must equal the policy's INT8 layers: a
    layer the compiled graph runs in FP32 instead (a pattern Inductor did not fuse) would make the latency
    that of another network. Raises RuntimeError naming both counts."""
    calls = sum(int8_kernel_calls(compiled, inputs).values())
    expected = sum(precision == INT8 for precision in policy.values())
    if calls != expected:
        raise RuntimeError(
            f"compiled model: {calls} INT8 kernel calls for {expected} INT8 layers in its policy "
            "(an INT8 layer fell back to FP32, or an FP32 one ran as INT8): not this candidate's latency"
        )
    return calls
