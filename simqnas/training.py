"""Fine-tuning the teacher and InstaTune-style elastic training of a super-network with distillation.

Both share one loop (`_fit`): the run's `simqnas.recipe.Recipe` (by default AdamW with linear warm-up and
decay and gradient clipping; DeiT's cosine schedule, label smoothing, Mixup and CutMix where set), tqdm
progress on stderr, and a checkpoint after every epoch (safetensors for tensors, JSON for the rest; no
pickle). Called again with the same checkpoint directory, a run resumes after its last complete epoch.
Every random stream (data order, dropout, sampled sub-networks, Mixup / CutMix draws) is derived from
(seed, epoch), so a checkpoint needs no RNG state and a resumed run continues exactly as an uninterrupted
one would.

Run inside a torch.distributed process group (`simqnas.distributed` launches one with torchrun), the loop is
data-parallel: the model is wrapped in DistributedDataParallel, every process takes its share of each global
batch (`batch_size` stays the global batch), the per-process losses are weighted so that the averaged
gradient is the gradient of the global batch's mean loss, and only rank 0 writes checkpoints. Every process
draws the same data order and the same sub-networks from the same (seed, epoch) stream, and each step checks
that they agree. On `cuda` (`device`), results are reproducible on the same GPU model and software only as far
as cuDNN/cuBLAS kernels are deterministic (no `torch.use_deterministic_algorithms` is forced: it would refuse
some kernels and slow others); resuming still continues from the same weights and optimizer state. With
`precision="bf16"` the forward passes run under bfloat16 autocast (weights, gradients and the optimizer stay
float32).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from simqnas.data.streaming import StreamingSplit
from simqnas.execution import Execution, barrier, world
from simqnas.io import atomic_path, write_json_atomic
from simqnas.nn.elastic import reorder_by_importance_
from simqnas.recipe import Recipe
from simqnas.supernets import sandwich_archs
from simqnas.supernets.base import Arch, SuperNetwork

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from simqnas.space import SearchSpace

Split = Mapping[str, torch.Tensor]
#: a training split: materialized tensors, or image files decoded (and augmented) as training reads them
TrainSplit = Split | StreamingSplit
STATE_FILE = "state.json"
#: training rows BatchNorm statistics are re-estimated on before validating a sub-network (OFA: 2,000 images)
RECALIBRATION_ROWS = 2000


# ---------------------------------------------------------------- batches and evaluation


def trim_padding(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cut right padding shared by the whole batch (exact: padded keys are masked out anyway)."""
    mask = batch.get("attention_mask")
    if mask is None:
        return batch
    length = max(int(mask.sum(dim=1).max()), 1)
    return {k: v[:, :length] if v.dim() == 2 and v.shape[1] == mask.shape[1] else v for k, v in batch.items()}


def _batch(data: TrainSplit, rows: torch.Tensor | slice) -> dict[str, torch.Tensor]:
    """The rows of a split (padding trimmed; a streamed split's evaluation-transformed), with their row
    numbers as `rows`."""
    if isinstance(data, StreamingSplit):
        return data.batch(rows)
    batch = trim_padding({k: v[rows] for k, v in data.items()})
    batch["rows"] = torch.arange(len(data["labels"]))[rows]
    return batch


