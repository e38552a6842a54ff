"""Teacher fine-tuning and elastic super-network training on a tiny random BERT: learning, determinism,
checkpoints and resuming."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from simqnas.space import SearchSpace
from simqnas.supernets import load_supernet, resolve_space
from simqnas.supernets.bert import BertSuperNetwork
from simqnas.training import (
    NonFiniteError,
    accuracy,
    distillation_loss,
    finetune_teacher,
    fingerprint,
    predict,
    train_supernet,
    trim_padding,
)

VOCAB, TOKENS = 30, 8
SETTINGS = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "seed": 0, "max_steps_per_epoch": 3}


def tiny() -> BertSuperNetwork:
    torch.manual_seed(0)
    return BertSuperNetwork(
        num_layers=2, num_heads=2, ffn_size=8, hidden_size=8, vocab_size=VOCAB, max_position=TOKENS
    )


def data(rows: int, seed: int) -> dict[str, torch.Tensor]:
    """Learnable labels: does the second token come from the upper half of the vocabulary?"""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, VOCAB, (rows, TOKENS), generator=generator)
    mask = torch.ones(rows, TOKENS, dtype=torch.int64)
    lengths = torch.randint(3, TOKENS + 1, (rows,), generator=generator)
    mask[torch.arange(TOKENS) >= lengths[:, None]] = 0
    input_ids[mask == 0] = 0
    return {"input_ids": input_ids, "attention_mask": mask, "labels": (input_ids[:, 1] >= VOCAB // 2).long()}


def space(supernet: BertSuperNetwork) -> SearchSpace:
    spec = {
        "elastic": {
            "num_layers": {"count": 1, "choices": [1, 2]},
            "num_heads": {"count": 2, "choices": [1, 2]},
            "ffn_size": {"count": 2, "choices": [4, 8]},
        },
        "quantization": {"layers": 14, "choices": ["int8", "fp32"]},
    }
    return resolve_space(SearchSpace.from_dict(spec), supernet)


def test_distillation_loss_mixes_cross_entropy_and_softened_teacher():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    ce = F.cross_entropy(logits, labels)
    torch.testing.assert_close(distillation_loss(logits, labels, None, 2.0, 0.5), ce)
    torch.testing.assert_close(distillation_loss(logits, labels, logits, 2.0, 0.5), 0.5 * ce)
    assert distillation_loss(logits, labels, torch.randn(4, 3), 2.0, 1.0) > 0


def test_fingerprint_changes_with_any_value_name_or_shape():
    tensors = {"a": torch.arange(6.0), "b": torch.ones(2, dtype=torch.int64)}
    assert fingerprint(tensors) == fingerprint({k: v.clone() for k, v in tensors.items()})
    assert fingerprint(tensors) != fingerprint({**tensors, "a": torch.arange(6.0) + 1e-6})
    assert fingerprint(tensors) != fingerprint({**tensors, "a": torch.arange(6.0).reshape(2, 3)})
    assert fingerprint(tensors) != fingerprint({"c": tensors["a"], "b": tensors["b"]})


def test_trimming_padding_changes_no_logit():
    supernet = tiny().eval()
    batch = data(6, seed=1)
    batch["attention_mask"][:, 5:] = 0
    trimmed = trim_padding(batch)
    assert trimmed["input_ids"].shape == (6, 5) and trimmed["labels"].shape == (6,)
    with torch.no_grad():
        full = supernet(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(supernet(trimmed["input_ids"], trimmed["attention_mask"]), full)


def test_teacher_and_supernet_training_reduce_the_loss():
    train, validation = data(96, seed=1), data(48, seed=2)
    teacher = tiny()
    before = F.cross_entropy(predict(teacher, train), train["labels"])
    settings = {**SETTINGS, "epochs": 4, "max_steps_per_epoch": None}
    teacher_accuracy = finetune_teacher(teacher, train, validation, **settings)
    assert F.cross_entropy(predict(teacher, train), train["labels"]) < before
    assert teacher_accuracy == accuracy(teacher, validation, 16)

    supernet = tiny()
    elastic = space(supernet)
    smallest = {"num_layers": [1], "num_heads": [1, 1], "ffn_size": [4, 4]}
    supernet.set_active(smallest)
    before = F.cross_entropy(predict(supernet, train), train["labels"])
    metrics = train_supernet(supernet, teacher, elastic, train, validation, **settings)
    supernet.set_active(smallest)
    assert F.cross_entropy(predict(supernet, train), train["labels"]) < before
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    assert all(0 <= m["largest_accuracy"] <= 1 and 0 <= m["smallest_accuracy"] <= 1 for m in metrics)
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]


def test_training_is_deterministic_for_a_seed():
    train = data(64, seed=1)
    runs = []
    for _ in range(2):
        supernet = tiny()
        metrics = train_supernet(
            supernet, None, space(supernet), train, train, subnets_per_step=2, **SETTINGS
        )
        runs.append(([m["step_losses"] for m in metrics], supernet.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][key], value, rtol=0, atol=0, msg=key)
    other = tiny()
    changed = train_supernet(other, None, space(other), train, train, **{**SETTINGS, "seed": 1})
    assert [m["step_losses"] for m in changed] != runs[0][0]


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    train, validation = data(64, seed=1), data(32, seed=2)
    teacher = tiny()
    uninterrupted = tiny()
    expected = train_supernet(uninterrupted, teacher, space(uninterrupted), train, validation, **SETTINGS)

    killed = tiny()
    steps = {"n": 0}
    original_step = torch.optim.AdamW.step

    def dies_in_the_second_epoch(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == SETTINGS["max_steps_per_epoch"] + 2:
            raise KeyboardInterrupt("killed")
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", dies_in_the_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_supernet(killed, teacher, space(killed), train, validation, checkpoint_dir=tmp_path, **SETTINGS)
    monkeypatch.setattr(torch.optim.AdamW, "step", original_step)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch-0001", "teacher_logits.safetensors"]

    resumed = tiny()  # a fresh process: initial weights, nothing trained
    metrics = train_supernet(
        resumed, teacher, space(resumed), train, validation, checkpoint_dir=tmp_path, **SETTINGS
    )
    assert [m["step_losses"] for m in metrics] == [m["step_losses"] for m in expected]
    for key, value in uninterrupted.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
    state = json.loads((tmp_path / "epoch-0002" / "state.json").read_text())
    assert [m["epoch"] for m in state["metrics"]] == [1, 2]


def test_stale_checkpoints_are_discarded_not_resumed(tmp_path, caplog):
    """A rule re-runs because its settings, data or teacher changed: the old epochs are not resumed."""
    train, validation = data(32, seed=1), data(16, seed=2)
    teacher = tiny()
    first = tiny()
    train_supernet(first, teacher, space(first), train, validation, checkpoint_dir=tmp_path, **SETTINGS)
    changed = {**SETTINGS, "lr": 1e-3}
    with caplog.at_level("WARNING"):
        resumed = tiny()
        train_supernet(
            resumed, teacher, space(resumed), train, validation, checkpoint_dir=tmp_path, **changed
        )
    assert "checkpoint has lr=0.003, this run lr=0.001: starting afresh" in caplog.text
    fresh = tiny()
    train_supernet(
        fresh, teacher, space(fresh), train, validation, checkpoint_dir=tmp_path / "new", **changed
    )
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)


def test_trained_supernet_round_trips_through_save(tmp_path):
    train = data(32, seed=1)
    supernet = tiny()
    train_supernet(supernet, None, space(supernet), train, train, **{**SETTINGS, "epochs": 1})
    supernet.save(tmp_path / "supernet.safetensors")
    loaded = load_supernet(tmp_path / "supernet.safetensors")
    arch = {"num_layers": [1], "num_heads": [1, 2], "ffn_size": [4, 8]}
    supernet.set_active(arch)
    loaded.set_active(arch)
    torch.testing.assert_close(predict(loaded, train), predict(supernet, train))


def test_corrupt_checkpoint_is_discarded_not_fatal(tmp_path, caplog):
    """A checkpoint damaged on disk (they are renamed into place, so only the disk can damage one) is
    discarded with a warning; training starts afresh and reaches the uninterrupted result."""
    train, validation = data(32, seed=1), data(16, seed=2)
    teacher = tiny()
    first = tiny()
    train_supernet(first, teacher, space(first), train, validation, checkpoint_dir=tmp_path, **SETTINGS)
    weights = tmp_path / "epoch-0002" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with caplog.at_level("WARNING"):
        again = tiny()
        metrics = train_supernet(
            again, teacher, space(again), train, validation, checkpoint_dir=tmp_path, **SETTINGS
        )
    assert "epoch-0002: unreadable checkpoint" in caplog.text and "starting afresh" in caplog.text
    assert [m["epoch"] for m in metrics] == [1, 2]
    for key, value in first.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------- divergence is an error, never a network


def test_a_diverging_run_stops_with_an_error_and_writes_no_checkpoint(tmp_path):
    train, validation = data(32, seed=1), data(16, seed=2)
    with pytest.raises(
        NonFiniteError, match=r"^epoch 1, step \d+: the (loss|gradient norm) is (nan|inf)"
    ) as error:
        finetune_teacher(tiny(), train, validation, **{**SETTINGS, "lr": 1e30}, checkpoint_dir=tmp_path)
    assert "\n" not in str(error.value)
    assert not list(tmp_path.glob("epoch-*"))


def test_non_finite_weights_stop_training_before_a_checkpoint(tmp_path):
    """A NaN weight the loss never reads (the second token-type embedding) is found at the epoch's end."""
    train, validation = data(32, seed=1), data(16, seed=2)
    model = tiny()
    with torch.no_grad():
        model.state_dict()["bert.embeddings.token_type_embeddings.weight"][1, 0] = float("nan")
    with pytest.raises(
        NonFiniteError, match=r"epoch 1: weight bert\.embeddings\.token_type_embeddings\.weight"
    ):
        finetune_teacher(model, train, validation, **SETTINGS, checkpoint_dir=tmp_path)
    assert not list(tmp_path.glob("epoch-*"))


