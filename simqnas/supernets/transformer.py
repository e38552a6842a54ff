"""What the transformer families (BERT, ViT, Multiway) share: an encoder with elastic depth, heads per layer
and FFN size per layer, and extraction into the family's static network.

Elastic parameters (one gene each, per layer where marked):
  num_layers  [L]                 keep the first L encoder layers
  num_heads   [h_0 .. h_{N-1}]    per layer: the first h heads
  ffn_size    [k_0 .. k_{N-1}]    per layer: the first k FFN neurons
Genes of dropped layers are ignored. A family is its static classifier (built with `elastic=True` as the
super-network, with `elastic=False` by `extract`), the path of its `Encoder`, and its constructor arguments.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from simqnas.nn.elastic import Encoder, active_size, copy_prefix_weights
from simqnas.nn.quantizable import quantizable_layers
from simqnas.supernets.base import Arch, SuperNetwork, arch_values, integer_value

ARCH_PARAMS = ("num_layers", "num_heads", "ffn_size")
#: the `architecture` keys of a vision transformer built from scratch
TRANSFORMER_SHAPE = frozenset(
    {"num_layers", "num_heads", "ffn_size", "hidden_size", "patch_size", "dropout", "attention_dropout"}
)
#: what a Hugging Face model folder holds for `from_pretrained`
HUGGING_FACE_FILES = ("config.json", "model.safetensors")


class TransformerSuperNetwork(SuperNetwork):
    """Mixed in before a family's static classifier, whose constructor takes (heads per layer, FFN sizes per
    layer, **static options, elastic=...); the family's `__init__` calls `_remember` with its arguments."""

    #: the family's static classifier (what `extract` returns)
    static_class: ClassVar[type[nn.Module]]
    #: qualified name of the `Encoder` module
    encoder_path: ClassVar[str]

    def _remember(self, hyperparameters: dict[str, Any], static_options: dict[str, Any]) -> None:
        """Constructor arguments (`hyperparameters`) and the static classifier's fixed options."""
        self._hyperparameters = hyperparameters
        self._static_options = static_options

    @property
    def encoder(self) -> Encoder:
        return self.get_submodule(self.encoder_path)

    def static_network(self, num_heads: list[int], ffn_sizes: list[int]) -> nn.Module:
        """A fresh static classifier with these per-layer sizes (its depth is their length)."""
        return self.static_class(num_heads, ffn_sizes, **self._static_options)

    # -- the SuperNetwork interface -------------------------------------------------------------------

    def hyperparameters(self) -> dict[str, Any]:
        return dict(self._hyperparameters)

    def largest_arch(self) -> Arch:
        n = self._hyperparameters["num_layers"]
        return {
            "num_layers": [n],
            "num_heads": [self._hyperparameters["num_heads"]] * n,
            "ffn_size": [self._hyperparameters["ffn_size"]] * n,
        }

    def smallest_arch(self) -> Arch:
        """The smallest network this one can run (one layer, head and neuron); a search space's own
        smallest architecture is `simqnas.supernets.sandwich_archs(space)[1]`."""
        n = self._hyperparameters["num_layers"]
        return {"num_layers": [1], "num_heads": [1] * n, "ffn_size": [1] * n}

    def quantizable_layers(self) -> list[str]:
        """Every Linear/Conv2d of the full extracted network but the fixed ones, in module order."""
        largest = self.largest_arch()
        with torch.device("meta"):  # names only: no weights allocated
            network = self.static_network(largest["num_heads"], largest["ffn_size"])
        fixed = self.fixed_precisions()
        return [name for name in quantizable_layers(network) if name not in fixed]

    def set_active(self, arch: Arch | None) -> None:
        depth, heads, ffn = self.resolve(arch)
        self.encoder.set_active(depth)
        for layer, h, k in zip(self.encoder.layer, heads, ffn, strict=True):
            layer.set_active(h, k)

    def extract(self, arch: Arch) -> nn.Module:
        """The static sub-network in eval mode (dropped layers absent, sliced weights copied)."""
        depth, heads, ffn = self.resolve(arch)
        return copy_prefix_weights(self, self.static_network(heads[:depth], ffn[:depth])).eval()

    def resolve(self, arch: Arch | None) -> tuple[int, list[int], list[int]]:
        """Validate an architecture: (depth, heads per layer, FFN size per layer); missing parameters take
        the full size, a per-layer parameter given once applies to every layer, `quantization` is ignored."""
        arch = {k: v for k, v in (arch or {}).items() if k != "quantization"}
        for key in arch:
            if key not in ARCH_PARAMS:
                raise ValueError(
                    f"arch: unknown parameter '{key}' ({self.family} has {', '.join(ARCH_PARAMS)})"
                )
        hp = self._hyperparameters
        n = hp["num_layers"]
        depth = self._genes(arch, "num_layers", 1, n)[0]
        heads = self._genes(arch, "num_heads", n, hp["num_heads"])
        ffn = self._genes(arch, "ffn_size", n, hp["ffn_size"])
        return depth, heads, ffn

    @staticmethod
    def _genes(arch: Arch, param: str, count: int, maximum: int) -> list[int]:
        return arch_values(
            arch, param, count, maximum, lambda label, v: active_size(label, integer_value(label, v), maximum)
        )