def _inputs(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(batch[name] for name in model.input_names)


def device_of(model: nn.Module) -> torch.device:
    """Where the model's weights are (inputs are moved there; CPU for a model without weights)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    # `.to` returns the tensor itself when it is already there: nothing changes on CPU
    return {key: value.to(device) for key, value in batch.items()}


@torch.no_grad()
def predict(model: nn.Module, data: Split, batch_size: int = 64) -> torch.Tensor:
    """Logits (rows, classes) in eval mode; `model.input_names` names the inputs."""
    was_training = model.training
    model.eval()
    try:
        n, device = len(data["labels"]), device_of(model)
        batches = (_to(_batch(data, slice(i, i + batch_size)), device) for i in range(0, n, batch_size))
        return torch.cat([model(*_inputs(model, b)).float().cpu() for b in batches])
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, data: Split, batch_size: int = 64) -> float:
    return float((predict(model, data, batch_size).argmax(dim=1) == data["labels"]).float().mean())


def validation_accuracy(
    supernet: SuperNetwork, arch: Arch | None, train: TrainSplit, validation: Split, batch_size: int = 64
) -> float:
    """Validation accuracy of the super-network in configuration `arch` (None: the full network), after
    re-estimating the statistics that depend on it (`SuperNetwork.recalibrate_`: BatchNorm) on the first
    `RECALIBRATION_ROWS` training rows."""
    supernet.set_active(arch)
    rows = min(RECALIBRATION_ROWS, len(train["labels"]))
    device = device_of(supernet)
    supernet.recalibrate_(
        _inputs(supernet, _to(_batch(train, slice(i, i + batch_size)), device))
        for i in range(0, rows, batch_size)
    )
    return accuracy(supernet, validation, batch_size)


def fingerprint(tensors: Mapping[str, torch.Tensor] | StreamingSplit) -> str:
    """A short content hash of named tensors (names, dtypes, shapes, values); of a streamed split, its files,
    labels and geometry."""
    if isinstance(tensors, StreamingSplit):
        return tensors.fingerprint()
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().contiguous().reshape(-1)
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensors[key].shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    temperature: float,
    weight: float,
    ce: torch.Tensor | None = None,
) -> torch.Tensor:
    """(1 - weight) * CE + weight * T^2 * KL(teacher || student) on temperature-softened logits; `ce`: the
    hard-label term when the recipe computes it (label smoothing, mixed labels), else plain cross-entropy."""
    if ce is None:
        ce = F.cross_entropy(logits, labels)
    if teacher_logits is None:
        return ce
    kd = F.kl_div(
        F.log_softmax(logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    # T^2 keeps the gradient scale of the soft term independent of the temperature (Hinton et al.)
    return (1 - weight) * ce + weight * temperature**2 * kd


# ---------------------------------------------------------------- the two trainings


def finetune_teacher(
    model: SuperNetwork,
    train: TrainSplit,
    validation: Split,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_steps_per_epoch: int | None = None,
    checkpoint_dir: str | Path | None = None,
    execution: Execution | None = None,
    device: torch.device | None = None,
    recipe: Recipe | None = None,
) -> float:
    """Full fine-tuning (every weight, the full network) with cross-entropy; returns validation accuracy.

    `execution` (device, precision; the process count is the running process group's) and `device` (this
    process's, from `simqnas.execution.resolve_device`; default CPU): see the module docstring. `recipe`:
    optimizer, schedule and regularization (default: `Recipe()`)."""
    execution = execution or Execution()
    recipe = recipe or Recipe()
    model.set_active(None)
    initial_weights = fingerprint(model.state_dict())
    model.to(device or torch.device("cpu"))

    def step(net: nn.Module, batch: dict[str, torch.Tensor], rng: np.random.Generator, scale: float) -> float:
        batch, mixed = recipe.mix(batch, model.input_names[0], rng)
        loss = recipe.loss(net(*_inputs(model, batch)), batch["labels"], mixed)
        _backward(loss, scale)
        return loss.item()

    settings = {
        "kind": "teacher",
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "max_steps_per_epoch": max_steps_per_epoch,
        "train_data": fingerprint(train),
        "initial_weights": initial_weights,
        **_execution_settings(execution),
        **recipe.changed(),
    }
    metrics = _fit(
        model,
        train,
        step,
        lambda: {"accuracy": accuracy(model, validation, batch_size)},
        settings=settings,
        checkpoint_dir=checkpoint_dir,
        precision=execution.precision,
        recipe=recipe,
    )
    return metrics[-1]["accuracy"]


def train_supernet(
    supernet: SuperNetwork,
    teacher: nn.Module | None,
    space: SearchSpace,
    train: TrainSplit,
    validation: Split,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    subnets_per_step: int = 1,
    distill_temperature: float = 2.0,
    distill_weight: float = 0.5,
    checkpoint_dir: str | Path | None = None,
    max_steps_per_epoch: int | None = None,
    importance_batches: int = 8,
    execution: Execution | None = None,
    device: torch.device | None = None,
    recipe: Recipe | None = None,
) -> list[dict[str, Any]]:
    """Elastic fine-tuning with the sandwich rule and knowledge distillation from `teacher`.

    Every step accumulates the gradients of the largest, the smallest and `subnets_per_step` random
    sub-networks of `space`, then takes one optimizer step. Teacher logits (eval mode) are computed once
    for the training set (cached in `checkpoint_dir`); without a teacher the loss is cross-entropy only.
    Before the first epoch, heads and FFN neurons are sorted by importance on `importance_batches` training
    batches (0: keep the pre-trained order), so that the sub-networks keep the most important ones.
    Returns per-epoch metrics: mean training loss, the per-step losses, and the validation accuracy of the
    largest and smallest sub-networks. `execution`, `device` and `recipe`: as for `finetune_teacher`; a
    mixing recipe (Mixup, CutMix) mixes each step's batch once, for every sub-network of the sandwich.
    """
    execution = execution or Execution()
    recipe = recipe or Recipe()
    if recipe.mixes and teacher is not None:
        # the teacher's logits are of the unmixed images (cached once for the training set)
        raise ValueError("Mixup / CutMix with distillation from a teacher is not supported")
    largest, smallest = sandwich_archs(space)
    identity = {
        "train_data": fingerprint(train),
        "initial_weights": fingerprint(supernet.state_dict()),
        "teacher": None if teacher is None else fingerprint(teacher.state_dict()),
    }
    device = device or torch.device("cpu")
    supernet.to(device)
    if teacher is not None:
        teacher.to(device)
    soft_targets = None
    # a streamed split's images are augmented anew every epoch: the teacher sees each batch as it comes
    if teacher is not None and not isinstance(train, StreamingSplit):
        soft_targets = _teacher_logits(teacher, train, batch_size, checkpoint_dir, identity).to(device)

    def targets(batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if soft_targets is not None:
            return soft_targets[batch["rows"]]
        if teacher is None:
            return None
        teacher.eval()
        with torch.no_grad():
            return teacher(*_inputs(teacher, batch)).float()

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        teacher_logits = targets(batch)
        logits = supernet(*_inputs(supernet, batch))
        ce = recipe.loss(logits, batch["labels"], None)
        return distillation_loss(
            logits, batch["labels"], teacher_logits, distill_temperature, distill_weight, ce
        )

    settings = {
        "kind": "supernet",
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "subnets_per_step": subnets_per_step,
        "distill_temperature": distill_temperature,
        "distill_weight": distill_weight if teacher is not None else None,
        "max_steps_per_epoch": max_steps_per_epoch,
        "importance_batches": importance_batches,
        "space": space.to_dict(),
        **identity,
        **_execution_settings(execution),
        **recipe.changed(),
    }
    if importance_batches and (
        checkpoint_dir is None or _checkpoint_to_resume(Path(checkpoint_dir), settings) is None
    ):
        supernet.set_active(None)
        supernet.eval()
        # the first batches of the first epoch (the same stream as `_epoch_streams(seed, 0)`)
        rows = torch.from_numpy(np.random.default_rng([seed, 0]).permutation(len(train["labels"])))
        starts = range(0, min(len(rows), importance_batches * batch_size), batch_size)
        # every process reorders the same way from the same batches (DDP then starts from rank 0's weights)
        batches = [_to(_batch(train, rows[i : i + batch_size]), device) for i in starts]
        reorder_by_importance_(supernet, [lambda b=b: loss(b) for b in batches])

    def step(net: nn.Module, batch: dict[str, torch.Tensor], rng: np.random.Generator, scale: float) -> float:
        # a fixed network (a space without elastic parameters) is its own largest and smallest
        ends = [largest] if largest == smallest else [largest, smallest]
        archs = [*ends, *(space.decode(g) for g in space.sample(subnets_per_step, rng))]
        _check_same_archs(archs)
        teacher_logits = targets(batch)
        batch, mixed = recipe.mix(batch, supernet.input_names[0], rng)
        total = 0.0
        for k, arch in enumerate(archs):
            supernet.set_active(arch)
            # gradients of the sandwich accumulate locally; DDP reduces them once, after the last backward
            with _accumulating(net, last=k == len(archs) - 1):
                logits = net(*_inputs(supernet, batch))
                ce = recipe.loss(logits, batch["labels"], mixed)
                loss = distillation_loss(
                    logits, batch["labels"], teacher_logits, distill_temperature, distill_weight, ce
                )
                _backward(loss, scale)
            total += loss.item()
        supernet.set_active(None)
        return total / len(archs)

    def evaluate() -> dict[str, float]:
        result = {}
        for name, arch in (("largest", largest), ("smallest", smallest)):
            result[f"{name}_accuracy"] = validation_accuracy(supernet, arch, train, validation, batch_size)
        supernet.set_active(None)
        return result

    return _fit(
        supernet,
        train,
        step,
        evaluate,
        settings=settings,
        checkpoint_dir=checkpoint_dir,
        precision=execution.precision,
        recipe=recipe,
    )


def _teacher_logits(
    teacher: nn.Module,
    train: TrainSplit,
    batch_size: int,
    checkpoint_dir: str | Path | None,
    identity: dict[str, Any],
) -> torch.Tensor:
    """The teacher's eval-mode logits for the training set, cached for the same teacher and data."""
    meta = {"teacher": identity["teacher"], "train_data": identity["train_data"]}
    cache = None if checkpoint_dir is None else Path(checkpoint_dir) / "teacher_logits.safetensors"
    if cache is not None and cache.is_file():
        try:
            with safe_open(str(cache), "pt") as f:
                if f.metadata() == meta:
                    return f.get_tensor("logits")
        except SafetensorError as error:  # a damaged cache is recomputed, not fatal
            log.warning("%s: unreadable, computing the teacher logits again (%s)", cache, error)
    if isinstance(teacher, SuperNetwork):
        teacher.set_active(None)
    logits = predict(teacher, train, batch_size)
    if cache is not None and world()[0] == 0:  # one writer; the others computed the same logits
        with atomic_path(cache) as tmp:
            save_file({"logits": logits.contiguous()}, str(tmp), metadata=meta)
    return logits


# ---------------------------------------------------------------- the shared loop


def _epoch_streams(seed: int, epoch: int) -> np.random.Generator:
    """The epoch's numpy stream (data order, sub-networks), the same in every process; seeds torch's stream
    (dropout) as well, per process when there are several (so that their shares of a batch do not draw the
    same dropout masks)."""
    rank, processes = world()
    entropy = [seed, epoch, 1] if processes == 1 else [seed, epoch, 1, rank]
    torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))
    return np.random.default_rng([seed, epoch])


