"""Data-parallel training through torchrun: two gloo processes on CPU train a tiny BERT super-network to the
loss curve of one process on the same global batches, with one checkpoint writer."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

import psutil
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from simqnas.data import save_split
from simqnas.distributed import LaunchError, train_in_processes
from simqnas.execution import Execution, ExecutionError, resolve_device, split_execution
from simqnas.supernets import sandwich_archs
from simqnas.supernets.bert import BertSuperNetwork
from simqnas.training import (
    _accumulating,
    _backward,
    _batch,
    _inputs,
    _shard,
    _training_module,
    distillation_loss,
    finetune_teacher,
    train_supernet,
)
from tests.test_training import TOKENS, VOCAB, data, space

#: 41 rows in batches of 16: the last batch (9 rows) splits 5 + 4, so the loss weighting is exercised
SETTINGS = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "seed": 0, "max_steps_per_epoch": None}
#: how far each step's loss of the two-process run may be from one process's (losses ~0.35). The gradients
#: are the same up to the order of floating-point sums (`test_..._gradient_of_the_global_batch`: ~1e-7
#: relative), but AdamW's normalized updates turn such differences in near-zero gradients into weight changes
#: of up to the learning rate: measured 2.7e-5 after six steps, so 5e-4 leaves a margin of 18
LOSS_TOLERANCE = 5e-4


def tiny() -> BertSuperNetwork:
    """Without dropout: the two runs differ only by the order of floating-point sums."""
    torch.manual_seed(0)
    return BertSuperNetwork(
        num_layers=2,
        num_heads=2,
        ffn_size=8,
        hidden_size=8,
        vocab_size=VOCAB,
        max_position=TOKENS,
        dropout=0.0,
        attention_dropout=0.0,
    )


@pytest.fixture
def splits(tmp_path):
    train, validation = data(41, seed=1), data(24, seed=2)
    save_split(tmp_path / "train.safetensors", train)
    save_split(tmp_path / "validation.safetensors", validation)
    return train, validation


def test_two_gloo_processes_follow_the_single_process_loss_curve(tmp_path, splits):
    train, validation = splits
    teacher = tiny()
    teacher.save(tmp_path / "teacher.safetensors")
    settings = {**SETTINGS, "subnets_per_step": 1}

    single = tiny()
    expected = train_supernet(single, teacher, space(single), train, validation, **settings)

    parallel = tiny()
    checkpoints = tmp_path / "checkpoints"
    metrics = train_in_processes(
        "supernet",
        parallel,
        execution=Execution(processes=2),
        train=tmp_path / "train.safetensors",
        validation=tmp_path / "validation.safetensors",
        checkpoint_dir=checkpoints,
        settings=settings,
        where="supernets.tiny.training",
        teacher=tmp_path / "teacher.safetensors",
        space=space(parallel),
        threads=2,
    )
    got = [loss for epoch in metrics for loss in epoch["step_losses"]]
    want = [loss for epoch in expected for loss in epoch["step_losses"]]
    assert len(got) == len(want) == 6
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=0, atol=LOSS_TOLERANCE)
    assert [m["epoch"] for m in metrics] == [1, 2]

    # one writer: one complete checkpoint, of this two-process run, holding the weights handed back
    assert sorted(p.name for p in checkpoints.glob("epoch-*")) == ["epoch-0002"]
    assert not list(checkpoints.glob(".epoch-*"))
    state = json.loads((checkpoints / "epoch-0002" / "state.json").read_text())
    assert state["settings"]["processes"] == 2 and "device" not in state["settings"]
    saved = load_file(str(checkpoints / "epoch-0002" / "model.safetensors"))
    for key, value in parallel.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0, msg=key)

    # the finished run is resumed, not trained again: the same metrics come back at once
    again = tiny()
    resumed = train_in_processes(
        "supernet",
        again,
        execution=Execution(processes=2),
        train=tmp_path / "train.safetensors",
        validation=tmp_path / "validation.safetensors",
        checkpoint_dir=checkpoints,
        settings=settings,
        where="supernets.tiny.training",
        teacher=tmp_path / "teacher.safetensors",
        space=space(again),
    )
    assert [m["step_losses"] for m in resumed] == [m["step_losses"] for m in metrics]


def test_teacher_fine_tuning_in_two_processes(tmp_path, splits):
    train, validation = splits
    settings = {**SETTINGS, "epochs": 1}
    single = tiny()
    expected = finetune_teacher(single, train, validation, **settings)
    parallel = tiny()
    accuracy = train_in_processes(
        "teacher",
        parallel,
        execution=Execution(processes=2),
        train=tmp_path / "train.safetensors",
        validation=tmp_path / "validation.safetensors",
        checkpoint_dir=tmp_path / "teacher",
        settings=settings,
        where="supernets.tiny.teacher",
    )
    assert accuracy == pytest.approx(expected, abs=1 / len(validation["labels"]))


def test_execution_settings_are_checked_with_one_line_naming_the_key():
    hyper, execution = split_execution({"epochs": 1, "batch_size": 8, "processes": 2}, "supernets.a.training")
    assert hyper == {"epochs": 1, "batch_size": 8} and execution == Execution(processes=2)
    assert Execution().settings() == {} and Execution(2, "cuda", "bf16").settings() == {
        "processes": 2,
        "device": "cuda",
        "precision": "bf16",
    }
    with pytest.raises(ExecutionError, match=r"^supernets\.a\.training\.processes: 9 processes cannot share"):
        split_execution({"batch_size": 8, "processes": 9}, "supernets.a.training")
    with pytest.raises(
        ExecutionError, match=r"^supernets\.a\.teacher\.device: 'tpu' is not one of cpu, cuda$"
    ):
        split_execution({"device": "tpu"}, "supernets.a.teacher")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_is_refused_where_the_machine_has_none():
    with pytest.raises(ExecutionError) as error:
        resolve_device(Execution(device="cuda"), "supernets.a.training")
    message = str(error.value)
    assert message.startswith("supernets.a.training.device: 'cuda' but torch.cuda.is_available() is False")
    assert "\n" not in message


def _sandwich_gradients(rank: int, processes: int, port: int, out: str) -> None:
    """One sandwich step (largest, smallest, one other sub-network) on 9 rows, shared 5 + 4 by two processes;
    rank 0 saves the reduced gradients."""
    if processes > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=processes)
    model = tiny()
    largest, smallest = sandwich_archs(space(model))
    archs = [largest, smallest, {"num_layers": [1], "num_heads": [1, 2], "ffn_size": [4, 8]}]
    net = _training_module(model, "fp32")
    rows, scale = _shard(torch.arange(9))
    batch = _batch(data(9, seed=1), rows)
    for k, arch in enumerate(archs):
        model.set_active(arch)
        with _accumulating(net, last=k == len(archs) - 1):
            logits = net(*_inputs(model, batch))
            _backward(distillation_loss(logits, batch["labels"], None, 2.0, 0.5), scale)
    if rank == 0:
        torch.save({name: p.grad for name, p in model.named_parameters()}, out)
    if processes > 1:
        dist.destroy_process_group()


def test_the_processes_reduced_gradient_is_the_gradient_of_the_global_batch(tmp_path):
    """DDP with no_sync over the sandwich and weighted losses for unequal shares: the gradient one process
    computes on the whole batch, to float rounding."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    _sandwich_gradients(0, 1, port, str(tmp_path / "one.pt"))
    mp.spawn(_sandwich_gradients, args=(2, port, str(tmp_path / "two.pt")), nprocs=2)
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    assert one.keys() == two.keys()
    for name, gradient in one.items():
        assert (gradient is None) == (two[name] is None), name
        if gradient is not None:
            torch.testing.assert_close(two[name], gradient, rtol=1e-5, atol=1e-8, msg=name)


