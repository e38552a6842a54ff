"""simqnas.quantize: INC static PTQ honours the per-layer policy, exact size, INT8 kernels after compile; on
CI's tiny model and on an extracted (for the ResNet: deployable) sub-network of every super-network family."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import save
from torch import nn

from simqnas.quantize import (
    ACTIVATION_SCALE_DTYPE,
    ACTIVATION_ZERO_POINT_DTYPE,
    WEIGHT_SCALE_DTYPE,
    WEIGHT_ZERO_POINT_DTYPE,
    compile_for_inference,
    cpu_info_without_clock_probe,
    export_for_quantization,
    int8_kernels_used,
    int8_state_dict,
    model_size_bytes,
    quantizable_layers,
    quantize_static,
)
from tests.families import FAMILY_NAMES, Family, image_batch, tiny_resnet
from tests.tiny_models import TinyText, teacher, text_data

QDQ = torch.ops.quantized_decomposed
LAYERS = ["blocks.0.up", "blocks.0.down", "blocks.1.up", "blocks.1.down", "mix", "classifier"]
MIXED = {"blocks.0.up": "int8", "blocks.0.down": "fp32", "blocks.1.up": "fp32", "blocks.1.down": "int8"} | {
    "mix": "int8",
    "classifier": "fp32",
}
#: a sub-network of each super-network family: 2 of 3 layers, unequal heads and FFN sizes
FAMILY_ARCH = {"num_layers": [2], "num_heads": [3, 2, 4], "ffn_size": [8, 16, 3]}


@dataclass
class Case:
    """A model to quantize, the data it takes (rows, seed -> named tensors) and a mixed policy."""

    model: nn.Module
    data: Callable[[int, int], dict[str, torch.Tensor]]
    input_names: tuple[str, ...]
    policy: dict[str, str]
    #: max |INT8 - FP32| / max |FP32| of the logits: visible but small rounding
    tolerance: float = 0.05

    def inputs(self, rows: int, seed: int) -> tuple[torch.Tensor, ...]:
        data = self.data(rows, seed)
        return tuple(data[name] for name in self.input_names)


def _case(name: str) -> Case:
    """`tiny`: CI's text model (Linear and Conv2d); a family name: an extracted sub-network of its tiny
    super-network, every other layer INT8 (in gene order, from the first)."""
    if name == "tiny":
        return Case(teacher(), lambda rows, seed: text_data(rows, seed), TinyText.input_names, MIXED)
    if name == "resnet":
        return _resnet_case()
    family = Family(name)
    supernet = family.build()
    sub = supernet.extract(FAMILY_ARCH)
    policy = {layer: ("int8", "fp32")[i % 2] for i, layer in enumerate(quantizable_layers(sub))}
    # width-8 random transformers: LayerNorms (BEiT-3's Sub-LNs too) normalize over 8 channels and the logits
    # are small, so INT8 rounding shows more; a wrong scale or a missing dequantization gives errors of 1
    return Case(sub, lambda rows, seed: family.data(rows, seed), supernet.input_names, policy, tolerance=0.25)


def _resnet_case() -> Case:
    """A deployable sub-network of the tiny ResNet (BatchNorm re-estimated and folded): a shallower stem,
    a dropped block, narrower widths; every other conv INT8."""
    supernet = tiny_resnet()
    arch = {"depth": [0, 1, 0], "expand_ratio": [0.5, 1.0, 1.0, 0.5], "width_mult": [1.0, 0.5, 1.0, 0.5]}
    calibration = [(image_batch(16, seed=20 + i),) for i in range(2)]
    sub = supernet.deployable(supernet.extract(arch), calibration)
    policy = {layer: ("int8", "fp32")[i % 2] for i, layer in enumerate(quantizable_layers(sub))}

    def data(rows: int, seed: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": image_batch(rows, seed), "labels": torch.zeros(rows, dtype=torch.long)}

    return Case(sub, data, supernet.input_names, policy, tolerance=0.1)


def _quantize(case: Case, policy: dict[str, str] | None = None) -> torch.fx.GraphModule:
    calibration = [case.inputs(8, seed=1 + i) for i in range(4)]
    return quantize_static(case.model, case.inputs(2, seed=1), calibration, policy or case.policy)


@pytest.fixture(scope="module", params=["tiny", *FAMILY_NAMES, "resnet"])
def case(request) -> Case:
    return _case(request.param)


@pytest.fixture(scope="module")
def tiny() -> Case:
    return _case("tiny")


@pytest.fixture(scope="module")
def model(tiny: Case) -> TinyText:
    return tiny.model


@pytest.fixture(scope="module")
def mixed(case: Case) -> torch.fx.GraphModule:
    return _quantize(case)


def _layer_nodes(graph: torch.fx.GraphModule) -> dict[str, torch.fx.Node]:
    """Linear/Conv2d call nodes by the module name of their weight."""
    nodes = {}
    for node in graph.graph.nodes:
        if node.target in (torch.ops.aten.linear.default, torch.ops.aten.conv2d.default):
            weight = node.args[1]
            while weight.op != "get_attr":
                weight = weight.args[0]
            nodes[weight.target.removesuffix(".weight")] = node
    return nodes


def test_quantizable_layers_are_linear_and_conv2d(model: TinyText) -> None:
    assert quantizable_layers(model) == LAYERS


@pytest.mark.slow
def test_non_strict_export_is_incs_strict_export(case: Case) -> None:
    from neural_compressor.torch.export import export

    inputs = case.inputs(2, seed=1)
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in inputs)
    ours = export_for_quantization(case.model, inputs, dynamic)
    theirs = export(case.model, inputs, dynamic_shapes=dynamic)
    assert str(ours.graph) == str(theirs.graph)
    assert ours._exported and ours.dynamic_shapes == theirs.dynamic_shapes


@pytest.mark.slow
def test_converted_graph_honours_the_policy(case: Case, mixed: torch.fx.GraphModule) -> None:
    nodes = _layer_nodes(mixed)
    assert set(nodes) == set(case.policy)
    for name, precision in case.policy.items():
        activation, weight = nodes[name].args[:2]
        quantized_weight = (
            weight.op == "call_function" and weight.target == QDQ.dequantize_per_channel.default
        )
        quantized_input = activation.target == QDQ.dequantize_per_tensor.default
        assert quantized_weight == quantized_input == (precision == "int8"), name
    int8_layers = sum(p == "int8" for p in case.policy.values())
    assert sum(n.target == QDQ.quantize_per_channel.default for n in mixed.graph.nodes) == int8_layers


@pytest.mark.slow
def test_quantized_model_is_close_to_fp32_and_takes_any_batch(
    case: Case, mixed: torch.fx.GraphModule
) -> None:
    data = case.inputs(16, seed=2)
    for rows in (slice(0, 1), slice(0, 5), slice(0, 16)):
        inputs = tuple(t[rows] for t in data)
        with torch.no_grad():
            reference, quantized = case.model(*inputs), mixed(*inputs)
        assert quantized.shape == reference.shape
        error = (quantized - reference).abs().max() / reference.abs().max()
        assert 0 < error < case.tolerance


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({**MIXED, "blocks.9.up": "int8"}, "not in the model: blocks.9.up"),
        ({k: v for k, v in MIXED.items() if k != "mix"}, "without a precision: mix"),
        ({**MIXED, "classifier": "int4"}, "classifier: precision 'int4'"),
    ],
)
def test_policy_must_name_exactly_the_layers(tiny: Case, policy: dict[str, str], message: str) -> None:
    model = tiny.model
    with pytest.raises(ValueError, match=message):
        _quantize(tiny, policy)
    with pytest.raises(ValueError, match=message):
        model_size_bytes(model, policy)


@pytest.mark.slow
def test_size_equals_a_real_int8_serialization(case: Case, mixed: torch.fx.GraphModule) -> None:
    state = int8_state_dict(mixed)
    for name, precision in case.policy.items():
        expected = torch.int8 if precision == "int8" else torch.float32
        assert state[f"{name}.weight"].dtype == expected, name
    first = next(name for name, precision in case.policy.items() if precision == "int8")
    weight = case.model.get_submodule(first).weight
    assert state[f"{first}.weight_scale"].dtype == WEIGHT_SCALE_DTYPE
    assert state[f"{first}.weight_zero_point"].dtype == WEIGHT_ZERO_POINT_DTYPE
    assert state[f"{first}.weight_scale"].shape == (weight.shape[0],)  # per output channel
    assert state[f"{first}.input_scale"].dtype == ACTIVATION_SCALE_DTYPE
    assert state[f"{first}.input_zero_point"].dtype == ACTIVATION_ZERO_POINT_DTYPE
    # the int8 weights dequantize back to the FP32 ones within half a quantization step
    scale = state[f"{first}.weight_scale"].reshape(-1, *[1] * (weight.dim() - 1))
    assert ((state[f"{first}.weight"].float() * scale - weight).abs() <= scale / 2 + 1e-7).all()

    blob = save(state)
    header = int.from_bytes(blob[:8], "little")
    assert len(blob) - 8 - header == model_size_bytes(case.model, case.policy)


def test_all_int8_is_about_four_times_smaller_for_linear_weights() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 256))
    fp32 = model_size_bytes(mlp, dict.fromkeys(["0", "2"], "fp32"))
    int8 = model_size_bytes(mlp, dict.fromkeys(["0", "2"], "int8"))
    assert fp32 == 4 * (256 * 512 * 2 + 512 + 256)
    # weights shrink 4x; biases stay FP32 and each output channel adds a scale and a zero point
    assert int8 == 256 * 512 * 2 + 4 * (512 + 256) + 12 * (512 + 256) + 2 * 12
    assert 3.5 < fp32 / int8 < 4


@pytest.mark.slow
def test_compiled_model_runs_int8_kernels_and_matches_qdq(case: Case, mixed: torch.fx.GraphModule) -> None:
    inputs = case.inputs(1, seed=3)
    compiled = compile_for_inference(mixed, inputs)
    int8_types = {type(case.model.get_submodule(n)) for n, p in case.policy.items() if p == "int8"}
    # a conv fused with the residual add runs the binary variant (`qconv2d_pointwise`)
    expected = {
        nn.Conv2d: {"onednn::qconv_pointwise", "onednn::qconv2d_pointwise"},
        nn.Linear: {"onednn::qlinear_pointwise"},
    }
    used = set(int8_kernels_used(compiled, inputs))
    assert all(used & expected[t] for t in int8_types)
    assert used <= set().union(*(expected[t] for t in int8_types))
    with torch.inference_mode():
        torch.testing.assert_close(compiled(*inputs), mixed(*inputs), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_all_fp32_policy_quantizes_nothing(tiny: Case) -> None:
    fp32 = _quantize(tiny, dict.fromkeys(LAYERS, "fp32"))
    targets = {n.target for n in fp32.graph.nodes}
    assert not targets & {QDQ.quantize_per_tensor.default, QDQ.quantize_per_channel.default}
    inputs = tiny.inputs(1, seed=3)
    assert int8_kernels_used(compile_for_inference(fp32, inputs), inputs) == []


class WithUnusedLayer(TinyText):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(4, 4)  # never called: the policy could not be honoured for it


@pytest.mark.slow
def test_a_layer_the_forward_never_calls_is_an_error() -> None:
    case = Case(WithUnusedLayer().eval(), text_data, TinyText.input_names, {})
    with pytest.raises(RuntimeError, match="never calls: spare"):
        _quantize(case, dict.fromkeys([*LAYERS, "spare"], "int8"))


def test_inc_reads_the_same_cpu_without_py_cpuinfo_s_clock_probe() -> None:
    """What INC reads of py-cpuinfo (architecture, brand) is what py-cpuinfo's own `get_cpu_info()` reports;
    the in-process answer only leaves out the CPUID probe's clock measurement."""
    from cpuinfo import cpuinfo

    probing = cpuinfo.DataSource.can_cpuid
    ours, theirs = cpu_info_without_clock_probe(), cpuinfo.get_cpu_info()
    assert {key: ours.get(key) for key in ("arch", "bits", "brand_raw", "count")} == {
        key: theirs.get(key) for key in ("arch", "bits", "brand_raw", "count")
    }
    assert ours["brand_raw"] and "hz_actual" in theirs
    assert cpuinfo.DataSource.can_cpuid == probing  # the probe is left as it was for py-cpuinfo's own use