def _execution_settings(execution: Execution) -> dict[str, Any]:
    """What a checkpoint records of where it was trained: nothing for one CPU process in float32 (so that
    such checkpoints are those of earlier versions); otherwise device, precision and the processes actually
    running (a run resumed with another count starts afresh: its batches are split differently)."""
    processes = world()[1]
    return Execution(processes, execution.device, execution.precision).settings()


class _Autocast(nn.Module):
    """Runs the wrapped network's forward pass under bfloat16 autocast and returns float32 logits, so that
    the losses (softmax, KL) and the backward pass outside autocast stay in float32."""

    def __init__(self, module: nn.Module, device_type: str) -> None:
        super().__init__()
        self.module = module
        self.device_type = device_type

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=torch.bfloat16):
            return self.module(*inputs).float()


def _training_module(model: nn.Module, precision: str) -> nn.Module:
    """What the steps call: the model itself (one process, float32: exactly as before), under autocast, and
    wrapped in DistributedDataParallel when a process group runs."""
    net = model if precision == "fp32" else _Autocast(model, device_of(model).type)
    if world()[1] == 1:
        return net
    device = device_of(model)
    # sub-networks leave weights unused, so DDP must look for them; it broadcasts rank 0's weights here
    return DistributedDataParallel(
        net, device_ids=None if device.type == "cpu" else [device], find_unused_parameters=True
    )


