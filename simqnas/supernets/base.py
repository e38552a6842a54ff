"""The one small interface every super-network family implements.

An architecture (`Arch`) is the decoded elastic part of a genome: parameter name -> list of chosen values,
one per gene (e.g. {"num_layers": [5], "num_heads": [12, 8, ...], "ffn_size": [1536, 512, ...]}).
Inputs are a tuple of tensors in the order `input_names`; models return logits (batch, classes).
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from simqnas.io import atomic_path

log = logging.getLogger(__name__)

Arch = dict[str, list[Any]]


class SuperNetwork(nn.Module, ABC):
    """An elastic network: trains in any sub-configuration and extracts physically smaller sub-networks."""

    family: ClassVar[str]
    #: names of the tensors a forward pass takes, in order (keys of the data files)
    input_names: ClassVar[tuple[str, ...]]

    @abstractmethod
    def set_active(self, arch: Arch | None) -> None:
        """Run later forward passes in this sub-configuration (None: the full network)."""

    @abstractmethod
    def extract(self, arch: Arch) -> nn.Module:
        """A standalone, physically smaller copy (sliced weights, dropped layers) computing the same logits.

        Module names of kept layers equal those in `quantizable_layers()` so a policy applies unchanged.
        """

    @abstractmethod
    def quantizable_layers(self) -> list[str]:
        """Qualified names of every searched Linear/Conv of the full network, in quantization-gene order
        (all of them but the `fixed_precisions()` ones)."""

    def fixed_precisions(self) -> dict[str, str]:
        """Precisions of Linear/Conv layers that are not searched but fixed by the super-network (layer name
        -> "int8" | "fp32"); `quantizable_layers()` lists the searched ones. Default: every layer searched."""
        return {}

    @abstractmethod
    def largest_arch(self) -> Arch:
        """The full network as an architecture."""

    @abstractmethod
    def smallest_arch(self) -> Arch:
        """The smallest sub-network (for sandwich-rule training)."""

    @abstractmethod
    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """Inputs of the shape used for export, calibration and latency."""

    @classmethod
    def from_config(cls, spec: Mapping[str, Any], dataset: Mapping[str, Any]) -> SuperNetwork:
        """A fresh (untrained) network for a workflow config's `supernets.<name>` entry and its dataset."""
        raise NotImplementedError(f"{cls.family}: building from a workflow config is not supported")

    @abstractmethod
    def hyperparameters(self) -> dict[str, Any]:
        """JSON-able constructor arguments; with the weights they rebuild the network (`load`)."""

    def save(self, path: str | Path) -> None:
        """Weights as safetensors, constructor arguments in the metadata."""
        from safetensors.torch import save_file

        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        meta = {"family": self.family, "hyperparameters": json.dumps(self.hyperparameters(), sort_keys=True)}
        with atomic_path(path) as tmp:
            save_file(state, str(tmp), metadata=meta)


def load_named_weights(
    network: nn.Module,
    checkpoint: Mapping[str, torch.Tensor],
    rename: Callable[[str], str | None],
    source: str = "checkpoint",
) -> list[str]:
    """Load a checkpoint whose keys `rename` maps onto the network's (None: a key to skip silently).

    Keys that map to nothing in the network are logged; a shape mismatch is an error naming the key. Returns
    the network's keys the checkpoint did not provide (left as initialised).
    """
    own = network.state_dict()
    renamed, unused = {}, []
    for key, tensor in checkpoint.items():
        name = rename(key)
        if name is None:
            continue
        if name not in own:
            unused.append(key)
            continue
        if tensor.shape != own[name].shape:
            raise ValueError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, expected {tuple(own[name].shape)}"
            )
        renamed[name] = tensor
    if unused:
        log.warning("%s: checkpoint keys not used by the network: %s", source, ", ".join(sorted(unused)))
    network.load_state_dict(renamed, strict=False)
    return [key for key in own if key not in renamed]
