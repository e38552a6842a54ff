"""Image inputs of the vision transformers (ViT, Multiway): patch embedding, from-scratch initialisation."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbeddings(nn.Module):
    """Non-overlapping patches -> tokens, a learned [CLS] token in front, learned position embeddings."""

    def __init__(
        self, channels: int, image_size: int, patch_size: int, hidden_size: int, dropout: float
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"patch_size: {patch_size} does not divide image_size {image_size}")
        patches = (image_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, patches + 1, hidden_size))
        self.patch_embeddings = nn.ModuleDict(
            {"projection": nn.Conv2d(channels, hidden_size, kernel_size=patch_size, stride=patch_size)}
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(batch, channels, height, width) -> (batch, 1 + patches, hidden)."""
        # [CLS] and positions before the patches: the module's own parameters come first in a non-strict
        # export as in a strict one (ordered by use), so the two graphs agree (see TransformerLayer)
        cls = self.cls_token.expand(pixel_values.shape[0], -1, -1) + self.position_embeddings[:, :1]
        patches = self.patch_embeddings["projection"](pixel_values).flatten(2).transpose(1, 2)
        return self.dropout(torch.cat([cls, patches + self.position_embeddings[:, 1:]], dim=1))


def init_vit_weights(module: nn.Module) -> None:
    """Hugging Face ViT's initialisation (truncated normal, std 0.02), for training from scratch."""
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, PatchEmbeddings):
        nn.init.trunc_normal_(module.cls_token, std=0.02)
        nn.init.trunc_normal_(module.position_embeddings, std=0.02)