def _accumulating(net: nn.Module, last: bool) -> AbstractContextManager[Any]:
    """DDP's no_sync for every backward of a step but the last, which then reduces the accumulated sum."""
    if isinstance(net, DistributedDataParallel) and not last:
        return net.no_sync()
    return nullcontext()


def _backward(loss: torch.Tensor, scale: float) -> None:
    """Backward of this process's mean loss weighted by its share of the global batch (see `_shard`); one
    process's weight is 1 and is not applied, so that its arithmetic is exactly the single-process one."""
    (loss if scale == 1.0 else loss * scale).backward()


def _shard(rows: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This process's rows of a global batch (contiguous, near-equal shares) and the weight of its mean
    loss: DDP averages gradients over P processes, so weighting process r's mean loss by P * n_r / n makes
    the average the gradient of the global batch's mean loss even when shares differ (a short last batch).
    A process left without rows runs one row with weight 0, so that it still joins the gradient reduction."""
    rank, processes = world()
    if processes == 1:
        return rows, 1.0
    share = rows.tensor_split(processes)[rank]
    if len(share) == 0:
        return rows[:1], 0.0
    return share, processes * len(share) / len(rows)


def _global_loss(loss: float, scale: float) -> float:
    """The global batch's mean loss from every process's weighted mean loss (see `_shard`)."""
    processes = world()[1]
    if processes == 1:
        return loss
    total = torch.tensor([loss * scale], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total) / processes


def _check_same_archs(archs: list[Any]) -> None:
    """The sandwich's sub-networks of a step must be the same in every process (they are drawn from the same
    seeded stream): a difference would average gradients of different networks, so it stops training."""
    if world()[1] == 1:
        return
    digest = hashlib.sha256(json.dumps(archs, sort_keys=True).encode()).digest()[:8]
    mine = torch.tensor([int.from_bytes(digest, "little", signed=True)], dtype=torch.int64)
    first = mine.clone()
    dist.broadcast(first, src=0)
    if int(first) != int(mine):
        raise RuntimeError(f"rank {world()[0]}: the step's sub-networks differ from rank 0's")


def _epoch_batches(
    train: TrainSplit, shares: list[torch.Tensor], seed: int, epoch: int, device: torch.device
) -> Iterator[dict[str, torch.Tensor]]:
    """The epoch's batches of this process, on `device`: sliced from a materialized split as they are
    needed, or decoded and augmented ahead by a streamed split's DataLoader workers."""
    if isinstance(train, StreamingSplit):
        for batch in train.batches(shares, seed, epoch):
            yield _to(batch, device)
    else:
        for rows in shares:
            yield _to(_batch(train, rows), device)


