"""Batches of a split's named tensors, for calibration, accuracy passes and timed inputs.

A split is a dict of named tensors (the model's `input_names` plus "labels"), first dimension = samples.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch

from simqnas.data import LABELS

Data = Mapping[str, torch.Tensor]
Inputs = tuple[torch.Tensor, ...]


def batches(data: Data, input_names: Sequence[str], batch_size: int) -> Iterator[Inputs]:
    """Consecutive batches of the named inputs (the last one may be smaller)."""
    missing = [name for name in input_names if name not in data]
    if missing:
        raise ValueError(f"data: missing inputs {', '.join(missing)} (have {', '.join(sorted(data))})")
    count = len(data[input_names[0]])
    for start in range(0, count, batch_size):
        yield tuple(data[name][start : start + batch_size] for name in input_names)


def labelled_batches(
    data: Data, input_names: Sequence[str], batch_size: int
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """Consecutive (inputs, labels) batches covering every sample once."""
    if LABELS not in data:
        raise ValueError(f"data: no {LABELS!r} tensor (have {', '.join(sorted(data))})")
    labels = data[LABELS]
    start = 0
    for inputs in batches(data, input_names, batch_size):
        yield inputs, labels[start : start + len(inputs[0])]
        start += len(inputs[0])


def length_sorted_batches(
    data: Data, input_names: Sequence[str], batch_size: int, mask: str, min_length: int = 2
) -> Iterator[tuple[Inputs, torch.Tensor]]:
    """(inputs, labels) batches of padded token sequences, sorted by length and cut to the longest sequence
    of each batch (at least `min_length`): the padding an attention mask hides is not computed at all.

    Sequences are right-padded, so `data[mask]` (1 = token, 0 = padding) tells each one's length; every
    named input is cut along its token dimension (dim 1). A stable sort keeps equal lengths in file order,
    so the batches are the same on every run.
    """
    if mask not in input_names:
        raise ValueError(f"data: the mask {mask!r} is not one of the inputs {', '.join(input_names)}")
    lengths = data[mask].sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    ordered = {name: data[name][order] for name in (*input_names, LABELS) if name in data}
    for inputs, labels in labelled_batches(ordered, input_names, batch_size):
        longest = max(int(inputs[input_names.index(mask)].sum(dim=1).max()), min_length)
        yield tuple(tensor[:, :longest] for tensor in inputs), labels
