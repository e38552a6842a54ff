"""Bottleneck ResNet in the layout of Once-for-All's `ResNets` (Cai et al.), of plain or elastic layers.

Module names follow the OFA code's static ResNets: `input_stem.0` (conv), `input_stem.1` (a residual conv),
`input_stem.2` (conv), `blocks.<i>.conv1|conv2|conv3|downsample`, `classifier.linear`, every conv layer a
`conv` + `bn` pair. An OFA checkpoint therefore loads by name, and one precision policy keyed by module name
applies to the super-network and to every sub-network: a dropped stem conv or block is absent from an
extracted network, the kept ones keep their index (`ModuleDict` keys), so names never shift.

Elasticity keeps prefixes (the first k channels of every tensor), as OFA does: a layer's active output
channels are set, its input channels follow from its input. Extraction is then a generic prefix copy
(`simqnas.nn.elastic.copy_prefix_weights`).

BatchNorm statistics depend on the sub-network, so a deployed sub-network re-estimates them on data first
(`recalibrate_batchnorm_`, OFA's "reset BN") and then folds BatchNorm into the convolutions
(`fold_batchnorm_`): what is quantized, sized and timed is the folded network.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simqnas.nn.elastic import ElasticLinear, active_size


def make_divisible(value: float, divisor: int) -> int:
    """OFA's channel rounding: the nearest multiple of `divisor` (at least `divisor`), never more than 10%
    below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ElasticConv2d(nn.Conv2d):
    """A bias-free Conv2d running on a leading slice of its filters; input channels follow the input."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.active_out = out_channels

    def set_active(self, out_channels: int | None) -> None:
        self.active_out = active_size("out_channels", out_channels, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.active_out == self.out_channels and x.shape[1] == self.in_channels:
            return super().forward(x)
        weight = self.weight[: self.active_out, : x.shape[1]]
        return F.conv2d(x, weight, None, self.stride, self.padding)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d over the leading channels its input has; training updates only their statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[1]
        if k == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(
            x,
            self.running_mean[:k],
            self.running_var[:k],
            self.weight[:k],
            self.bias[:k],
            self.training,
            factor,
            self.eps,
        )


class ConvBn(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU): OFA's ConvLayer. `pool` > 1 average-pools first with that
    kernel and stride, then convolves with stride 1 (OFA's `avgpool_conv` shortcut)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        relu: bool = True,
        pool: int = 1,
        elastic: bool = False,
    ) -> None:
        super().__init__()
        self.pool, self.relu = pool, relu
        conv_stride = 1 if pool > 1 else stride
        if elastic:
            self.conv: nn.Module = ElasticConv2d(in_channels, out_channels, kernel_size, conv_stride)
            self.bn: nn.Module = ElasticBatchNorm2d(out_channels)
        else:
            self.conv = nn.Conv2d(
                in_channels, out_channels, kernel_size, conv_stride, padding=kernel_size // 2, bias=False
            )
            self.bn = nn.BatchNorm2d(out_channels)

    def set_active(self, out_channels: int | None) -> None:
        self.conv.set_active(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool, self.pool, ceil_mode=True)
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x

    @torch.no_grad()
    def fold_(self) -> None:
        """Fold the (eval-mode) BatchNorm into the convolution, which gains a bias; BatchNorm becomes
        Identity. Outputs are unchanged in eval mode."""
        if not isinstance(self.bn, nn.BatchNorm2d):
            return
        scale = self.bn.weight / torch.sqrt(self.bn.running_var + self.bn.eps)
        self.conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        self.conv.bias = nn.Parameter(self.bn.bias - self.bn.running_mean * scale)
        self.bn = nn.Identity()


class StemResidual(nn.Module):
    """OFA's input-stem ResidualBlock: x + conv(x), no activation after the sum."""

    def __init__(self, conv: ConvBn) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


@dataclass(frozen=True)
class BlockLayout:
    """One bottleneck block: its index in the super-network and its channel counts."""

    index: int
    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int
    downsample: bool