def _fit(
    model: nn.Module,
    train: TrainSplit,
    step: Callable[[nn.Module, dict[str, torch.Tensor], np.random.Generator, float], float],
    evaluate: Callable[[], dict[str, float]],
    *,
    settings: dict[str, Any],
    checkpoint_dir: str | Path | None,
    precision: str = "fp32",
    recipe: Recipe | None = None,
) -> list[dict[str, Any]]:
    """Run `step` (forward + backward through the module it is given, with this process's loss weight;
    returns the loss) over shuffled batches for settings["epochs"]."""
    epochs, batch_size, seed = settings["epochs"], settings["batch_size"], settings["seed"]
    rank, _ = world()
    device = device_of(model)
    n = len(train["labels"])
    steps_per_epoch = -(-n // batch_size)
    if settings["max_steps_per_epoch"] is not None:
        steps_per_epoch = min(steps_per_epoch, settings["max_steps_per_epoch"])
    total_steps = epochs * steps_per_epoch
    recipe = recipe or Recipe()
    optimizer = recipe.optimizer(model, settings["lr"])
    metrics: list[dict[str, Any]] = []
    if checkpoint_dir is not None:
        metrics = _resume(Path(checkpoint_dir), model, optimizer, settings)
    net = _training_module(model, precision)
    for epoch in range(len(metrics), epochs):
        model.train()
        rng = _epoch_streams(seed, epoch)
        order = torch.from_numpy(rng.permutation(n))
        losses, started = [], time.perf_counter()
        progress = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{epochs}",
            file=sys.stderr,
            mininterval=5,
            disable=rank != 0,
        )
        shares = [_shard(order[i * batch_size : (i + 1) * batch_size]) for i in range(steps_per_epoch)]
        batches = _epoch_batches(train, [rows for rows, _ in shares], seed, epoch, device)
        for i, batch in zip(progress, batches, strict=True):
            scale = shares[i][1]
            for group in optimizer.param_groups:
                group["lr"] = recipe.learning_rate(settings["lr"], epoch * steps_per_epoch + i, total_steps)
            optimizer.zero_grad(set_to_none=True)
            losses.append(_global_loss(step(net, batch, rng, scale), scale))
            norm = recipe.clip(model)
            _check_finite(f"epoch {epoch + 1}, step {i + 1}: the loss", losses[-1])
            _check_finite(f"epoch {epoch + 1}, step {i + 1}: the gradient norm", norm)
            optimizer.step()
            progress.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        progress.close()
        _check_finite_weights(model, f"epoch {epoch + 1}")
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "step_losses": losses,
            "seconds": seconds,
            "seconds_per_step": seconds / len(losses),
            **evaluate(),
        }
        metrics.append(record)
        if rank == 0:
            summary = {k: v for k, v in record.items() if k != "step_losses"}
            print(f"epoch {epoch + 1}/{epochs}: {json.dumps(summary)}", file=sys.stderr)
            if checkpoint_dir is not None:  # one writer: every process holds the same weights
                _save_checkpoint(Path(checkpoint_dir), model, optimizer, settings, metrics)
    model.eval()
    return metrics


