"""simqnas.quantize: INC static PTQ honours the per-layer policy, exact size, INT8 kernels after compile."""

from __future__ import annotations

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
    export_for_quantization,
    int8_kernels_used,
    int8_state_dict,
    model_size_bytes,
    quantizable_layers,
    quantize_static,
)
from tests.tiny_models import TinyText, teacher, text_data

QDQ = torch.ops.quantized_decomposed
LAYERS = ["blocks.0.up", "blocks.0.down", "blocks.1.up", "blocks.1.down", "mix", "classifier"]
MIXED = {"blocks.0.up": "int8", "blocks.0.down": "fp32", "blocks.1.up": "fp32", "blocks.1.down": "int8"} | {
    "mix": "int8",
    "classifier": "fp32",
}


def _inputs(data: dict[str, torch.Tensor], rows: slice) -> tuple[torch.Tensor, ...]:
    return tuple(data[name][rows] for name in TinyText.input_names)


def _quantize(model: nn.Module, policy: dict[str, str]) -> torch.fx.GraphModule:
    data = text_data(32, seed=1)
    calibration = [_inputs(data, slice(i, i + 8)) for i in range(0, 32, 8)]
    return quantize_static(model, _inputs(data, slice(0, 2)), calibration, policy)


@pytest.fixture(scope="module")
def model() -> TinyText:
    return teacher()


@pytest.fixture(scope="module")
def mixed(model: TinyText) -> torch.fx.GraphModule:
    return _quantize(model, MIXED)


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
def test_non_strict_export_is_incs_strict_export(model: TinyText) -> None:
    from neural_compressor.torch.export import export

    inputs = _inputs(text_data(2, seed=1), slice(0, 2))
    batch = torch.export.Dim("batch")
    dynamic = ({0: batch}, {0: batch})
    ours = export_for_quantization(model, inputs, dynamic)
    theirs = export(model, inputs, dynamic_shapes=dynamic)
    assert str(ours.graph) == str(theirs.graph)
    assert ours._exported and ours.dynamic_shapes == theirs.dynamic_shapes


@pytest.mark.slow
def test_converted_graph_honours_the_policy(mixed: torch.fx.GraphModule) -> None:
    nodes = _layer_nodes(mixed)
    assert set(nodes) == set(LAYERS)
    for name, precision in MIXED.items():
        activation, weight = nodes[name].args[:2]
        quantized_weight = (
            weight.op == "call_function" and weight.target == QDQ.dequantize_per_channel.default
        )
        quantized_input = activation.target == QDQ.dequantize_per_tensor.default
        assert quantized_weight == quantized_input == (precision == "int8"), name
    assert sum(n.target == QDQ.quantize_per_channel.default for n in mixed.graph.nodes) == 3


@pytest.mark.slow
def test_quantized_model_is_close_to_fp32_and_takes_any_batch(
    model: TinyText, mixed: torch.fx.GraphModule
) -> None:
    data = text_data(16, seed=2)
    for rows in (slice(0, 1), slice(0, 5), slice(0, 16)):
        inputs = _inputs(data, rows)
        with torch.no_grad():
            reference, quantized = model(*inputs), mixed(*inputs)
        assert quantized.shape == reference.shape
        error = (quantized - reference).abs().max() / reference.abs().max()
        assert 0 < error < 0.05  # INT8 rounding is visible but small


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({**MIXED, "blocks.9.up": "int8"}, "not in the model: blocks.9.up"),
        ({k: v for k, v in MIXED.items() if k != "mix"}, "without a precision: mix"),
        ({**MIXED, "classifier": "int4"}, "classifier: precision 'int4'"),
    ],
)
def test_policy_must_name_exactly_the_layers(model: TinyText, policy: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _quantize(model, policy)
    with pytest.raises(ValueError, match=message):
        model_size_bytes(model, policy)


@pytest.mark.slow
def test_size_equals_a_real_int8_serialization(model: TinyText, mixed: torch.fx.GraphModule) -> None:
    state = int8_state_dict(mixed)
    for name, precision in MIXED.items():
        expected = torch.int8 if precision == "int8" else torch.float32
        assert state[f"{name}.weight"].dtype == expected, name
    assert state["blocks.0.up.weight_scale"].dtype == WEIGHT_SCALE_DTYPE
    assert state["blocks.0.up.weight_zero_point"].dtype == WEIGHT_ZERO_POINT_DTYPE
    assert state["blocks.0.up.weight_scale"].shape == (2 * 32,)  # per output channel
    assert state["mix.input_scale"].dtype == ACTIVATION_SCALE_DTYPE
    assert state["mix.input_zero_point"].dtype == ACTIVATION_ZERO_POINT_DTYPE
    # the int8 weights dequantize back to the FP32 ones within half a quantization step
    weight = model.blocks[0].up.weight
    scale = state["blocks.0.up.weight_scale"].unsqueeze(1)
    assert ((state["blocks.0.up.weight"].float() * scale - weight).abs() <= scale / 2 + 1e-7).all()

    blob = save(state)
    header = int.from_bytes(blob[:8], "little")
    assert len(blob) - 8 - header == model_size_bytes(model, MIXED)


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
def test_compiled_model_runs_int8_kernels_and_matches_qdq(mixed: torch.fx.GraphModule) -> None:
    inputs = _inputs(text_data(1, seed=3), slice(0, 1))
    compiled = compile_for_inference(mixed, inputs)
    assert int8_kernels_used(compiled, inputs) == ["onednn::qconv_pointwise", "onednn::qlinear_pointwise"]
    with torch.inference_mode():
        torch.testing.assert_close(compiled(*inputs), mixed(*inputs), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_all_fp32_policy_quantizes_nothing(model: TinyText) -> None:
    fp32 = _quantize(model, dict.fromkeys(LAYERS, "fp32"))
    targets = {n.target for n in fp32.graph.nodes}
    assert not targets & {QDQ.quantize_per_tensor.default, QDQ.quantize_per_channel.default}
    inputs = _inputs(text_data(1, seed=3), slice(0, 1))
    assert int8_kernels_used(compile_for_inference(fp32, inputs), inputs) == []


class WithUnusedLayer(TinyText):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(4, 4)  # never called: the policy could not be honoured for it


@pytest.mark.slow
def test_a_layer_the_forward_never_calls_is_an_error() -> None:
    model = WithUnusedLayer().eval()
    with pytest.raises(RuntimeError, match="never calls: spare"):
        _quantize(model, dict.fromkeys([*LAYERS, "spare"], "int8"))
