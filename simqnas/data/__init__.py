"""Dataset splits as safetensors files of named tensors, shared by every modality.

A split holds the model inputs (named as the super-network's `input_names`) and `labels`, all with the
same first dimension (one row per example).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError

from simqnas.io import atomic_path

if TYPE_CHECKING:  # torch loads lazily: the config check at workflow start reads data files without it
    import torch

LABELS = "labels"


def _check_rows(tensors: Mapping[str, torch.Tensor], where: str) -> int:
    if LABELS not in tensors:
        raise ValueError(f"{where}: missing tensor '{LABELS}'")
    rows = len(tensors[LABELS])
    for key, tensor in tensors.items():
        if tensor.dim() == 0:
            raise ValueError(f"{where}: tensor '{key}' is a scalar, expected one row per example")
        if len(tensor) != rows:
            raise ValueError(f"{where}: tensor '{key}' has {len(tensor)} rows, '{LABELS}' has {rows}")
    return rows


def save_split(path: str | Path, tensors: Mapping[str, torch.Tensor]) -> None:
    """Write a split (named tensors including `labels`, equal first dimensions) atomically."""
    from safetensors.torch import save_file

    _check_rows(tensors, str(path))
    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def load_split(path: str | Path, required: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Read a split; errors name the file and the missing or inconsistent tensor."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from None
    for key in required:
        if key not in tensors:
            raise ValueError(f"{path}: missing tensor '{key}' (has: {', '.join(sorted(tensors))})")
    _check_rows(tensors, str(path))
    return tensors
