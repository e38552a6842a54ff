"""Vision Transformer for image classification as an elastic super-network, trained from scratch (as the
paper's ViT was) or loaded from a Hugging Face ViT folder.

Patch embedding (a Conv2d with stride = kernel = patch size), a [CLS] token and learned position embeddings,
pre-norm encoder layers (`simqnas.nn.elastic.TransformerLayer`, `norm_first=True`), a final LayerNorm and a
Linear head on the [CLS] token: Hugging Face `ViTForImageClassification`. Elastic depth, heads per layer and
MLP size per layer: `simqnas.supernets.transformer`. Module names are HF ViT's except that each layer's
attention projections live in `attention.self` (HF: `attention.attention`), the name the shared encoder
layer uses for every family; `load_hf_state` maps it.

Quantizable layers, in gene order: the patch embedding's Conv2d, per layer query, key, value, attention
output, fc1 (`intermediate.dense`), fc2 (`output.dense`), then the classifier (1 + 6 L + 1).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from simqnas.data.image import image_geometry
from simqnas.nn.elastic import Encoder
from simqnas.nn.vision import PatchEmbeddings, init_vit_weights
from simqnas.supernets.base import load_named_weights
from simqnas.supernets.transformer import HUGGING_FACE_FILES, TRANSFORMER_SHAPE, TransformerSuperNetwork

log = logging.getLogger(__name__)

#: HF ViT checkpoint key -> ours: only the attention module's name differs
HF_KEY_RENAMES = ((re.compile(r"\.attention\.attention\."), ".attention.self."),)
#: top-level names of a bare `ViTModel` checkpoint, which lacks the `vit.` prefix
VIT_MODEL_PREFIXES = ("embeddings.", "encoder.", "layernorm.")
#: HF ViT weights skipped silently: the masked-image-modelling token (a `ViTModel` pooler is reported unused)
IGNORED_CHECKPOINT_KEYS = ("vit.embeddings.mask_token",)


class VitClassifier(nn.Module):
    """ViT + classification head on the [CLS] token with per-layer head counts and MLP sizes.

    With `elastic=False` (the default) it is the plain network `VitSuperNetwork.extract` returns:
    forward(pixel_values) -> logits, no data-dependent control flow.
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
            elastic=elastic,
        )
        self.vit = nn.ModuleDict(
            {
                "embeddings": PatchEmbeddings(channels, image_size, patch_size, hidden_size, dropout),
                "encoder": encoder,
                "layernorm": nn.LayerNorm(hidden_size, eps=eps),
            }
        )
        self.classifier = nn.Linear(hidden_size, num_labels)
        self.apply(init_vit_weights)

    def encode(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The final (normalized) hidden states (batch, 1 + patches, hidden)."""
        x = self.vit["encoder"](self.vit["embeddings"](pixel_values), None)
        return self.vit["layernorm"](x)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.encode(pixel_values)[:, 0])


class VitSuperNetwork(TransformerSuperNetwork, VitClassifier):
    """Elastic ViT classifier: layers, heads per layer and MLP neurons per layer.

    The defaults are the Fashion-MNIST super-network of docs/search-spaces.md: ViT-base's 12 layers and 12
    heads at a quarter of its width (hidden 192, MLP 768 = 4 x hidden, head size 16) on 4 x 4 patches of
    28 x 28 grey images (49 patches, as 16 x 16 patches of 224 x 224 give 196).
    """

    family = "vit"
    modality = "image"
    architecture_keys = TRANSFORMER_SHAPE
    pretrained_files = HUGGING_FACE_FILES
    static_class = VitClassifier
    encoder_path = "vit.encoder"

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
        eps: float = 1e-12,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
    ) -> None:
        if hidden_size % num_heads:
            raise ValueError(f"num_heads: {num_heads} does not divide hidden_size {hidden_size}")
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
        }
        super().__init__([num_heads] * num_layers, [ffn_size] * num_layers, **static_options, elastic=True)
        self._remember(hyperparameters, static_options)

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], dataset: Mapping[str, Any]) -> VitSuperNetwork:
        """From a Hugging Face ViT folder (`spec["pretrained"]`, a new head for the dataset's classes) or,
        without one, a fresh network of `spec["architecture"]` (defaults: the Fashion-MNIST shape)."""
        geometry = image_geometry(dataset)
        shape = {"image_size": geometry.image_size, "channels": geometry.channels}
        if spec.get("pretrained"):
            return cls.from_pretrained(spec["pretrained"], num_labels=geometry.num_classes, expected=shape)
        return cls(**(spec.get("architecture") or {}), **shape, num_labels=geometry.num_classes)

    @classmethod
    def from_pretrained(
        cls,
        model_dir: str | Path,
        num_labels: int | None = None,
        *,
        expected: Mapping[str, int] | None = None,
    ) -> VitSuperNetwork:
        """Build from a Hugging Face ViT folder (config.json + model.safetensors, `ViTModel` or
        `ViTForImageClassification` key names). `num_labels` other than the checkpoint's gives a fresh head;
        `expected` (image_size, channels) must match the checkpoint's config."""
        model_dir = Path(model_dir)
        config_path, weights_path = model_dir / "config.json", model_dir / "model.safetensors"
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: not found (a Hugging Face ViT folder with safetensors weights)"
                )
        config = json.loads(config_path.read_text())
        if not config.get("qkv_bias", True):
            raise ValueError(f"{config_path}: qkv_bias false is unsupported")
        try:
            kwargs = {
                "num_layers": config["num_hidden_layers"],
                "num_heads": config["num_attention_heads"],
                "ffn_size": config["intermediate_size"],
                "hidden_size": config["hidden_size"],
                "patch_size": config["patch_size"],
                "image_size": config["image_size"],
                "channels": config.get("num_channels", 3),
                "activation": config.get("hidden_act", "gelu"),
                "eps": config.get("layer_norm_eps", 1e-12),
                "dropout": config.get("hidden_dropout_prob", 0.0),
                "attention_dropout": config.get("attention_probs_dropout_prob", 0.0),
            }
        except KeyError as error:
            raise ValueError(f"{config_path}: missing key {error}") from None
        for key, value in (expected or {}).items():
            if kwargs[key] != value:
                raise ValueError(f"{config_path}: {key} is {kwargs[key]}, the dataset's is {value}")
        checkpoint_labels = len(config.get("id2label") or {}) or None
        network = cls(**kwargs, num_labels=num_labels or checkpoint_labels or 2)
        state = load_file(weights_path)
        if num_labels is not None and num_labels != checkpoint_labels:
            # another task: the checkpoint's head does not fit it
            state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        fresh = network.load_hf_state(state, source=str(weights_path))
        if fresh:
            log.warning("%s: initialised fresh (not in the checkpoint): %s", weights_path, ", ".join(fresh))
        return network

    def load_hf_state(self, checkpoint: Mapping[str, torch.Tensor], source: str = "checkpoint") -> list[str]:
        """Load Hugging Face ViT weights by name (with or without the `vit.` prefix); returns the network's
        keys the checkpoint did not provide (left as initialised)."""

        def rename(key: str) -> str | None:
            name = f"vit.{key}" if key.startswith(VIT_MODEL_PREFIXES) else key
            for pattern, replacement in HF_KEY_RENAMES:
                name = pattern.sub(replacement, name)
            return None if name in IGNORED_CHECKPOINT_KEYS else name

        return load_named_weights(self, checkpoint, rename, source)

    # -- the SuperNetwork interface (the rest: TransformerSuperNetwork) -----------------------------------

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        hp = self._hyperparameters
        generator = torch.Generator().manual_seed(0)
        shape = (batch_size, hp["channels"], hp["image_size"], hp["image_size"])
        return (torch.rand(shape, generator=generator) * 2 - 1,)  # pixel values span [-1, 1]
