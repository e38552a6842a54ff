"""A BEiT-3-style Multiway Transformer for image classification as an elastic super-network, trained from
scratch through its vision expert, or loaded from a BEiT-3 checkpoint.

Multiway layers (`simqnas.nn.elastic.TransformerLayer` with `sub_layernorm` and a `language` expert): one
self-attention shared by every modality and one feed-forward expert per modality, pre-norm with BEiT-3's
Sub-LN (a LayerNorm before the attention output projection and before fc2). An image runs the layer's own
FFN, the vision expert; the language expert is part of the super-network (and of a loaded checkpoint) but
no image passes through it, so an extracted image classifier leaves it out. The head is BEiT-3's image
classification head: LayerNorm (`fc_norm`) of the mean of the patch tokens, then a Linear (`head`).
Elastic depth, heads per layer and FFN size per layer (of every expert): `simqnas.supernets.transformer`.

Quantizable layers, in gene order: the patch embedding's Conv2d, per layer query, key, value, attention
output, vision fc1, vision fc2, then the head (1 + 6 L + 1). With `fixed_ends` ("int8" or "fp32") the patch
embedding and the head keep that precision and are not searched: 6 L genes, the paper's BEiT-3 space (72).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simqnas.data.image import image_geometry
from simqnas.nn.elastic import Encoder
from simqnas.nn.quantizable import PRECISIONS
from simqnas.nn.vision import PatchEmbeddings, init_vit_weights
from simqnas.supernets.base import load_named_weights, read_checkpoint
from simqnas.supernets.transformer import TRANSFORMER_SHAPE, TransformerSuperNetwork

log = logging.getLogger(__name__)

#: the modalities besides vision whose FFN experts the super-network holds
OTHER_MODALITIES = ("language",)
#: BEiT-3 (torchscale) numbers positions from 2, as fairseq does: rows 0 and 1 of its table are unused
BEIT3_POSITION_OFFSET = 2
#: BEiT-3's attention head size (base: 768 / 12, large: 1024 / 16); checkpoints do not store the head count
BEIT3_HEAD_DIM = 64
#: torchscale's LayerNorm epsilon (EncoderConfig.layernorm_eps) and torch's default for BEiT-3's fc_norm
BEIT3_EPS = 1e-5

#: official BEiT-3 key (torchscale Multiway names: branch A = vision, B = language) -> ours; keys of the
#: language branch's attention, its LayerNorms outside the FFN, text embeddings and text positions have no
#: counterpart (our attention is shared) and are reported as unused
_LAYER = r"beit3\.encoder\.layers\.(\d+)\."
#: within layer i: official name -> ours
BEIT3_LAYER_NAMES = {
    "self_attn.q_proj.A.": "attention.self.query.",
    "self_attn.k_proj.A.": "attention.self.key.",
    "self_attn.v_proj.A.": "attention.self.value.",
    "self_attn.out_proj.A.": "attention.output.dense.",
    "self_attn.inner_attn_ln.A.": "attention.output.sub_layernorm.",
    "self_attn_layer_norm.A.": "layernorm_before.",
    "final_layer_norm.A.": "layernorm_after.",
    "ffn.A.fc1.": "intermediate.dense.",
    "ffn.A.ffn_layernorm.": "output.sub_layernorm.",
    "ffn.A.fc2.": "output.dense.",
    "final_layer_norm.B.": "experts.language.layernorm.",
    "ffn.B.fc1.": "experts.language.intermediate.dense.",
    "ffn.B.ffn_layernorm.": "experts.language.output.sub_layernorm.",
    "ffn.B.fc2.": "experts.language.output.dense.",
}
BEIT3_RENAMES = (
    (re.compile(r"^beit3\.vision_embed\.proj\."), "beit3.embeddings.patch_embeddings.projection."),
    (re.compile(r"^beit3\.vision_embed\.cls_token$"), "beit3.embeddings.cls_token"),
    (re.compile(r"^beit3\.encoder\.layer_norm\.A\."), "beit3.layernorm."),
    *(
        (re.compile(f"^{_LAYER}{re.escape(theirs)}"), rf"beit3.encoder.layer.\1.{ours}")
        for theirs, ours in BEIT3_LAYER_NAMES.items()
    ),
)
VISION_POSITIONS = "beit3.encoder.embed_positions.A.weight"
#: the layers `fixed_ends` keeps out of the search
END_LAYERS = ("beit3.embeddings.patch_embeddings.projection", "head")
#: BEiT-3 checkpoint keys a classifier never uses (masked-image-modelling token)
IGNORED_CHECKPOINT_KEYS = ("beit3.vision_embed.mask_token",)


class MultiwayClassifier(nn.Module):
    """Multiway Transformer + BEiT-3 image-classification head with per-layer head counts and FFN sizes.

    With `elastic=False` and no `experts` it is the image classifier `MultiwaySuperNetwork.extract` returns.
    """

    input_names = ("pixel_values",)

    def __init__(
        self,
        num_heads: Sequence[int],
        ffn_sizes: Sequence[int],
        *,
        head_dim: int,
        hidden_size: int,
        image_size: int,
        patch_size: int,
        channels: int,
        num_labels: int,
        activation: str,
        eps: float,
        dropout: float,
        attention_dropout: float,
        final_layernorm: bool,
        experts: Sequence[str] = (),
        elastic: bool = False,
    ) -> None:
        super().__init__()
        encoder = Encoder.of_transformer_layers(
            hidden_size,
            num_heads,
            ffn_sizes,
            head_dim=head_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            eps=eps,
            norm_first=True,
            sub_layernorm=True,
            experts=experts,
            elastic=elastic,
        )
        self.beit3 = nn.ModuleDict(
            {
                "embeddings": PatchEmbeddings(channels, image_size, patch_size, hidden_size, dropout),
                "encoder": encoder,
            }
        )
        if final_layernorm:
            self.beit3["layernorm"] = nn.LayerNorm(hidden_size, eps=eps)
        self.fc_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.head = nn.Linear(hidden_size, num_labels)
        self.apply(init_vit_weights)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Hidden states (batch, 1 + patches, hidden) of the vision path."""
        x = self.beit3["encoder"](self.beit3["embeddings"](pixel_values), None)
        return self.beit3["layernorm"](x) if "layernorm" in self.beit3 else x

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc_norm(self.encode(pixel_values)[:, 1:].mean(dim=1)))


