"""Where a training job runs: device, precision and the number of data-parallel processes.

These are settings of the job, not of the network: `split_execution` takes them out of a `training` or
`teacher` config section before the rest is passed to the training functions as hyperparameters. Left out,
a job runs as it always has (one process, CPU, float32), and a run's checkpoints record none of the three, so
checkpoints written before these settings existed stay valid. Nothing is guessed: `cuda` is used only when the
config says so, and refused with one line when the job's machine has no usable GPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads lazily: the config check at workflow start reads these settings without it
    import torch

DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
#: the config keys of a training section that say where the job runs, not what it trains
EXECUTION_KEYS = ("processes", "device", "precision", "workers")
#: those a checkpoint records (`workers` changes no result: a streamed row's augmentation is seeded by row)
RECORDED_KEYS = ("processes", "device", "precision")


class ExecutionError(ValueError):
    """A device or precision the job's machine cannot give; the message is one line naming the key."""


@dataclass(frozen=True)
class Execution:
    """processes: data-parallel workers (DistributedDataParallel, launched by torchrun when > 1);
    device: cpu | cuda; precision: fp32 | bf16 (autocast of the forward pass); workers: DataLoader processes
    decoding a streamed training split, per training process."""

    processes: int = 1
    device: str = "cpu"
    precision: str = "fp32"
    workers: int = 2

    def settings(self) -> dict[str, Any]:
        """What a checkpoint records of the execution: only what differs from the default (one CPU process in
        float32), so that the default's checkpoints are those of earlier versions."""
        default = Execution()
        return {
            key: getattr(self, key) for key in EXECUTION_KEYS if getattr(self, key) != getattr(default, key)
        }


def split_execution(section: Mapping[str, Any], where: str) -> tuple[dict[str, Any], Execution]:
    """(hyperparameters, execution) of a `training` / `teacher` config section (`where` names it)."""
    hyper = {key: value for key, value in section.items() if key not in EXECUTION_KEYS}
    given = {key: section[key] for key in EXECUTION_KEYS if section.get(key) is not None}
    execution = Execution(**given)
    if execution.device not in DEVICES:
        raise ExecutionError(f"{where}.device: {execution.device!r} is not one of {', '.join(DEVICES)}")
    if execution.precision not in PRECISIONS:
        raise ExecutionError(
            f"{where}.precision: {execution.precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if isinstance(execution.processes, bool) or not isinstance(execution.processes, int):
        raise ExecutionError(f"{where}.processes: {execution.processes!r} is not a whole number")
    if isinstance(execution.workers, bool) or not isinstance(execution.workers, int) or execution.workers < 0:
        raise ExecutionError(
            f"{where}.workers: {execution.workers!r} is not a number of processes (0 or more)"
        )
    if execution.processes < 1:
        raise ExecutionError(f"{where}.processes: {execution.processes} is not a positive number")
    batch_size = hyper.get("batch_size")
    if isinstance(batch_size, int) and execution.processes > batch_size:
        raise ExecutionError(
            f"{where}.processes: {execution.processes} processes cannot share a batch of {batch_size} rows "
            "(batch_size is the global batch, split across the processes)"
        )
    return hyper, execution


def resolve_device(execution: Execution, where: str, local_rank: int = 0) -> torch.device:
    """The torch device of this process, refusing (one line) what the machine cannot give."""
    import torch

    if execution.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ExecutionError(
            f"{where}.device: 'cuda' but torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); give the job a GPU or set 'cpu'"
        )
    if local_rank >= torch.cuda.device_count():
        raise ExecutionError(
            f"{where}.processes: process {local_rank} has no GPU of its own "
            f"({torch.cuda.device_count()} visible); processes on cuda must not exceed the job's GPUs"
        )
    device = torch.device("cuda", local_rank)
    if execution.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ExecutionError(
            f"{where}.precision: 'bf16' but {torch.cuda.get_device_name(device)} does not support bfloat16"
        )
    return device


def job_device(execution: Execution, where: str) -> torch.device:
    """The device a training job runs on; a job that cannot have it (`cuda` on a node without a GPU) exits
    with the one-line reason, before it builds anything."""
    try:
        return resolve_device(execution, where)
    except ExecutionError as error:
        raise SystemExit(str(error)) from None


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless a torch.distributed process group is running."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def barrier() -> None:
    """Wait for every process of the group (nothing to wait for in a single process)."""
    if world()[1] > 1:
        import torch.distributed as dist

        dist.barrier()
