"""Image data: the IDX reader, Debian's Fashion-MNIST, ImageNet-style class folders, stratified splits."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from simqnas.data import load_split, save_split
from simqnas.data.image import (
    FASHION_MNIST_DIR,
    image_geometry,
    load_fashion_mnist,
    read_idx,
    to_pixel_values,
)
from simqnas.data.image_folder import load_image_folder
from simqnas.data.prepare import prepare_image_dataset

needs_fashion_mnist = pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()


def test_read_idx_reads_plain_and_gzipped_files(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx(array))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(array)))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), array)
    (tmp_path / "short").write_bytes(_idx(array)[:-1])
    with pytest.raises(ValueError, match=r"short: 23 data bytes, the header announces shape \(2, 3, 4\)"):
        read_idx(tmp_path / "short")
    (tmp_path / "text").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="text: not an IDX file"):
        read_idx(tmp_path / "text")


@needs_fashion_mnist
def test_fashion_mnist_has_its_published_shape():
    source = load_fashion_mnist()
    assert (source.channels, source.image_size, len(source.classes)) == (1, 28, 10)
    assert len(source.train.labels) == 60_000 and len(source.held_out.labels) == 10_000
    # balanced: 6,000 training and 1,000 test images per class
    assert np.bincount(source.train.labels).tolist() == [6000] * 10
    assert np.bincount(source.held_out.labels).tolist() == [1000] * 10
    images = source.train.read(np.array([0, 1]))
    assert images.shape == (2, 1, 28, 28) and images.dtype == np.uint8 and images.max() > 200


@needs_fashion_mnist
def test_fashion_mnist_splits_are_stratified_disjoint_and_seeded(tmp_path):
    spec = {
        "kind": "image",
        "source": "fashion_mnist",
        "splits": {"train": 200, "validation": 100, "calibration": 50, "test": 80},
        "seed": 0,
    }
    tensors, summary = prepare_image_dataset(spec)
    assert summary["validation_and_test_from_held_out_part"]
    for name, rows in spec["splits"].items():
        split = tensors[name]
        assert split["pixel_values"].shape == (rows, 1, 28, 28)
        assert split["pixel_values"].dtype == torch.float32
        assert -1 <= split["pixel_values"].min() < 0 < split["pixel_values"].max() <= 1
        assert torch.bincount(split["labels"], minlength=10).tolist() == [rows // 10] * 10
        assert summary["splits"][name]["per_class"] == [rows // 10] * 10
    # train and calibration come from the same 60,000 images: no image in both
    train = {bytes(x.numpy()) for x in tensors["train"]["pixel_values"]}
    assert not train & {bytes(x.numpy()) for x in tensors["calibration"]["pixel_values"]}
    # validation and test come from the 10,000 held-out images: none in both
    validation = {bytes(x.numpy()) for x in tensors["validation"]["pixel_values"]}
    assert not validation & {bytes(x.numpy()) for x in tensors["test"]["pixel_values"]}
    # adding the test split leaves the other three as they were
    without_test, _ = prepare_image_dataset({**spec, "splits": {**spec["splits"], "test": 10}})
    for name in ("train", "validation", "calibration"):
        assert torch.equal(without_test[name]["pixel_values"], tensors[name]["pixel_values"])
    again, _ = prepare_image_dataset(spec)
    other, _ = prepare_image_dataset({**spec, "seed": 1})
    assert torch.equal(again["train"]["pixel_values"], tensors["train"]["pixel_values"])
    assert not torch.equal(other["train"]["pixel_values"], tensors["train"]["pixel_values"])
    save_split(tmp_path / "train.safetensors", tensors["train"])
    assert torch.equal(load_split(tmp_path / "train.safetensors")["labels"], tensors["train"]["labels"])


def _write_class_folder(root, classes: dict[str, int], size: tuple[int, int] = (40, 30)) -> None:
    """`count` images per class: PNGs (RGB, a colour per class) and one .npy array per class."""
    for index, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(count - 1):
            colour = (20 * index, 100, 200 - i)
            Image.new("RGB", size, colour).save(folder / f"{i}.png")
        np.save(folder / "last.npy", np.full((size[1], size[0]), 10 * index, dtype=np.uint8))


def test_image_folder_reads_classes_resizes_and_crops(tmp_path):
    _write_class_folder(tmp_path, {"cat": 3, "dog": 4})
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    source = load_image_folder(tmp_path, image_size=16, channels=3)
    assert source.classes == ("cat", "dog") and source.held_out is None
    assert source.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    images = source.train.read(np.arange(7))
    assert images.shape == (7, 3, 16, 16) and images.dtype == np.uint8
    assert images[0, :, 8, 8].tolist() == [0, 100, 200]  # a uniform PNG keeps its colour
    assert (images[6] == 10).all()  # the grey .npy of class 1, expanded to RGB
    grey = load_image_folder(tmp_path, image_size=8, channels=1).train.read(np.array([0]))
    assert grey.shape == (1, 1, 8, 8)
    geometry = image_geometry({"source": "image_folder", "path": str(tmp_path), "image_size": 16})
    assert (geometry.channels, geometry.image_size, geometry.num_classes) == (3, 16, 2)


def test_image_folder_with_train_and_val_parts_validates_on_val(tmp_path):
    _write_class_folder(tmp_path / "train", {"a": 6, "b": 6, "c": 6})
    _write_class_folder(tmp_path / "val", {"a": 2, "b": 2, "c": 2})
    spec = {
        "kind": "image",
        "source": "image_folder",
        "path": str(tmp_path),
        "image_size": 8,
        "splits": {"train": 9, "validation": 3, "calibration": 3, "test": 3},
        "seed": 0,
    }
    tensors, summary = prepare_image_dataset(spec)
    assert summary["classes"] == ["a", "b", "c"] and summary["validation_and_test_from_held_out_part"]
    assert tensors["train"]["pixel_values"].shape == (9, 3, 8, 8)
    assert summary["splits"]["validation"]["per_class"] == [1, 1, 1]
    assert summary["splits"]["test"]["per_class"] == [1, 1, 1]
    with pytest.raises(ValueError, match="test: 4 rows requested but only 3 of 6 are left"):
        prepare_image_dataset({**spec, "splits": {**spec["splits"], "test": 4}})


def test_image_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: image folder not found"):
        load_image_folder(tmp_path / "nowhere", 8, 3)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"empty/a: no images"):
        load_image_folder(tmp_path / "empty", 8, 3)
    (tmp_path / "bad" / "a").mkdir(parents=True)
    (tmp_path / "bad" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"x\.png: not a readable image"):
        load_image_folder(tmp_path / "bad", 8, 3).train.read(np.array([0]))


def test_pixel_values_span_minus_one_to_one():
    images = np.array([0, 51, 255], dtype=np.uint8).reshape(3, 1, 1, 1)
    torch.testing.assert_close(to_pixel_values(images).flatten(), torch.tensor([-1.0, -0.6, 1.0]))
