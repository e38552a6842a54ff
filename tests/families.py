"""Tiny super-networks of every family with inputs and a search space, for the family-parameterized tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from simqnas.space import SearchSpace
from simqnas.supernets.base import SuperNetwork
from simqnas.supernets.bert import BertSuperNetwork
from simqnas.supernets.multiway import MultiwaySuperNetwork
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