def test_bf16_autocast_trains_and_its_checkpoints_are_not_float32_ones(tmp_path, caplog):
    """precision bf16: forward passes under bfloat16 autocast (weights stay float32), losses near the float32
    run's; the checkpoint records the precision, so a float32 run does not resume it (and vice versa)."""
    from simqnas.execution import Execution

    train, validation = data(32, seed=1), data(16, seed=2)
    fp32 = tiny()
    expected = train_supernet(fp32, None, space(fp32), train, validation, **SETTINGS)
    bf16 = tiny()
    metrics = train_supernet(
        bf16,
        None,
        space(bf16),
        train,
        validation,
        checkpoint_dir=tmp_path,
        execution=Execution(precision="bf16"),
        **SETTINGS,
    )
    assert all(p.dtype == torch.float32 for p in bf16.parameters())
    got = torch.tensor([loss for m in metrics for loss in m["step_losses"]])
    want = torch.tensor([loss for m in expected for loss in m["step_losses"]])
    assert not torch.equal(got, want)  # autocast did run in bfloat16
    torch.testing.assert_close(got, want, rtol=0, atol=0.02)  # bfloat16 keeps 8 bits of mantissa
    state = json.loads((tmp_path / "epoch-0002" / "state.json").read_text())
    assert state["settings"]["precision"] == "bf16"
    with caplog.at_level("WARNING"):
        again = tiny()
        train_supernet(again, None, space(again), train, validation, checkpoint_dir=tmp_path, **SETTINGS)
    assert "checkpoint has precision='bf16', this run precision=None: starting afresh" in caplog.text
