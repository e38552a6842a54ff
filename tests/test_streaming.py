"""Streamed image splits: a class folder's training split decoded on the fly by DataLoader workers gives the
materialized split's evaluation tensors exactly, augments reproducibly by row, and trains."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from simqnas.data import load_split
from simqnas.data.prepare import StreamedRows, prepare_image_dataset, save_image_split
from simqnas.data.streaming import StreamingSplit, load_training_split
from simqnas.supernets import resolve_space
from simqnas.supernets.vit import VitSuperNetwork
from simqnas.training import fingerprint, train_supernet
from tests.families import TINY, Family

SIZE = 16


def _class_folder(root, per_class: int = 6) -> None:
    """Noise images of several sizes and aspect ratios (PNG and JPEG), so that crops and resizes matter."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(("ant", "bee", "cat")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            width, height = [(40, 30), (30, 50), (24, 24)][i % 3]
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            pixels[..., label] = 255  # a learnable colour per class
            Image.fromarray(pixels).save(root / name / f"{i}.{'png' if i % 2 else 'jpg'}")


@pytest.fixture
def spec(tmp_path):
    _class_folder(tmp_path / "images")
    return {
        "kind": "image",
        "source": "image_folder",
        "path": str(tmp_path / "images"),
        "image_size": SIZE,
        "channels": 3,
        "splits": {"train": "all", "validation": 3, "calibration": 3, "test": 3},
        "seed": 0,
    }


def test_streamed_and_materialized_splits_give_the_same_evaluation_tensors(tmp_path, spec):
    materialized, _ = prepare_image_dataset(spec)
    streamed, summary = prepare_image_dataset({**spec, "stream": True})
    assert summary["streamed_splits"] == ["train"] and isinstance(streamed["train"], StreamedRows)
    for name in ("validation", "calibration", "test"):  # these stay materialized
        assert torch.equal(streamed[name]["pixel_values"], materialized[name]["pixel_values"])

    save_image_split(tmp_path / "materialized.safetensors", materialized["train"])
    save_image_split(tmp_path / "streamed.safetensors", streamed["train"])
    assert isinstance(load_training_split(tmp_path / "materialized.safetensors"), dict)
    split = load_training_split(tmp_path / "streamed.safetensors", workers=2)
    assert isinstance(split, StreamingSplit) and len(split) == 9
    # a job that reads it as materialized pixels is told what it lacks
    with pytest.raises(ValueError, match=r"streamed\.safetensors: missing tensor 'pixel_values'"):
        load_split(tmp_path / "streamed.safetensors", required=["pixel_values"])

    expected = materialized["train"]
    assert torch.equal(split["labels"], expected["labels"])
    # decoded here and by two DataLoader workers (evaluation transform): the materialized tensors, bit for bit
    assert torch.equal(split.batch(slice(None))["pixel_values"], expected["pixel_values"])
    rows = [torch.arange(0, 5), torch.arange(5, 9)]
    decoded = list(split.batches(rows, seed=0, epoch=0, augment=False))
    assert torch.equal(torch.cat([b["pixel_values"] for b in decoded]), expected["pixel_values"])
    assert torch.equal(torch.cat([b["rows"] for b in decoded]), torch.arange(9))


def test_training_augmentation_is_seeded_by_row_not_by_worker(tmp_path, spec):
    streamed, _ = prepare_image_dataset({**spec, "stream": True})
    save_image_split(tmp_path / "train.safetensors", streamed["train"])
    rows = [torch.tensor([3, 0, 7]), torch.tensor([1, 8])]

    def pixels(workers: int, epoch: int) -> torch.Tensor:
        split = load_training_split(tmp_path / "train.safetensors", workers=workers)
        return torch.cat([b["pixel_values"] for b in split.batches(rows, seed=0, epoch=epoch)])

    augmented = pixels(0, epoch=0)
    assert augmented.shape == (5, 3, SIZE, SIZE) and augmented.dtype == torch.float32
    assert augmented.min() >= -1 and augmented.max() <= 1
    assert torch.equal(pixels(2, epoch=0), augmented)  # two workers: the same crops and flips
    assert not torch.equal(pixels(0, epoch=1), augmented)  # another epoch: other crops
    evaluation = load_training_split(tmp_path / "train.safetensors").batch(torch.cat(rows))["pixel_values"]
    assert not torch.equal(augmented, evaluation)


def test_a_supernet_trains_on_a_streamed_split_with_a_teacher_on_the_fly(tmp_path, spec):
    streamed, _ = prepare_image_dataset({**spec, "stream": True})
    materialized, _ = prepare_image_dataset(spec)
    save_image_split(tmp_path / "train.safetensors", streamed["train"])
    train = load_training_split(tmp_path / "train.safetensors", workers=2)
    shape = {**TINY["vit"], "image_size": SIZE, "channels": 3}
    torch.manual_seed(0)
    supernet, teacher = VitSuperNetwork(**shape), VitSuperNetwork(**shape).eval()
    space = resolve_space(Family("vit").space(supernet), supernet)
    settings = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "seed": 0}
    metrics = train_supernet(
        supernet,
        teacher,
        space,
        train,
        materialized["validation"],
        checkpoint_dir=tmp_path / "ckpt",
        **settings,
    )
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert all(np.isfinite(m["step_losses"]).all() and len(m["step_losses"]) == 3 for m in metrics)
    assert not (tmp_path / "ckpt" / "teacher_logits.safetensors").exists()  # augmented: nothing to cache
    state = (tmp_path / "ckpt" / "epoch-0002" / "state.json").read_text()
    assert fingerprint(train) in state
