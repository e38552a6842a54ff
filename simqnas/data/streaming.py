"""A training split read from the class folders on the fly, for image sets too large to materialize.

A materialized split stores every image as float32 (`pixel_values`): 224 x 224 RGB ImageNet images take
0.6 MB each, 770 GB for the 1.28 million of its training set. A streamed split stores only the image files'
paths and labels (a safetensors file: `labels`, the UTF-8 paths concatenated in `path_bytes` with their
`path_offsets`, the geometry in the metadata); training decodes its batches in DataLoader worker processes:
Pillow decode, then for training a random-resized crop (scale 0.08-1, aspect 3/4-4/3, as torchvision's
RandomResizedCrop and the ViT/DeiT ImageNet recipes) and a horizontal flip with probability 1/2, and for
everything else (BatchNorm re-estimation, importance batches) the evaluation transform the materialized
splits use (shorter side resized, centre crop), which gives the same tensors bit for bit.

The augmentation of row r in epoch e is drawn from its own stream seeded by (training seed, e, r), so it does
not depend on which worker or which data-parallel process decodes it, nor on how many there are: a resumed
or re-run epoch sees the same crops.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset

from simqnas.data.image import PIXEL_VALUES, to_pixel_values
from simqnas.data.image_folder import centre_crop, open_image, to_array
from simqnas.io import atomic_path

#: the metadata that marks a split file as streamed
FORMAT = "simqnas-image-stream"
#: RandomResizedCrop's defaults (torchvision; the DeiT and ViT ImageNet recipes use them)
CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_ATTEMPTS = 10


def random_resized_crop(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """A random crop of 8-100 % of the area with aspect ratio 3/4-4/3, resized to size x size (bilinear),
    as torchvision's RandomResizedCrop does (after 10 failed draws: the centre, its aspect clamped)."""
    width, height = image.size
    area = width * height
    for _ in range(CROP_ATTEMPTS):
        target = area * rng.uniform(*CROP_SCALE)
        aspect = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            top, left = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            break
    else:
        ratio = width / height
        if ratio < CROP_RATIO[0]:
            w, h = width, round(width / CROP_RATIO[0])
        elif ratio > CROP_RATIO[1]:
            w, h = round(height * CROP_RATIO[1]), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))


def training_image(image: Image.Image, size: int, rng: np.random.Generator) -> Image.Image:
    """The training augmentation: random-resized crop, then a horizontal flip with probability 1/2."""
    image = random_resized_crop(image, size, rng)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image


class StreamingSplit:
    """A split of image files decoded when read. `split["labels"]` and `len` work as for a materialized
    split; `batch(rows)` decodes evaluation-transformed rows here; `batches(...)` decodes training batches in
    `workers` DataLoader processes."""

    def __init__(
        self, files: Sequence[str], labels: torch.Tensor, image_size: int, channels: int, workers: int = 0
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} image files but {len(labels)} labels")
        self.files = list(files)
        self.labels = labels
        self.image_size = image_size
        self.channels = channels
        self.workers = workers

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key != "labels":
            raise KeyError(f"a streamed split holds only labels, not {key!r} (its images are read by row)")
        return self.labels

    def fingerprint(self) -> str:
        """A short content hash of what the split reads: files, labels and geometry (not the images)."""
        digest = hashlib.sha256(json.dumps([self.image_size, self.channels, self.files]).encode())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]

    def pixels(self, row: int, augment: tuple[int, int] | None = None) -> torch.Tensor:
        """One row's `pixel_values`: evaluation-transformed, or augmented with the (seed, epoch) stream."""
        image = open_image(Path(self.files[row]), self.channels)
        if augment is None:
            image = centre_crop(image, self.image_size)
        else:
            image = training_image(image, self.image_size, np.random.default_rng([*augment, row]))
        return to_pixel_values(to_array(image, self.channels)[None])[0]

    def batch(self, rows: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        """Evaluation-transformed rows, decoded in this process, with their row numbers as `rows`."""
        indices = torch.arange(len(self))[rows]
        return {
            PIXEL_VALUES: torch.stack([self.pixels(int(row)) for row in indices]),
            "labels": self.labels[indices],
            "rows": indices,
        }

    def batches(
        self, rows: Iterable[torch.Tensor], seed: int, epoch: int, augment: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """The batches of `rows` (one index tensor per batch, in order), decoded ahead by the workers."""
        sampler = [[int(row) for row in batch] for batch in rows]
        dataset = _Rows(self, (seed, epoch) if augment else None)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=self.workers)
        yield from loader


class _Rows(Dataset):
    """Rows of a streamed split as a map-style dataset (what each DataLoader worker decodes)."""

    def __init__(self, split: StreamingSplit, augment: tuple[int, int] | None) -> None:
        self.split = split
        self.augment = augment

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, row: int) -> dict[str, Any]:
        pixels = self.split.pixels(row, self.augment)
        return {PIXEL_VALUES: pixels, "labels": self.split.labels[row], "rows": torch.tensor(row)}


def save_stream(
    path: str | Path, files: Sequence[Path | str], labels: np.ndarray, image_size: int, channels: int
) -> None:
    """Write a streamed split (the files' paths and labels, no pixels) atomically."""
    encoded = [str(f).encode() for f in files]
    offsets = np.cumsum([0, *map(len, encoded)]).astype(np.int64)
    tensors = {
        "labels": torch.from_numpy(np.asarray(labels, dtype=np.int64)),
        "path_bytes": torch.frombuffer(bytearray(b"".join(encoded)) or bytearray(1), dtype=torch.uint8),
        "path_offsets": torch.from_numpy(offsets),
    }
    metadata = {"format": FORMAT, "image_size": str(image_size), "channels": str(channels)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def is_stream(path: str | Path) -> bool:
    """Whether a split file is a streamed split (reads only its header)."""
    try:
        with safe_open(str(path), "pt") as f:
            return (f.metadata() or {}).get("format") == FORMAT
    except (SafetensorError, OSError):
        return False


def load_stream(path: str | Path, workers: int = 0) -> StreamingSplit:
    """A streamed split written by `save_stream`; `workers`: DataLoader processes decoding its batches."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not a streamed image split")
        labels, raw, offsets = (f.get_tensor(k) for k in ("labels", "path_bytes", "path_offsets"))
    data = raw.numpy().tobytes()
    bounds = offsets.tolist()
    files = [data[a:b].decode() for a, b in itertools.pairwise(bounds)]
    return StreamingSplit(files, labels, int(metadata["image_size"]), int(metadata["channels"]), workers)


def load_training_split(path: str | Path, workers: int = 0) -> dict[str, torch.Tensor] | StreamingSplit:
    """A split file as training reads it: streamed (`load_stream`) or materialized (`load_split`)."""
    from simqnas.data import load_split

    return load_stream(path, workers) if is_stream(path) else load_split(path)
