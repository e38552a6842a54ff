"""Tiny super-networks of every family with inputs and a search space, for the family-parameterized tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from simqnas.space import SearchSpace
from simqnas.supernets.base import SuperNetwork
from simqnas.supernets.bert import BertSuperNetwork
from simqnas.supernets.multiway import MultiwaySuperNetwork
from simqnas.supernets.resnet import ResNetSuperNetwork
from simqnas.supernets.vit import VitSuperNetwork

#: constructor arguments of each family's tiny network (3 layers of 4 heads, FFN 16, hidden 8)
TINY: dict[str, dict[str, Any]] = {
    "bert": {
        "num_layers": 3,
        "num_heads": 4,
        "ffn_size": 16,
        "hidden_size": 8,
        "vocab_size": 40,
        "max_position": 12,
        "sequence_length": 6,
    },
    "vit": {
        "num_layers": 3,
        "num_heads": 4,
        "ffn_size": 16,
        "hidden_size": 8,
        "patch_size": 4,
        "image_size": 8,
        "channels": 1,
        "num_labels": 3,
    },
}
TINY["multiway"] = dict(TINY["vit"])
CLASSES = {"bert": BertSuperNetwork, "vit": VitSuperNetwork, "multiway": MultiwaySuperNetwork}
FAMILY_NAMES = tuple(TINY)


@dataclass(frozen=True)
class Family:
    name: str

    def build(self, seed: int = 0) -> SuperNetwork:
        torch.manual_seed(seed)
        return CLASSES[self.name](**TINY[self.name]).eval()

    def inputs(self, rows: int = 4, seed: int = 1) -> tuple[torch.Tensor, ...]:
        """A batch the family's network takes (text: some padding)."""
        generator = torch.Generator().manual_seed(seed)
        spec = TINY[self.name]
        if self.name == "bert":
            shape = (rows, spec["sequence_length"])
            input_ids = torch.randint(0, spec["vocab_size"], shape, generator=generator)
            mask = torch.ones_like(input_ids)
            if rows > 1:
                mask[1, 2:] = 0
            return input_ids, mask
        shape = (rows, spec["channels"], spec["image_size"], spec["image_size"])
        return (torch.rand(shape, generator=generator) * 2 - 1,)

    def data(self, rows: int, seed: int, labels_from: SuperNetwork | None = None) -> dict[str, torch.Tensor]:
        """Named inputs and labels (the predictions of `labels_from`, else random classes)."""
        network = labels_from or self.build()
        inputs = self.inputs(rows, seed)
        if labels_from is not None:
            with torch.no_grad():
                labels = labels_from(*inputs).argmax(-1)
        else:
            labels = torch.randint(0, 2, (rows,), generator=torch.Generator().manual_seed(seed))
        return dict(zip(network.input_names, inputs, strict=True)) | {"labels": labels}

    def space(self, supernet: SuperNetwork) -> SearchSpace:
        return SearchSpace.from_dict(
            {
                "elastic": {
                    "num_layers": {"count": 1, "choices": [1, 2, 3]},
                    "num_heads": {"count": 3, "choices": [1, 2, 3, 4]},
                    "ffn_size": {"count": 3, "choices": [3, 8, 16]},
                },
                "quantization": {"layers": supernet.quantizable_layers(), "choices": ["int8", "fp32"]},
            }
        )


#: the tiny OFA-style ResNet: 2 stages of 1 + [0, 1] blocks, each stage's first with a shortcut conv
TINY_RESNET: dict[str, Any] = {
    "stem_channels": 8,
    "stage_widths": [16, 32],
    "base_depths": [1, 1],
    "depth_choices": [0, 1],
    "expand_ratios": [0.5, 1.0],
    "width_mults": [0.5, 1.0],
    "stem_stride": 1,
    "max_pool": False,
    "channel_divisor": 2,
    "image_size": 8,
    "channels": 1,
    "num_labels": 3,
}


def tiny_resnet(seed: int = 0) -> ResNetSuperNetwork:
    """The tiny ResNet in eval mode, BatchNorm parameters and statistics random (not the identity), so that
    slicing, re-estimating and folding them shows in the logits."""
    torch.manual_seed(seed)
    network = ResNetSuperNetwork(**TINY_RESNET)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
    return network.eval()


def tiny_resnet_space(network: ResNetSuperNetwork) -> SearchSpace:
    """Its joint space; quantization genes: 0-2 stem, 3-6 block 0 (with its shortcut), 7-9 block 1, 10-13
    block 2 (with its shortcut), 14-16 block 3, 17 classifier; blocks 1 and 3 are the droppable ones."""
    return SearchSpace.from_dict(
        {
            "elastic": {
                "depth": {"count": 3, "choices": [0, 1]},
                "expand_ratio": {"count": 4, "choices": [0.5, 1.0]},
                "width_mult": {"count": 4, "choices": [0.5, 1.0]},
            },
            "quantization": {"layers": network.quantizable_layers(), "choices": ["int8", "fp32"]},
            "depth": [
                {"param": "depth", "gene": 0, "units": [{"quantization": [1]}]},
                {"param": "depth", "gene": 1, "units": [{"expand_ratio": [1], "quantization": [7, 8, 9]}]},
                {"param": "depth", "gene": 2, "units": [{"expand_ratio": [3], "quantization": [14, 15, 16]}]},
            ],
        }
    )


def image_batch(rows: int, seed: int, size: int = 8) -> torch.Tensor:
    """Grey images of `size` x `size`, pixel values in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((rows, 1, size, size), generator=generator) * 2 - 1
