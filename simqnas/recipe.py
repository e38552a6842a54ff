"""The training recipe: optimizer settings, learning-rate schedule and regularization of one training run.

Left at their defaults, these are what every training here has always used (AdamW with weight decay 0.01 on
matrices, 10% linear warm-up then linear decay, gradient norm clipped at 1.0, plain cross-entropy), the
Hugging Face recipe for fine-tuning BERT. Training a ViT from scratch on ImageNet needs more: DeiT's recipe
(Touvron et al., "Training data-efficient image transformers & distillation through attention", ICML 2021,
Table 9: AdamW, lr 5e-4 x batch/512, weight decay 0.05, cosine decay after 5 warm-up epochs of 300, label
smoothing 0.1, Mixup 0.8, CutMix 1.0, no gradient clipping) is the one `config/paper.yaml` follows, and these
settings express it (RandAugment, random erasing, stochastic depth and repeated augmentation are not
implemented; random-resized crop and flip are, in `simqnas.data.streaming`).

Mixup and CutMix draw from the step's shared stream (one draw, the same in every data-parallel process), so a
mixed step is as reproducible and resumable as any other; each process mixes within its own share of the
global batch, as DeiT's implementation does per GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Recipe:
    """Optimizer, schedule and regularization settings (see the module docstring for the defaults)."""

    weight_decay: float = 0.01
    #: share of all steps the learning rate warms up over, linearly from lr / warm-up steps
    warmup_ratio: float = 0.1
    #: after the warm-up: "linear" (to 0) or "cosine" (half a cosine to 0)
    schedule: str = "linear"
    #: gradient norm clipping; 0 turns it off
    max_grad_norm: float = 1.0
    label_smoothing: float = 0.0
    #: Beta(alpha, alpha) mixing weight of Mixup; 0 turns it off
    mixup: float = 0.0
    #: Beta(alpha, alpha) area share of CutMix; 0 turns it off (with both on, each step takes one at random)
    cutmix: float = 0.0

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Recipe:
        return cls(**{f.name: settings[f.name] for f in fields(cls) if f.name in settings})

    def changed(self) -> dict[str, Any]:
        """The settings that differ from the defaults: what a checkpoint records, so that checkpoints of
        trainings on the default recipe stay those of earlier versions."""
        default = asdict(Recipe())
        return {k: v for k, v in asdict(self).items() if v != default[k]}

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        """AdamW; biases and normalization weights (vectors) are not decayed."""
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr,
        )

    def learning_rate(self, lr: float, step: int, total: int) -> float:
        warmup = max(1, int(self.warmup_ratio * total))
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        if self.schedule == "cosine":
            return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return lr * max(0.0, 1.0 - progress)

    def clip(self, model: nn.Module) -> float:
        """Clip the gradient norm (if on); the norm before clipping, to check it is finite."""
        max_norm = self.max_grad_norm if self.max_grad_norm > 0 else math.inf
        return float(nn.utils.clip_grad_norm_(model.parameters(), max_norm))

    def mix(
        self, batch: dict[str, torch.Tensor], input_name: str, rng: np.random.Generator
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, float] | None]:
        """The batch with Mixup or CutMix applied to its images (`input_name`), and the partner labels with
        the weight of the batch's own labels; (batch, None) when the recipe does not mix."""
        if not self.mixes:
            return batch, None
        # one draw from the shared stream; the process's own batch share is permuted from it
        local = np.random.default_rng(int(rng.integers(2**63)))
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or local.random() < 0.5)
        alpha = self.cutmix if use_cutmix else self.mixup
        lam = float(local.beta(alpha, alpha))
        images = batch[input_name]
        partner = torch.from_numpy(local.permutation(len(images))).to(images.device)
        if use_cutmix:
            mixed, lam = _cut_and_paste(images, images[partner], lam, local)
        else:
            mixed = lam * images + (1.0 - lam) * images[partner]
        return {**batch, input_name: mixed}, (batch["labels"][partner], lam)

    def loss(
        self, logits: torch.Tensor, labels: torch.Tensor, mixed: tuple[torch.Tensor, float] | None
    ) -> torch.Tensor:
        """Cross-entropy (label-smoothed if set), against the mixture of two label sets on a mixed batch."""
        own = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        if mixed is None:
            return own
        partner_labels, lam = mixed
        partner = F.cross_entropy(logits, partner_labels, label_smoothing=self.label_smoothing)
        return lam * own + (1.0 - lam) * partner


def split_recipe(settings: Mapping[str, Any]) -> tuple[dict[str, Any], Recipe]:
    """A training section's hyperparameters without the recipe's settings, and the recipe."""
    names = {f.name for f in fields(Recipe)}
    return {k: v for k, v in settings.items() if k not in names}, Recipe.from_settings(settings)


def _cut_and_paste(
    images: torch.Tensor, partner: torch.Tensor, lam: float, rng: np.random.Generator
) -> tuple[torch.Tensor, float]:
    """CutMix: a box of about (1 - lam) of the image area from the partner images, placed uniformly at
    random and clipped to the image; returns the images and the weight of their own labels, corrected to the
    box's actual area."""
    height, width = images.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(cy - box_h // 2, 0), min(cy + box_h // 2, height)
    left, right = max(cx - box_w // 2, 0), min(cx + box_w // 2, width)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (height * width)