class MultiwaySuperNetwork(TransformerSuperNetwork, MultiwayClassifier):
    """Elastic Multiway classifier: layers, heads per layer and FFN neurons per layer (every expert).

    The defaults are the Fashion-MNIST super-network of docs/search-spaces.md: the ViT family's shape
    (12 layers, 12 heads of 16, hidden 192, FFN 768, 4 x 4 patches of 28 x 28 grey images) as Multiway
    layers, BEiT-3-base's structure at a quarter of its width.
    """

    family = "multiway"
    modality = "image"
    architecture_keys = TRANSFORMER_SHAPE | {"fixed_ends"}
    static_class = MultiwayClassifier
    encoder_path = "beit3.encoder"

    def __init__(
        self,
        *,
        num_layers: int = 12,
        num_heads: int = 12,
        ffn_size: int = 768,
        hidden_size: int = 192,
        patch_size: int = 4,
        image_size: int = 28,
        channels: int = 1,
        num_labels: int = 10,
        activation: str = "gelu",
        eps: float = BEIT3_EPS,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        final_layernorm: bool = False,
        experts: Sequence[str] = OTHER_MODALITIES,
        fixed_ends: str | None = None,
    ) -> None:
        if hidden_size % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide hidden_size {hidden_size}")
        if fixed_ends not in (None, *PRECISIONS):
            raise ValueError(f"fixed_ends: {fixed_ends!r} is not one of {', '.join(PRECISIONS)} or null")
        experts = list(experts)  # JSON-able hyperparameters
        hyperparameters = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        static_options = {
            "head_dim": hidden_size // num_heads,
            "hidden_size": hidden_size,
            "image_size": image_size,
            "patch_size": patch_size,
            "channels": channels,
            "num_labels": num_labels,
            "activation": activation,
            "eps": eps,
            "dropout": dropout,
            "attention_dropout": attention_dropout,
            "final_layernorm": final_layernorm,
        }
        super().__init__(
            [num_heads] * num_layers,
            [ffn_size] * num_layers,
            **static_options,
            experts=experts,
            elastic=True,
        )
        self._remember(hyperparameters, static_options)

    def fixed_precisions(self) -> dict[str, str]:
        """With `fixed_ends`, the patch embedding and the head are not searched (the paper's 72 genes)."""
        precision = self._hyperparameters["fixed_ends"]
        return {} if precision is None else dict.fromkeys(END_LAYERS, precision)

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], dataset: Mapping[str, Any]) -> MultiwaySuperNetwork:
        """From a BEiT-3 checkpoint (`spec["pretrained"]`, a new head for the dataset's classes) or, without
        one, a fresh network of `spec["architecture"]` (defaults: the Fashion-MNIST shape)."""
        geometry = image_geometry(dataset)
        shape = {"image_size": geometry.image_size, "channels": geometry.channels}
        architecture = dict(spec.get("architecture") or {})
        if spec.get("pretrained"):
            return cls.from_beit3_checkpoint(
                spec["pretrained"],
                num_labels=geometry.num_classes,
                num_heads=architecture.get("num_heads"),
                fixed_ends=architecture.get("fixed_ends"),
                expected=shape,
            )
        return cls(**architecture, **shape, num_labels=geometry.num_classes)

    @classmethod
    def from_beit3_checkpoint(
        cls,
        path: str | Path,
        num_labels: int | None = None,
        *,
        num_heads: int | None = None,
        fixed_ends: str | None = None,
        expected: Mapping[str, int] | None = None,
    ) -> MultiwaySuperNetwork:
        """Build from an official BEiT-3 checkpoint (torchscale key names; a `.pth` whose `model` entry is
        the state dict, read with weights_only, or `.safetensors`).

        The shape is read off the tensors; the head count is not stored (default: BEiT-3's head size 64).
        The attention and LayerNorms of the vision branch become the shared attention and the layer's own
        (vision) path; the language branch's FFNs become the language experts. A head whose class count
        differs from `num_labels` is replaced by a fresh one.
        """
        path = Path(path)
        state = read_checkpoint(path)
        try:
            hidden_size = state["beit3.vision_embed.cls_token"].shape[-1]
            projection = state["beit3.vision_embed.proj.weight"]
            positions = state[VISION_POSITIONS]
            ffn_size = state["beit3.encoder.layers.0.ffn.A.fc1.weight"].shape[0]
        except KeyError as error:
            raise ValueError(f"{path}: not a BEiT-3 checkpoint (no key {error})") from None
        layers = {int(m.group(1)) for key in state if (m := re.match(_LAYER, key))}
        patches = positions.shape[0] - BEIT3_POSITION_OFFSET - 1
        side = math.isqrt(patches)
        if side * side != patches:
            raise ValueError(
                f"{path}: {VISION_POSITIONS} has {positions.shape[0]} rows, not a square grid + 3"
            )
        kwargs = {
            "num_layers": len(layers),
            "num_heads": num_heads or max(1, hidden_size // BEIT3_HEAD_DIM),
            "ffn_size": ffn_size,
            "hidden_size": hidden_size,
            "patch_size": projection.shape[-1],
            "image_size": side * projection.shape[-1],
            "channels": projection.shape[1],
            "final_layernorm": "beit3.encoder.layer_norm.A.weight" in state,
            "experts": ["language"] if "beit3.encoder.layers.0.ffn.B.fc1.weight" in state else [],
            "fixed_ends": fixed_ends,
        }
        for key, value in (expected or {}).items():
            if kwargs[key] != value:
                raise ValueError(f"{path}: {key} is {kwargs[key]}, the dataset's is {value}")
        checkpoint_labels = state["head.weight"].shape[0] if "head.weight" in state else None
        network = cls(**kwargs, num_labels=num_labels or checkpoint_labels or 2)
        if num_labels is not None and num_labels != checkpoint_labels:
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
        fresh = network.load_beit3_state(state, source=str(path))
        if fresh:
            log.warning("%s: initialised fresh (not in the checkpoint): %s", path, ", ".join(fresh))
        return network

    def load_beit3_state(
        self, checkpoint: Mapping[str, torch.Tensor], source: str = "checkpoint"
    ) -> list[str]:
        """Load official BEiT-3 weights by their torchscale names; returns the network's keys the checkpoint
        did not provide (left as initialised)."""
        checkpoint = dict(checkpoint)
        if VISION_POSITIONS in checkpoint:
            # our table holds exactly the positions used ([CLS] + patches), in one row each
            table = checkpoint.pop(VISION_POSITIONS)
            checkpoint["beit3.embeddings.position_embeddings"] = table[BEIT3_POSITION_OFFSET:][None]

        def rename(key: str) -> str | None:
            if key in IGNORED_CHECKPOINT_KEYS:
                return None
            for pattern, replacement in BEIT3_RENAMES:
                if pattern.match(key):
                    return pattern.sub(replacement, key)
            return key

        return load_named_weights(self, checkpoint, rename, source)

    # -- the SuperNetwork interface (the rest: TransformerSuperNetwork) -----------------------------------

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        hp = self._hyperparameters
        generator = torch.Generator().manual_seed(0)
        shape = (batch_size, hp["channels"], hp["image_size"], hp["image_size"])
        return (torch.rand(shape, generator=generator) * 2 - 1,)  # pixel values span [-1, 1]
