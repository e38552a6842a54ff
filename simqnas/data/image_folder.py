"""Reading an ImageNet-style class folder's images with Pillow (layout and formats: simqnas.data.image)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from simqnas.data.image import ARRAY_SUFFIX, ImagePart, ImageSource, class_files, folder_parts


def open_image(path: Path, channels: int) -> Image.Image:
    """One image file (or .npy array) decoded with Pillow, as grey ("L") or RGB."""
    if path.suffix.lower() == ARRAY_SUFFIX:
        array = np.load(path, allow_pickle=False)
        if array.dtype != np.uint8 or array.ndim not in (2, 3):
            raise ValueError(f"{path}: expected a uint8 HxW or HxWxC array, got {array.dtype} {array.shape}")
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        image = Image.fromarray(array)
    else:
        try:
            image = Image.open(path)
            image.load()
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"{path}: not a readable image ({error})") from None
    return image.convert("L" if channels == 1 else "RGB")


def to_array(image: Image.Image, channels: int) -> np.ndarray:
    """A Pillow image as uint8 (channels, height, width)."""
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def centre_crop(image: Image.Image, image_size: int) -> Image.Image:
    """The shorter side resized to `image_size` (bilinear), then the centre cropped, as ImageNet evaluation
    transforms do."""
    scale = image_size / min(image.size)
    width, height = (max(image_size, round(side * scale)) for side in image.size)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - image_size) // 2, (height - image_size) // 2
    return image.crop((left, top, left + image_size, top + image_size))


def read_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image as uint8 (channels, image_size, image_size), evaluation-transformed (`centre_crop`)."""
    return to_array(centre_crop(open_image(path, channels), image_size), channels)


def load_image_folder(path: str | Path, image_size: int, channels: int) -> ImageSource:
    """An ImageNet-style folder (module docstring); images are read only for the rows a split takes."""
    train_dir, held_out_dir = folder_parts(Path(path))
    classes, files, labels = class_files(train_dir)

    def part(files: Sequence[Path], labels: np.ndarray) -> ImagePart:
        def read(rows: np.ndarray) -> np.ndarray:
            return np.stack([read_image(files[i], image_size, channels) for i in rows])

        return ImagePart(labels, read, tuple(files))

    held_out = None
    if held_out_dir is not None:
        held_classes, held_files, held_labels = class_files(held_out_dir)
        if held_classes != classes:
            raise ValueError(f"{held_out_dir}: class sub-folders differ from those of {train_dir}")
        held_out = part(held_files, held_labels)
    return ImageSource(classes, channels, image_size, part(files, labels), held_out)
