"""OFA-style elastic bottleneck ResNet (Once-for-All's OFAResNets) as a super-network, trained from scratch
with the sandwich rule or loaded from an OFA-ResNet checkpoint.

Elastic parameters (the paper's Table 3; genes per `config/spaces/paper/resnet.yaml`):
  depth         [d_stem, d_0 .. d_{S-1}]   the stem's residual conv runs only at the largest depth choice;
                                            stage s keeps its first base_depths[s] + d_s blocks
  expand_ratio  one per block               bottleneck channels = make_divisible(out * ratio)
  width_mult    [w_stem_mid, w_stem_out, w_0 .. w_{S-1}]   channels = make_divisible(base * mult)
Genes of dropped blocks are ignored. Values must be among the network's own choices (`depth_choices`,
`expand_ratios`, `width_mults`), which fix the super-network's (largest) shape.

Defaults are OFA-ResNet50 on ImageNet (stem 64, stage widths 256-2048, base depths [2, 2, 4, 2] + [0, 1, 2],
expand ratios [0.2, 0.25, 0.35], width multipliers [0.65, 0.8, 1.0], stride-2 stem and max-pooling). A fixed
network (a ResNet50/101/152-shaped reference) is the same class with one choice per parameter, e.g. base
depths [3, 4, 6, 3], depth choices [0], expand ratios [0.25], width multipliers [1.0].

Quantizable layers, in gene order: the three stem convs, per block conv1, conv2, conv3 and, where the shape
changes, the shortcut conv, then the classifier. BatchNorm is re-estimated per sub-network and folded into
the convolutions before quantization (`deployable`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simqnas.data.image import image_geometry
from simqnas.nn.elastic import copy_prefix_weights
from simqnas.nn.quantizable import quantizable_layers
from simqnas.nn.resnet import (
    BlockLayout,
    ResNet,
    ResNetLayout,
    fold_batchnorm_,
    make_divisible,
    recalibrate_batchnorm_,
)
from simqnas.supernets.base import (
    Arch,
    SuperNetwork,
    arch_values,
    integer_value,
    load_named_weights,
    read_checkpoint,
)

log = logging.getLogger(__name__)

ARCH_PARAMS = ("depth", "expand_ratio", "width_mult")
#: the classifier weight under OFA's dynamic-module names
OFA_HEAD = "classifier.linear.linear.weight"


def ofa_key_to_static(key: str) -> str:
    """An OFA-ResNet checkpoint key as the static network names it: OFA's dynamic modules wrap the plain
    layer once more (`<x>.conv.conv.weight`, `<x>.bn.bn.<stat>`, `classifier.linear.linear.<p>`)."""
    if key.endswith(".conv.conv.weight"):
        return key.removesuffix(".conv.conv.weight") + ".conv.weight"
    return key.replace(".bn.bn.", ".bn.").replace(".linear.linear.", ".linear.")


class ResNetSuperNetwork(SuperNetwork, ResNet):
    """Elastic depth per stage (and stem), expand ratio per block, width multiplier per stage (and stem)."""

    family = "resnet"
    modality = "image"
    architecture_keys = frozenset(
        {
            "stem_channels",
            "stage_widths",
            "base_depths",
            "depth_choices",
            "expand_ratios",
            "width_mults",
            "stem_stride",
            "max_pool",
            "channel_divisor",
        }
    )

    def __init__(
        self,
        *,
        stem_channels: int = 64,
        stage_widths: Sequence[int] = (256, 512, 1024, 2048),
        base_depths: Sequence[int] = (2, 2, 4, 2),
        depth_choices: Sequence[int] = (0, 1, 2),
        expand_ratios: Sequence[float] = (0.2, 0.25, 0.35),
        width_mults: Sequence[float] = (0.65, 0.8, 1.0),
        stem_stride: int = 2,
        max_pool: bool = True,
        channel_divisor: int = 8,
        image_size: int = 224,
        channels: int = 3,
        num_labels: int = 1000,
    ) -> None:
        hyperparameters = {
            "stem_channels": stem_channels,
            "stage_widths": list(stage_widths),
            "base_depths": list(base_depths),
            "depth_choices": sorted(depth_choices),
            "expand_ratios": sorted(expand_ratios),
            "width_mults": sorted(width_mults),
            "stem_stride": stem_stride,
            "max_pool": max_pool,
            "channel_divisor": channel_divisor,
            "image_size": image_size,
            "channels": channels,
            "num_labels": num_labels,
        }
        if len(stage_widths) != len(base_depths) or not stage_widths:
            raise ValueError(f"stage_widths: {len(stage_widths)} stages, base_depths has {len(base_depths)}")
        for name in ("depth_choices", "expand_ratios", "width_mults"):
            if not hyperparameters[name]:
                raise ValueError(f"{name}: needs at least one choice")
        if min(depth_choices) < 0 or min(base_depths) + min(depth_choices) < 1:
            raise ValueError(f"depth_choices: {list(depth_choices)} leaves a stage without blocks")
        self._hyperparameters = hyperparameters
        super().__init__(self.layout(None), elastic=True)

    # -- shapes ------------------------------------------------------------------------------------------

    @property
    def stage_blocks(self) -> list[list[int]]:
        """Block indices of each stage (at the largest depth)."""
        hp, start, stages = self._hyperparameters, 0, []
        for base in hp["base_depths"]:
            count = base + max(hp["depth_choices"])
            stages.append(list(range(start, start + count)))
            start += count
        return stages

    def _channels(self, base: float, mult: float) -> int:
        return make_divisible(base * mult, self._hyperparameters["channel_divisor"])

    def _stem_widths(self, mult_mid: float, mult_out: float) -> tuple[int, int]:
        divisor, stem = self._hyperparameters["channel_divisor"], self._hyperparameters["stem_channels"]
        return make_divisible(self._channels(stem, mult_mid) // 2, divisor), self._channels(stem, mult_out)

    def _stage_has_shortcut_conv(self, stage: int) -> bool:
        """OFA: the first block of a stage gets a conv shortcut unless its stride is 1 and its input and
        output channel choices are the same (decided for the super-network, not per sub-network)."""
        if stage > 0:
            return True  # stride 2
        hp = self._hyperparameters
        stem_out = [self._channels(hp["stem_channels"], m) for m in hp["width_mults"]]
        return stem_out != [self._channels(hp["stage_widths"][0], m) for m in hp["width_mults"]]

    def layout(self, arch: Arch | None) -> ResNetLayout:
        """The channel counts and kept layers of `arch` (None: the full network), validated."""
        depth, expand, width = self.resolve(arch)
        hp = self._hyperparameters
        stem_mid, stem_out = self._stem_widths(width[0], width[1])
        blocks, in_channels = [], stem_out
        for stage, indices in enumerate(self.stage_blocks):
            out = self._channels(hp["stage_widths"][stage], width[2 + stage])
            for position, index in enumerate(indices[: hp["base_depths"][stage] + depth[1 + stage]]):
                mid = make_divisible(round(out * expand[index]), hp["channel_divisor"])
                first = position == 0
                stride = (1 if stage == 0 else 2) if first else 1
                shortcut = first and self._stage_has_shortcut_conv(stage)
                blocks.append(BlockLayout(index, in_channels, mid, out, stride, shortcut))
                in_channels = out
        return ResNetLayout(
            channels=hp["channels"],
            stem_mid=stem_mid,
            stem_out=stem_out,
            stem_stride=hp["stem_stride"],
            stem_residual=depth[0] >= max(hp["depth_choices"]),
            max_pool=hp["max_pool"],
            blocks=tuple(blocks),
            num_labels=hp["num_labels"],
        )

    def resolve(self, arch: Arch | None) -> tuple[list[int], list[float], list[float]]:
        """(depth genes, expand ratio per block, width multipliers); missing parameters take the largest
        choice, a per-block or per-stage parameter given once applies to all, `quantization` is ignored."""
        arch = {k: v for k, v in (arch or {}).items() if k != "quantization"}
        for key in arch:
            if key not in ARCH_PARAMS:
                raise ValueError(f"arch: unknown parameter '{key}' (resnet has {', '.join(ARCH_PARAMS)})")
        hp = self._hyperparameters
        stages = len(hp["base_depths"])
        blocks = sum(len(indices) for indices in self.stage_blocks)
        depth = self._genes(arch, "depth", stages + 1, hp["depth_choices"], integer=True)
        expand = self._genes(arch, "expand_ratio", blocks, hp["expand_ratios"])
        width = self._genes(arch, "width_mult", stages + 2, hp["width_mults"])
        return depth, expand, width

    @staticmethod
    def _genes(arch: Arch, param: str, count: int, choices: list[Any], integer: bool = False) -> list[Any]:
        def check(label: str, value: Any) -> Any:
            if integer:
                value = integer_value(label, value)
            if isinstance(value, bool) or value not in choices:
                raise ValueError(f"{label}: {value!r} is not one of the network's {choices}")
            return value

        return arch_values(arch, param, count, max(choices), check)

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], dataset: Mapping[str, Any]) -> ResNetSuperNetwork:
        """A fresh network of `spec["architecture"]` for the dataset's images and classes, or one loaded from
        an OFA-ResNet checkpoint (`spec["pretrained"]`, its shape given by `architecture`; a new
        classifier for another class count)."""
        geometry = image_geometry(dataset)
        architecture = dict(spec.get("architecture") or {})
        shape = {"image_size": geometry.image_size, "channels": geometry.channels}
        if spec.get("pretrained"):
            return cls.from_ofa_checkpoint(
                spec["pretrained"], num_labels=geometry.num_classes, **architecture, **shape
            )
        return cls(**architecture, **shape, num_labels=geometry.num_classes)

    @classmethod
    def from_ofa_checkpoint(
        cls, path: str | Path, num_labels: int | None = None, **architecture: Any
    ) -> ResNetSuperNetwork:
        """Build from an OFA-ResNet checkpoint (the released `ofa_resnet50` layout: a torch file whose
        `state_dict` holds OFA's dynamic-module key names, or the static names; read with weights_only).

        `architecture` gives the shape (constructor arguments; default OFA-ResNet50); a tensor of another
        shape is an error naming its key. A classifier for another class count is replaced by a fresh one.
        """
        path = Path(path)
        checkpoint = read_checkpoint(path)
        head = [checkpoint[k] for k in ("classifier.linear.weight", OFA_HEAD) if k in checkpoint]
        if not head:
            raise ValueError(f"{path}: not an OFA-ResNet checkpoint (no classifier.linear weights)")
        checkpoint_labels = head[0].shape[0]
        network = cls(**architecture, num_labels=num_labels or checkpoint_labels)
        # static names are ours already (the stem's residual conv is `input_stem.1.conv.conv` in both)
        own = network.state_dict()
        state = {key if key in own else ofa_key_to_static(key): value for key, value in checkpoint.items()}
        if num_labels is not None and num_labels != checkpoint_labels:
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        fresh = load_named_weights(network, state, lambda key: key, source=str(path))
        if fresh:
            log.warning("%s: initialised fresh (not in the checkpoint): %s", path, ", ".join(fresh))
        return network

    # -- the SuperNetwork interface ----------------------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._hyperparameters)

    def largest_arch(self) -> Arch:
        return self._uniform_arch(max)

    def smallest_arch(self) -> Arch:
        return self._uniform_arch(min)

    def _uniform_arch(self, pick: Callable[[Sequence[Any]], Any]) -> Arch:
        hp = self._hyperparameters
        stages = len(hp["base_depths"])
        return {
            "depth": [pick(hp["depth_choices"])] * (stages + 1),
            "expand_ratio": [pick(hp["expand_ratios"])] * sum(len(b) for b in self.stage_blocks),
            "width_mult": [pick(hp["width_mults"])] * (stages + 2),
        }

    def quantizable_layers(self) -> list[str]:
        """Every Conv2d and the classifier of the full extracted network but the fixed ones, module order."""
        with torch.device("meta"):  # names only: no weights allocated
            network = ResNet(self.layout(None))
        fixed = self.fixed_precisions()
        return [name for name in quantizable_layers(network) if name not in fixed]

    def set_active(self, arch: Arch | None) -> None:
        layout = self.layout(arch)
        kept = {str(block.index): block for block in layout.blocks}
        self.skipped = frozenset(
            ([] if layout.stem_residual else ["input_stem.1"]) + [k for k in self.blocks if k not in kept]
        )
        self.input_stem["0"].set_active(layout.stem_mid)
        self.input_stem["1"].conv.set_active(layout.stem_mid)
        self.input_stem["2"].set_active(layout.stem_out)
        for key, block in kept.items():
            self.blocks[key].set_active(block.mid_channels, block.out_channels)
        self.classifier["linear"].set_active(in_features=layout.blocks[-1].out_channels)

    def extract(self, arch: Arch) -> nn.Module:
        """The static sub-network in eval mode (dropped convs and blocks absent, sliced weights copied,
        BatchNorm statistics as the super-network holds them: `deployable` re-estimates them)."""
        return copy_prefix_weights(self, ResNet(self.layout(arch))).eval()

    def recalibrate_(self, inputs: Iterable[tuple[torch.Tensor, ...]]) -> None:
        recalibrate_batchnorm_(self, inputs)

    def deployable(self, subnet: nn.Module, inputs: Iterable[tuple[torch.Tensor, ...]]) -> nn.Module:
        recalibrate_batchnorm_(subnet, inputs)
        return fold_batchnorm_(subnet)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        hp = self._hyperparameters
        generator = torch.Generator().manual_seed(0)
        shape = (batch_size, hp["channels"], hp["image_size"], hp["image_size"])
        return (torch.rand(shape, generator=generator) * 2 - 1,)  # pixel values span [-1, 1]