def test_a_killed_process_fails_the_job_and_the_rerun_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL one of the two processes once the first epoch's checkpoint exists (a lost node or an
    out-of-memory kill): torchrun stops the other, the job fails, and running it again resumes from the
    checkpoint to the losses and weights of a run nobody killed."""
    train, validation = data(400, seed=1), data(24, seed=2)
    save_split(tmp_path / "train.safetensors", train)
    save_split(tmp_path / "validation.safetensors", validation)
    settings = {**SETTINGS, "epochs": 3, "batch_size": 8, "subnets_per_step": 1}

    def run(checkpoints, model):
        return train_in_processes(
            "supernet",
            model,
            execution=Execution(processes=2),
            train=tmp_path / "train.safetensors",
            validation=tmp_path / "validation.safetensors",
            checkpoint_dir=checkpoints,
            settings=settings,
            where="supernets.tiny.training",
            space=space(model),
        )

    uninterrupted = tiny()
    expected = run(tmp_path / "uninterrupted", uninterrupted)

    checkpoints = tmp_path / "killed"
    failure: list[BaseException] = []
    job = threading.Thread(target=lambda: _catch(failure, lambda: run(checkpoints, tiny())))
    job.start()
    killed = None
    while job.is_alive() and killed is None:
        if (checkpoints / "epoch-0001").is_dir():
            workers = [
                p
                for p in psutil.Process().children(recursive=True)
                if "simqnas.distributed" in " ".join(p.cmdline())
                and "torch.distributed.run" not in p.cmdline()
            ]
            if workers:
                killed = workers[-1]
                killed.send_signal(signal.SIGKILL)
        time.sleep(0.01)
    job.join()
    assert killed is not None, "the run finished before a process could be killed"
    assert len(failure) == 1 and isinstance(failure[0], LaunchError), failure
    done = sorted(p.name for p in checkpoints.glob("epoch-*"))
    assert done in (["epoch-0001"], ["epoch-0002"])

    resumed = tiny()
    metrics = run(checkpoints, resumed)
    assert [m["step_losses"] for m in metrics] == [m["step_losses"] for m in expected]
    for key, value in uninterrupted.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)


def _catch(failures: list[BaseException], function) -> None:
    try:
        function()
    except BaseException as error:  # handed to the test's thread, which asserts on it
        failures.append(error)