@dataclass(frozen=True)
class ResNetLayout:
    """Every channel count and kept layer of one (sub-)network."""

    channels: int
    stem_mid: int
    stem_out: int
    stem_stride: int
    stem_residual: bool
    max_pool: bool
    blocks: tuple[BlockLayout, ...]
    num_labels: int


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 convolutions plus the shortcut (a pooled 1x1 conv where the shape
    changes), ReLU after the sum: OFA's ResNetBottleneckBlock."""

    def __init__(self, layout: BlockLayout, elastic: bool) -> None:
        super().__init__()
        mid, out = layout.mid_channels, layout.out_channels
        self.conv1 = ConvBn(layout.in_channels, mid, 1, elastic=elastic)
        self.conv2 = ConvBn(mid, mid, 3, layout.stride, elastic=elastic)
        self.conv3 = ConvBn(mid, out, 1, relu=False, elastic=elastic)
        self.downsample = (
            ConvBn(layout.in_channels, out, 1, relu=False, pool=layout.stride, elastic=elastic)
            if layout.downsample
            else None
        )

    def set_active(self, mid_channels: int, out_channels: int) -> None:
        self.conv1.set_active(mid_channels)
        self.conv2.set_active(mid_channels)
        self.conv3.set_active(out_channels)
        if self.downsample is not None:
            self.downsample.set_active(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # main path first: parameters used in registration order keep a non-strict export's graph equal to
        # a strict one's (see PatchEmbeddings)
        out = self.conv3(self.conv2(self.conv1(x)))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """The network of a `ResNetLayout`: forward(pixel_values) -> logits.

    Built with `elastic=False` it is the plain network an extraction returns (no data-dependent control
    flow). With `elastic=True` it is the super-network's body, whose `skipped` stem conv and blocks do not
    run (set by the super-network for its active sub-network).
    """

    input_names = ("pixel_values",)

    def __init__(self, layout: ResNetLayout, *, elastic: bool = False) -> None:
        super().__init__()
        self.max_pool = layout.max_pool
        self.skipped: frozenset[str] = frozenset()
        stem = {
            "0": ConvBn(layout.channels, layout.stem_mid, 3, layout.stem_stride, elastic=elastic),
            "1": StemResidual(ConvBn(layout.stem_mid, layout.stem_mid, 3, elastic=elastic)),
            "2": ConvBn(layout.stem_mid, layout.stem_out, 3, elastic=elastic),
        }
        if not layout.stem_residual:
            del stem["1"]
        self.input_stem = nn.ModuleDict(stem)
        self.blocks = nn.ModuleDict({str(b.index): Bottleneck(b, elastic) for b in layout.blocks})
        features = layout.blocks[-1].out_channels if layout.blocks else layout.stem_out
        linear = ElasticLinear if elastic else nn.Linear
        self.classifier = nn.ModuleDict({"linear": linear(features, layout.num_labels)})

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values
        for key, layer in self.input_stem.items():
            if f"input_stem.{key}" not in self.skipped:
                x = layer(x)
        if self.max_pool:
            x = F.max_pool2d(x, 3, 2, 1)
        for key, block in self.blocks.items():
            if key not in self.skipped:
                x = block(x)
        return self.classifier["linear"](x.mean(dim=(2, 3)))


@torch.no_grad()
def recalibrate_batchnorm_(model: nn.Module, inputs: Iterable[tuple[torch.Tensor, ...]]) -> None:
    """Re-estimate every BatchNorm's running mean and variance as the plain average over `inputs` (batches
    of the model's inputs) of the statistics the model in its current configuration produces. Nothing
    else changes; a model without BatchNorm is left alone (and `inputs` is not read)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        return
    was_training, momenta = model.training, [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    model.train()
    try:
        seen = 0
        for batch in inputs:
            model(*batch)
            seen += 1
        if not seen:
            raise ValueError("BatchNorm recalibration: no batches given")
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.train(was_training)


def fold_batchnorm_(model: nn.Module) -> nn.Module:
    """Fold every conv + BatchNorm pair (`ConvBn`) of a plain network; returns `model`, in eval mode."""
    model.eval()
    for layer in [m for m in model.modules() if isinstance(m, ConvBn)]:
        layer.fold_()
    return model
