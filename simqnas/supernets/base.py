"""The one small interface every super-network family implements.

An architecture (`Arch`) is the decoded elastic part of a genome: parameter name -> list of chosen values,
one per gene (e.g. {"num_layers": [5], "num_heads": [12, 8, ...], "ffn_size": [1536, 512, ...]}).
Inputs are a tuple of tensors in the order `input_names`; models return logits (batch, classes).
"""

from __future__ import annotations

import json
import logging
import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file
from torch import nn

from simqnas.data.batching import Data, Inputs, labelled_batches
from simqnas.io import atomic_path

log = logging.getLogger(__name__)

Arch = dict[str, list[Any]]


class SuperNetwork(nn.Module, ABC):
    """An elastic network: trains in any sub-configuration and extracts physically smaller sub-networks."""

    family: ClassVar[str]
    #: names of the tensors a forward pass takes, in order (keys of the data files)
    input_names: ClassVar[tuple[str, ...]]
    # What a family declares about itself for the start check (simqnas.config), so that adding a family
    # touches its own module and the config schema only:
    #: the kind of dataset it reads ("text" or "image")
    modality: ClassVar[str]
    #: the `architecture` keys of the workflow config its `from_config` reads
    architecture_keys: ClassVar[frozenset[str]]
    #: the files a `pretrained` folder must hold for its loader; None: `pretrained` is one checkpoint file
    pretrained_files: ClassVar[tuple[str, ...] | None] = None

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

    def recalibrate_(self, inputs: Iterable[tuple[torch.Tensor, ...]]) -> None:
        """Re-estimate, from `inputs` (batches of the network's inputs), statistics that depend on the active
        sub-network (BatchNorm running mean and variance), before measuring it in place. Default: the
        family has none, and `inputs` is not read."""

    def deployable(self, subnet: nn.Module, inputs: Iterable[tuple[torch.Tensor, ...]]) -> nn.Module:
        """The extracted `subnet` as it is deployed, quantized, sized and timed. Default: unchanged. A family
        with BatchNorm re-estimates its statistics on `inputs` and folds it into the convolutions."""
        return subnet

    def variable_dims(self) -> tuple[dict[int, str], ...]:
        """Per input (in `input_names` order), the dimensions that may change from call to call, by name
        (one name, one size across inputs): the export for quantization keeps them symbolic, so one
        quantized model serves calibration, accuracy batches and timed inputs. Default: the batch."""
        return tuple({0: "batch"} for _ in self.input_names)

    def accuracy_batches(self, data: Data, batch_size: int) -> Iterator[tuple[Inputs, torch.Tensor]]:
        """(inputs, labels) batches of an accuracy pass: every sample once, in any order, in shapes that
        `variable_dims` allows. Default: consecutive batches."""
        return labelled_batches(data, self.input_names, batch_size)

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


def arch_values(
    arch: Arch, param: str, count: int, default: Any, check: Callable[[str, Any], Any]
) -> list[Any]:
    """The `count` values of a per-unit architecture parameter (one per layer, block, stage...): missing, it
    is `default` for every unit; one value applies to every unit. `check(label, value)` validates each value
    (label e.g. "arch: num_heads[2]", for one-line errors) and returns it."""
    values = arch.get(param, [default])
    if not isinstance(values, list | tuple) or len(values) not in (1, count):
        raise ValueError(f"arch: {param}: expected a list of 1 or {count} values, got {values!r}")
    checked = [check(f"arch: {param}[{i}]", value) for i, value in enumerate(values)]
    return checked * count if len(checked) == 1 else checked


def integer_value(label: str, value: Any) -> int:
    """`value` as an int (numpy integers included), or an error naming it."""
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{label}: {value!r} is not an integer") from None


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


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from a torch file (weights only) holding it, possibly under
    `model`, `module` or `state_dict` as training scripts save it (a `module.` prefix of DataParallel
    training is removed)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.suffix == ".safetensors":
        return load_file(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable or unsafe files
        raise ValueError(f"{path}: not a readable weights-only torch file ({error})") from None
    for key in ("model", "module", "state_dict"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return loaded
