"""The training recipe: the default is the schedule every training used so far; DeiT's cosine schedule,
label smoothing, Mixup and CutMix do what they say, draw reproducibly, and train a tiny ViT."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simqnas.recipe import Recipe, split_recipe
from simqnas.supernets import resolve_space
from simqnas.training import train_supernet
from tests.families import Family

DEIT = Recipe(
    weight_decay=0.05, warmup_ratio=0.05, schedule="cosine", label_smoothing=0.1, mixup=0.8, cutmix=1.0
)


def test_the_default_recipe_is_the_linear_warm_up_and_decay_used_so_far():
    recipe, lr, total = Recipe(), 1e-3, 100
    # 10 warm-up steps up to lr, then linearly to 0 at the last step
    assert recipe.learning_rate(lr, 0, total) == pytest.approx(lr / 10)
    assert recipe.learning_rate(lr, 9, total) == pytest.approx(lr)
    assert recipe.learning_rate(lr, 10, total) == pytest.approx(lr)
    assert recipe.learning_rate(lr, 55, total) == pytest.approx(lr * 45 / 90)
    assert recipe.learning_rate(lr, 99, total) == pytest.approx(lr / 90)
    assert recipe.changed() == {}


def test_cosine_schedule_halves_at_mid_decay_and_ends_at_zero():
    recipe, lr, total = Recipe(warmup_ratio=0.1, schedule="cosine"), 1.0, 100
    assert recipe.learning_rate(lr, 10, total) == pytest.approx(1.0)
    assert recipe.learning_rate(lr, 55, total) == pytest.approx(0.5)
    assert recipe.learning_rate(lr, 100, total) == pytest.approx(0.0, abs=1e-12)
    assert recipe.changed() == {"schedule": "cosine"}


def test_a_training_section_splits_into_hyperparameters_and_recipe():
    settings = {"epochs": 3, "lr": 1e-3, "weight_decay": 0.05, "mixup": 0.8}
    hyperparameters, recipe = split_recipe(settings)
    assert hyperparameters == {"epochs": 3, "lr": 1e-3}
    assert recipe == Recipe(weight_decay=0.05, mixup=0.8)


def test_weight_decay_applies_to_matrices_only():
    network = Family("vit").build()
    groups = Recipe(weight_decay=0.05).optimizer(network, 1e-3).param_groups
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert all(p.dim() >= 2 for p in groups[0]["params"]) and all(p.dim() < 2 for p in groups[1]["params"])


def test_label_smoothing_and_mixed_labels_weight_the_cross_entropy():
    logits, labels, partner = (
        torch.randn(6, 3),
        torch.tensor([0, 1, 2, 0, 1, 2]),
        torch.tensor([1, 1, 0, 2, 2, 0]),
    )
    plain = Recipe()
    torch.testing.assert_close(plain.loss(logits, labels, None), F.cross_entropy(logits, labels))
    smoothed = Recipe(label_smoothing=0.1).loss(logits, labels, None)
    torch.testing.assert_close(smoothed, F.cross_entropy(logits, labels, label_smoothing=0.1))
    mixed = plain.loss(logits, labels, (partner, 0.3))
    expected = 0.3 * F.cross_entropy(logits, labels) + 0.7 * F.cross_entropy(logits, partner)
    torch.testing.assert_close(mixed, expected)


def batch(rows: int) -> dict[str, torch.Tensor]:
    return Family("vit").data(rows, seed=3)


def test_mixup_is_a_convex_combination_with_a_partner_of_the_batch():
    original = batch(8)
    mixed, (partner_labels, lam) = Recipe(mixup=0.8).mix(original, "pixel_values", np.random.default_rng(0))
    assert 0.0 <= lam <= 1.0
    images = original["pixel_values"]
    # every mixed image is lam * its own + (1 - lam) * one image of the batch, whose label is its partner's
    for row in range(8):
        rest = (mixed["pixel_values"][row] - lam * images[row]) / (1.0 - lam)
        matches = [k for k in range(8) if torch.allclose(rest, images[k], atol=1e-5)]
        assert matches and partner_labels[row] in original["labels"][matches]
    torch.testing.assert_close(mixed["labels"], original["labels"])


def test_cutmix_pastes_a_box_and_weights_the_labels_by_its_area():
    original = batch(8)
    mixed, (_, lam) = Recipe(cutmix=1.0).mix(original, "pixel_values", np.random.default_rng(1))
    changed = (mixed["pixel_values"] != original["pixel_values"]).any(dim=(0, 1))  # pixels of the box
    rows, cols = changed.any(dim=1).nonzero(), changed.any(dim=0).nonzero()
    if len(rows):  # the box: a rectangle of height x width pixels, lam = 1 - its share of the image
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert lam <= 1.0 - int(changed.sum()) / changed.numel() + 1e-9
        assert lam >= 1.0 - int(box) / changed.numel() - 1e-9
    else:
        assert lam == 1.0 or torch.equal(mixed["pixel_values"], original["pixel_values"])


def test_mixing_takes_one_draw_from_the_shared_stream_whatever_the_share_size():
    """Data-parallel processes mix shares of different sizes from the same step stream; they must stay in
    step for the sandwich's sub-network draws that follow."""
    after = []
    for rows in (3, 5):
        rng = np.random.default_rng(7)
        DEIT.mix(batch(rows), "pixel_values", rng)
        after.append(rng.integers(2**63))
    assert after[0] == after[1]
    first = DEIT.mix(batch(5), "pixel_values", np.random.default_rng(7))
    again = DEIT.mix(batch(5), "pixel_values", np.random.default_rng(7))
    torch.testing.assert_close(first[0]["pixel_values"], again[0]["pixel_values"])
    assert first[1][1] == again[1][1]


def train_tiny_vit(recipe: Recipe, checkpoint_dir=None) -> list[dict]:
    family = Family("vit")
    network = family.build()
    space = resolve_space(family.space(network), network)
    return train_supernet(
        network,
        None,
        space,
        family.data(48, seed=5, labels_from=family.build(seed=9)),
        family.data(24, seed=6, labels_from=family.build(seed=9)),
        epochs=2,
        batch_size=16,
        lr=3e-3,
        seed=0,
        importance_batches=0,
        checkpoint_dir=checkpoint_dir,
        recipe=recipe,
    )


def test_deit_recipe_trains_a_tiny_vit_reproducibly_and_its_checkpoint_records_it(tmp_path):
    first = train_tiny_vit(DEIT, tmp_path / "ckpt")
    again = train_tiny_vit(DEIT)
    assert [e["step_losses"] for e in first] == [e["step_losses"] for e in again]
    assert all(math.isfinite(loss) for e in first for loss in e["step_losses"])
    plain = train_tiny_vit(Recipe())
    assert [e["step_losses"] for e in plain] != [e["step_losses"] for e in first]
    state = json.loads(next((tmp_path / "ckpt").glob("epoch-*/state.json")).read_text())
    assert {k: state["settings"][k] for k in DEIT.changed()} == DEIT.changed()


def test_mixing_with_a_teacher_is_refused():
    family = Family("vit")
    network = family.build()
    with pytest.raises(ValueError, match="Mixup / CutMix with distillation"):
        train_supernet(
            network,
            family.build(seed=1),
            resolve_space(family.space(network), network),
            family.data(16, seed=5),
            family.data(8, seed=6),
            epochs=1,
            batch_size=8,
            lr=1e-3,
            seed=0,
            recipe=Recipe(mixup=0.2),
        )
