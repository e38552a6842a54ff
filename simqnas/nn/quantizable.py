"""Which layers a per-layer precision policy covers (kept apart from simqnas.quantize, which needs Intel
Neural Compressor, so that defining a network does not)."""

from __future__ import annotations

from torch import nn

INT8 = "int8"
FP32 = "fp32"
PRECISIONS = (INT8, FP32)

#: what INC's PT2E x86 quantizer can make INT8 (it leaves Conv1d/Conv3d FP32)
QUANTIZABLE_TYPES = (nn.Linear, nn.Conv2d)


def quantizable_layers(model: nn.Module) -> list[str]:
    """Qualified names of the model's Linear/Conv2d modules, in module order."""
    return [name for name, module in model.named_modules() if isinstance(module, QUANTIZABLE_TYPES)]
