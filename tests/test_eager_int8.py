"""simqnas.eager_int8: real eager INT8 modules exactly where the policy says, close to FP32."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.ao.nn import quantized as nnq

from simqnas.eager_int8 import quantize_eager
from tests.tiny_models import TinyText, teacher, text_data

POLICY = {
    "blocks.0.up": "int8",
    "blocks.0.down": "fp32",
    "blocks.1.up": "int8",
    "blocks.1.down": "fp32",
    "mix": "int8",
    "classifier": "fp32",
}


def _batches(rows: int, size: int) -> list[tuple[torch.Tensor, ...]]:
    data = text_data(rows, seed=1)
    names = TinyText.input_names
    return [tuple(data[n][i : i + size] for n in names) for i in range(0, rows, size)]


def test_int8_layers_become_quantized_modules_and_fp32_layers_stay() -> None:
    reference = teacher()
    model = quantize_eager(copy.deepcopy(reference), POLICY, _batches(32, 8))
    assert isinstance(model.get_submodule("blocks.0.up.module"), nnq.Linear)
    assert isinstance(model.get_submodule("mix.module"), nnq.Conv2d)
    assert type(model.get_submodule("blocks.0.down")) is torch.nn.Linear
    assert type(model.get_submodule("classifier")) is torch.nn.Linear
    inputs = _batches(16, 16)[0]
    with torch.no_grad():
        expected, got = reference(*inputs), model(*inputs)
    error = (got - expected).abs().max() / expected.abs().max()
    assert 0 < error < 0.05


def test_policy_is_checked_first() -> None:
    with pytest.raises(ValueError, match="without a precision: classifier"):
        quantize_eager(teacher(), {k: v for k, v in POLICY.items() if k != "classifier"}, [])
