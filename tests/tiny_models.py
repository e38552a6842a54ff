"""CI-sized models for the quantization, evaluation and latency tests (seconds to quantize and compile)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from simqnas.supernets.base import Arch, SuperNetwork

VOCAB, SEQ, HIDDEN, CLASSES = 64, 8, 32, 3


class TinyText(nn.Module):
    """Embedding -> `blocks` residual (Linear, ReLU, Linear) blocks -> a Conv2d over tokens -> classifier."""

    input_names = ("input_ids", "attention_mask")

    def __init__(self, blocks: int = 2, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"up": nn.Linear(hidden, 2 * hidden), "down": nn.Linear(2 * hidden, hidden)})
            for _ in range(blocks)
        )
        self.mix = nn.Conv2d(hidden, hidden, kernel_size=(1, 3), padding=(0, 1))
        self.classifier = nn.Linear(hidden, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        for block in self.blocks:
            x = x + block["down"](torch.relu(block["up"](x)))
        x = self.mix(x.transpose(1, 2).unsqueeze(2)).squeeze(2).transpose(1, 2)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        return self.classifier((x * mask).sum(1) / mask.sum(1))


def text_data(samples: int, seed: int) -> dict[str, torch.Tensor]:
    """Random tokens with labels a fixed random FP32 `TinyText` assigns (so accuracy is meaningful)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (samples, SEQ), generator=generator)
    attention_mask = torch.ones(samples, SEQ, dtype=torch.long)
    attention_mask[: samples // 2, SEQ // 2 :] = 0
    with torch.no_grad():
        labels = teacher()(input_ids, attention_mask).argmax(-1)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def teacher() -> TinyText:
    torch.manual_seed(0)
    return TinyText().eval()


class TinySuperNetwork(SuperNetwork, TinyText):
    """`TinyText` whose elastic depth (`num_blocks`) drops trailing blocks on extraction."""

    family = "tiny"
    input_names = TinyText.input_names

    def __init__(self) -> None:
        TinyText.__init__(self, blocks=2)

    def set_active(self, arch: Arch | None) -> None:
        raise NotImplementedError("TinySuperNetwork only extracts")

    def extract(self, arch: Arch) -> nn.Module:
        sub = TinyText(blocks=arch["num_blocks"][0])
        sub.load_state_dict(self.state_dict(), strict=False)
        return sub

    def quantizable_layers(self) -> list[str]:
        return [n for n, m in self.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]

    def largest_arch(self) -> Arch:
        return {"num_blocks": [2]}

    def smallest_arch(self) -> Arch:
        return {"num_blocks": [1]}

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        data = text_data(batch_size, seed=0)
        return tuple(data[name] for name in self.input_names)

    def hyperparameters(self) -> dict[str, Any]:
        return {}