class NonFiniteError(ValueError):
    """Training diverged: a loss, gradient or weight is NaN or infinite. Nothing computed from it is kept."""


def _check_finite(what: str, value: float) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(
            f"{what} is {value}: training diverged and stops (no checkpoint or network is written from it; "
            "a lower learning rate usually helps)"
        )


def _check_finite_weights(model: nn.Module, when: str) -> None:
    """Every floating-point weight finite, before a checkpoint or the network is written from them."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(f"{when}: weight {name} holds NaN or infinite values: training stops")


# ---------------------------------------------------------------- checkpoints


def _checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:04d}"


def _save_checkpoint(
    directory: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    settings: dict[str, Any],
    metrics: list,
) -> None:
    """Write epoch-N/ under a temporary name and rename it into place, then drop older checkpoints."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _checkpoint_name(len(metrics))
    tmp = directory / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    # `.cpu()` is the tensor itself on CPU; a GPU run's checkpoint is the same CPU file
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        str(tmp / "model.safetensors"),
    )
    state = optimizer.state_dict()
    tensors = {f"{i}.{name}": value for i, entry in state["state"].items() for name, value in entry.items()}
    save_file({k: v.cpu().contiguous() for k, v in tensors.items()}, str(tmp / "optimizer.safetensors"))
    write_json_atomic(
        tmp / STATE_FILE,
        {"settings": settings, "metrics": metrics, "param_groups": state["param_groups"]},
    )
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in directory.glob("epoch-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _latest_checkpoint(directory: Path) -> Path | None:
    complete = sorted(d for d in directory.glob("epoch-*") if (d / STATE_FILE).is_file())
    return complete[-1] if complete else None


def _checkpoint_to_resume(directory: Path, settings: dict[str, Any]) -> Path | None:
    """`_valid_checkpoint`, decided by rank 0 alone (it deletes stale or damaged checkpoints) before the
    other processes look, so that none reads a checkpoint while rank 0 removes it."""
    rank, _ = world()
    latest = _valid_checkpoint(directory, settings) if rank == 0 else None
    barrier()
    if rank != 0:
        latest = _valid_checkpoint(directory, settings, discard=False)
    return latest


def _valid_checkpoint(directory: Path, settings: dict[str, Any], discard: bool = True) -> Path | None:
    """The last complete checkpoint if it belongs to a run with these settings (data, weights, teacher).

    Stale checkpoints are deleted with a warning (unless not `discard`): the rule re-runs because its
    settings, data or teacher changed, so those epochs are not this run's.
    """
    latest = _latest_checkpoint(directory)
    if latest is None:
        return None
    try:
        saved = json.loads((latest / STATE_FILE).read_text())["settings"]
        for name in ("model.safetensors", "optimizer.safetensors"):
            with safe_open(str(latest / name), "pt"):  # reads the header: a truncated file fails here
                pass
    except (OSError, ValueError, KeyError, SafetensorError) as error:
        # checkpoints are renamed into place complete, so only a damaged disk gets here: not fatal
        log.warning("%s: unreadable checkpoint (%s): starting afresh", latest, error)
        if discard:
            shutil.rmtree(latest)
        return None
    stale = [key for key in sorted(set(saved) | set(settings)) if saved.get(key) != settings.get(key)]
    if not stale:
        return latest
    key = stale[0]
    log.warning(
        "%s: checkpoint has %s=%r, this run %s=%r: starting afresh",
        latest,
        key,
        saved.get(key),
        key,
        settings.get(key),
    )
    if discard:
        for old in directory.glob("epoch-*"):
            shutil.rmtree(old)
    return None


def _resume(
    directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """Load the last complete checkpoint of this run into model and optimizer; its metrics ([] if none)."""
    latest = _checkpoint_to_resume(directory, settings)
    if latest is None:
        return []
    state = json.loads((latest / STATE_FILE).read_text())
    model.load_state_dict(load_file(str(latest / "model.safetensors")))  # copied onto the model's device
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(latest / "optimizer.safetensors")).items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state["param_groups"]})
    if world()[0] == 0:
        print(f"resumed from {latest} (epoch {len(state['metrics'])})", file=sys.stderr)
    return state["metrics"]
