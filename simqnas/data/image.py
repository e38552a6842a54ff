"""Image classification data: Fashion-MNIST's IDX files and ImageNet-style class folders.

Both give images as uint8 arrays (rows, channels, height, width) and int64 labels. A split stores them as
`pixel_values`, float32 scaled to [-1, 1] ((x / 255 - 0.5) / 0.5, Hugging Face ViT's image-processor
default), so a model and a checkpoint trained elsewhere with that convention see the same inputs.

Fashion-MNIST comes from Debian's `dataset-fashion-mnist` (60,000 training and 10,000 test images, 28 x 28,
10 classes); the IDX format is read here (no torchvision). A class folder holds one sub-folder per class
(sorted names are the labels 0..K-1, as torchvision's ImageFolder numbers them) with .png/.jpg/.jpeg/.bmp
images (read with Pillow) or .npy arrays (uint8 HxW or HxWxC); if it has `train/` and `val/` (or
`validation/`) sub-folders of that shape, as an extracted ImageNet does, those are its two parts.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: where Debian's dataset-fashion-mnist installs the four IDX files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
ARRAY_SUFFIX = ".npy"
HELD_OUT_FOLDERS = ("val", "validation")
#: an image-folder dataset's default input size and channels (ImageNet-style RGB at 224 x 224)
DEFAULT_IMAGE_SIZE = 224
DEFAULT_CHANNELS = 3
PIXEL_VALUES = "pixel_values"

#: IDX type byte -> numpy dtype (big-endian), as in the format's definition
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or not): magic 0x0000TTDD (type T, D dims), D big-endian int32 sizes, data."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IDX file not found")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic {raw[:4].hex()})")
    dims = raw[3]
    shape = tuple(int(n) for n in np.frombuffer(raw, ">i4", count=dims, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * dims
    if len(raw) - offset != dtype.itemsize * int(np.prod(shape)):
        raise ValueError(f"{path}: {len(raw) - offset} data bytes, the header announces shape {shape}")
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


@dataclass(frozen=True)
class ImagePart:
    """Labelled images of one part of a source (a training or a held-out part), read lazily by row."""

    labels: np.ndarray
    read: Any  # (row indices) -> uint8 (rows, channels, height, width)
    files: tuple[Path, ...] | None = None  # the image files by row, for a streamed split (None: in memory)


@dataclass(frozen=True)
class ImageSource:
    """A dataset's images: the part splits are drawn from, and a held-out part for validation, if any."""

    classes: tuple[str, ...]
    channels: int
    image_size: int
    train: ImagePart
    held_out: ImagePart | None


def load_fashion_mnist(path: str | Path | None = None) -> ImageSource:
    """Fashion-MNIST's training and test parts (default folder: Debian's dataset-fashion-mnist)."""
    folder = Path(path) if path is not None else FASHION_MNIST_DIR
    parts = {}
    for part, (images_file, labels_file) in FASHION_MNIST_FILES.items():
        for name in (images_file, labels_file):
            if not (folder / name).is_file():
                raise FileNotFoundError(
                    f"{folder / name}: not found (install the Debian package dataset-fashion-mnist, or set "
                    "datasets.<name>.path to a folder holding the four *-ubyte.gz files)"
                )
        images, labels = read_idx(folder / images_file), read_idx(folder / labels_file)
        if images.ndim != 3 or len(images) != len(labels):
            raise ValueError(f"{folder / images_file}: shape {images.shape} does not fit the labels")
        parts[part] = ImagePart(labels.astype(np.int64), lambda rows, images=images: images[rows, None])
    return ImageSource(FASHION_MNIST_CLASSES, 1, 28, parts["train"], parts["test"])


def class_files(folder: Path) -> tuple[tuple[str, ...], list[Path], np.ndarray]:
    """(class names, files, labels) of a folder of class sub-folders."""
    classes = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise ValueError(f"{folder}: no class sub-folders")
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(
            f
            for f in (folder / name).iterdir()
            if f.is_file() and f.suffix.lower() in (*IMAGE_SUFFIXES, ARRAY_SUFFIX)
        )
        if not found:
            raise ValueError(f"{folder / name}: no images ({', '.join((*IMAGE_SUFFIXES, ARRAY_SUFFIX))})")
        files += found
        labels += [label] * len(found)
    return classes, files, np.array(labels, dtype=np.int64)


def folder_parts(path: Path) -> tuple[Path, Path | None]:
    """The training folder and the held-out folder (None) of an image-folder dataset."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: image folder not found")
    held_out = [path / name for name in HELD_OUT_FOLDERS if (path / name).is_dir()]
    if (path / "train").is_dir() and held_out:
        return path / "train", held_out[0]
    return path, None


def image_folder_classes(path: str | Path) -> tuple[str, ...]:
    """The class names (sorted sub-folders) of an image-folder dataset, without reading any image."""
    train, _ = folder_parts(Path(path))
    return tuple(sorted(d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith(".")))


@dataclass(frozen=True)
class ImageGeometry:
    """What a vision network built for a dataset needs to know of it."""

    channels: int
    image_size: int
    num_classes: int


def image_geometry(spec: Mapping[str, Any]) -> ImageGeometry:
    """Channels, input size and class count of a dataset config entry, without reading images."""
    if spec["source"] == "fashion_mnist":
        return ImageGeometry(1, 28, len(FASHION_MNIST_CLASSES))
    if spec["source"] == "image_folder":
        return ImageGeometry(
            spec.get("channels", DEFAULT_CHANNELS),
            spec.get("image_size", DEFAULT_IMAGE_SIZE),
            len(image_folder_classes(spec["path"])),
        )
    raise ValueError(f"datasets: source '{spec['source']}' is not an image source")


def to_pixel_values(images: np.ndarray) -> torch.Tensor:
    """uint8 (rows, channels, height, width) -> float32 in [-1, 1]."""
    return (torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0 - 0.5) / 0.5
