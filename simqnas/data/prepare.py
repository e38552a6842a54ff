"""The data rules: a configured dataset (text or image) -> seeded, stratified train / validation (search) /
calibration / test splits.

The test split is held out: no training, search or calibration reads it; only the final evaluation of the
searches' fronts and baselines does. Splits are drawn in the order of `SPLITS`, test last, so adding it
leaves the other three exactly as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simqnas.data.image import (
    DEFAULT_CHANNELS,
    DEFAULT_IMAGE_SIZE,
    PIXEL_VALUES,
    ImagePart,
    ImageSource,
    load_fashion_mnist,
    to_pixel_values,
)
from simqnas.data.image_folder import load_image_folder
from simqnas.data.splits import stratified_splits
from simqnas.data.text import encode_split, load_text_source

if TYPE_CHECKING:  # torch loads lazily: the config check at workflow start reads data files without it
    import torch

SPLITS = ("train", "validation", "calibration", "test")
#: the splits `stream: true` keeps as file lists (simqnas.data.streaming); the others stay materialized, which
#: is cheaper for the few thousand validation, calibration and test images every search job reads again
STREAMED_SPLITS = ("train",)
#: the splits an image source with a held-out part (Fashion-MNIST's test set, ImageNet's val/) draws from it
HELD_OUT_SPLITS = ("validation", "test")


Splits = dict[str, dict[str, "torch.Tensor"]]


def prepare_text_dataset(spec: Mapping[str, Any]) -> tuple[Splits, dict[str, Any]]:
    """Tokenized splits of a text dataset and a summary (sizes, label balance, settings) for the log."""
    frame = load_text_source(spec)
    sizes = {name: spec["splits"][name] for name in SPLITS}
    splits = stratified_splits(frame, sizes, spec["seed"])
    tensors = {
        name: encode_split(split, spec.get("tokenizer"), spec["max_length"]) for name, split in splits.items()
    }
    summary = {
        "source": spec["source"],
        "rows": len(frame),
        "seed": spec["seed"],
        "max_length": spec["max_length"],
        "splits": {
            name: {"rows": len(split), "positive_fraction": float(split["label"].mean())}
            for name, split in splits.items()
        },
        "truncated_fraction": {
            name: float((t["attention_mask"][:, -1] == 1).float().mean()) for name, t in tensors.items()
        },
    }
    return tensors, summary


def load_image_source(spec: Mapping[str, Any]) -> ImageSource:
    """The images of a dataset config entry (`source`: fashion_mnist | image_folder)."""
    if spec["source"] == "fashion_mnist":
        if spec.get("image_size", 28) != 28 or spec.get("channels", 1) != 1:
            raise ValueError("datasets: fashion_mnist images are 28 x 28, 1 channel (image_size, channels)")
        return load_fashion_mnist(spec.get("path"))
    if spec["source"] == "image_folder":
        return load_image_folder(
            spec["path"], spec.get("image_size", DEFAULT_IMAGE_SIZE), spec.get("channels", DEFAULT_CHANNELS)
        )
    raise ValueError(f"datasets: source '{spec['source']}' is not an image source")


def _stratified_rows(part: ImagePart, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    splits = stratified_splits(pd.DataFrame({"label": part.labels}), sizes, seed)
    return {name: split.index.to_numpy() for name, split in splits.items()}


def prepare_image_dataset(spec: Mapping[str, Any]) -> tuple[Splits, dict[str, Any]]:
    """Image splits (`pixel_values`, `labels`) of an image dataset and a summary for the log.

    A source with a held-out part (Fashion-MNIST's test set, an ImageNet `val/` folder) gives the validation
    and test splits from it (disjoint) and train and calibration from its training part; otherwise all four
    come from one pool.
    Only the chosen images are read. With `stream: true` (image folders) the training split is not read at
    all: it is a `StreamedRows` list of its files, which `save_image_split` writes as a streamed split.
    """
    import torch

    source = load_image_source(spec)
    sizes = {name: spec["splits"][name] for name in SPLITS}
    seed = spec["seed"]
    if source.held_out is None:
        parts = dict.fromkeys(SPLITS, source.train)
        rows = _stratified_rows(source.train, sizes, seed)
    else:
        parts = {name: source.held_out if name in HELD_OUT_SPLITS else source.train for name in SPLITS}
        from_train = {name: sizes[name] for name in SPLITS if name not in HELD_OUT_SPLITS}
        rows = _stratified_rows(source.train, from_train, seed)
        rows |= _stratified_rows(source.held_out, {name: sizes[name] for name in HELD_OUT_SPLITS}, seed)
    streamed = STREAMED_SPLITS if spec.get("stream") else ()
    if streamed and source.train.files is None:
        raise ValueError(f"datasets: stream: source '{spec['source']}' has no image files to stream")
    tensors: dict[str, Any] = {
        name: {
            PIXEL_VALUES: to_pixel_values(parts[name].read(rows[name])),
            "labels": torch.from_numpy(parts[name].labels[rows[name]]),
        }
        for name in SPLITS
        if name not in streamed
    }
    for name in streamed:  # only the files and labels: the images are decoded when training reads them
        tensors[name] = StreamedRows(
            [parts[name].files[i] for i in rows[name]],
            parts[name].labels[rows[name]],
            source.image_size,
            source.channels,
        )
    summary = {
        "source": spec["source"],
        "classes": list(source.classes),
        "channels": source.channels,
        "image_size": source.image_size,
        "rows": len(source.train.labels) + (0 if source.held_out is None else len(source.held_out.labels)),
        "validation_and_test_from_held_out_part": source.held_out is not None,
        "seed": seed,
        "streamed_splits": list(streamed),
        "splits": {
            name: {
                "rows": len(rows[name]),
                "per_class": np.bincount(
                    parts[name].labels[rows[name]], minlength=len(source.classes)
                ).tolist(),
            }
            for name in SPLITS
        },
    }
    return tensors, summary


@dataclass(frozen=True)
class StreamedRows:
    """A split kept as its image files and labels (simqnas.data.streaming), not as pixels."""

    files: list[Path]
    labels: np.ndarray
    image_size: int
    channels: int


def save_image_split(path: str | Path, split: Mapping[str, torch.Tensor] | StreamedRows) -> None:
    """Write a prepared image split: materialized (safetensors of pixels) or streamed (file list)."""
    from simqnas.data import save_split
    from simqnas.data.streaming import save_stream

    if isinstance(split, StreamedRows):
        save_stream(path, split.files, split.labels, split.image_size, split.channels)
    else:
        save_split(path, split)


def calibration_subset(split: Mapping[str, torch.Tensor], samples: int, seed: int) -> dict[str, torch.Tensor]:
    """A fixed, seeded subset of the calibration split: every quantization of a super-network sees it."""
    import torch

    rows = len(split["labels"])
    if samples > rows:
        raise ValueError(f"calibration.samples: {samples} is larger than the calibration split ({rows} rows)")
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(rows, generator=generator)[:samples].sort().values
    return {name: tensor[chosen] for name, tensor in split.items()}
