"""Data-parallel training in several processes, launched by torchrun (torch.distributed.run).

A training job that asks for `processes: N > 1` does not train in its own process: it writes what the
processes need (the initial weights as safetensors, the split files' paths, the settings) to a job file next
to its checkpoints, runs

    python -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=N -m simqnas.distributed JOB

and reads back the trained weights and the metrics rank 0 wrote. Each process (`main`) joins the process
group (gloo on CPU, nccl on CUDA, one GPU per process), loads the same initial weights and runs the ordinary
training functions of `simqnas.training`, which see the process group and train with
DistributedDataParallel. torchrun stops every process when one fails; the job then fails, and running it
again resumes from the last epoch's checkpoint, as a single process does.

torchrun here places the processes on the one node SLURM gave the job (docs/cluster.md); with
`--standalone` it picks a free port, so several such jobs can share a node.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file

import simqnas
from simqnas.data.streaming import load_training_split
from simqnas.execution import Execution, resolve_device, world
from simqnas.io import write_json_atomic
from simqnas.recipe import split_recipe
from simqnas.space import SearchSpace
from simqnas.supernets import load_supernet, resolve_space
from simqnas.supernets.base import SuperNetwork
from simqnas.training import finetune_teacher, train_supernet

log = logging.getLogger(__name__)

#: where a job's launch files go, inside its checkpoint folder
LAUNCH_FOLDER = "launch"
KINDS = ("teacher", "supernet")


class LaunchError(RuntimeError):
    """torchrun or one of its processes failed; their own messages are in the job's log above this one."""


def _stream(stream: Any) -> Any:
    """A file object's descriptor for the child's output (the job's log), or None to inherit ours."""
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return stream


def train_in_processes(
    kind: str,
    model: SuperNetwork,
    *,
    execution: Execution,
    train: str | Path,
    validation: str | Path,
    checkpoint_dir: str | Path,
    settings: Mapping[str, Any],
    where: str,
    teacher: str | Path | None = None,
    space: SearchSpace | None = None,
    threads: int = 1,
) -> Any:
    """Train `model` (in place, left on CPU in eval mode) in `execution.processes` torchrun processes.

    kind "teacher": `finetune_teacher`, returns its validation accuracy; kind "supernet": `train_supernet`
    with the `teacher` file (None: without) on `space`, returns its per-epoch metrics. `train` and
    `validation` are split files; `settings` the training function's hyperparameters; `threads` the CPU
    threads of the whole job, shared by the processes; `where` names the config section in errors.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    folder = Path(checkpoint_dir) / LAUNCH_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    result_weights, result_file = folder / "result.safetensors", folder / "result.json"
    for stale in (result_weights, result_file):
        stale.unlink(missing_ok=True)
    model.set_active(None)
    model.save(folder / "initial.safetensors")  # the parent built it from its seed: the same every time
    job = {
        "kind": kind,
        "where": where,
        "model": str(folder / "initial.safetensors"),
        "teacher": None if teacher is None else str(teacher),
        "space": None if space is None else space.to_dict(),
        "train": str(train),
        "validation": str(validation),
        "checkpoint_dir": str(checkpoint_dir),
        "settings": dict(settings),
        "execution": dataclasses.asdict(execution),
        "result_weights": str(result_weights),
        "result": str(result_file),
    }
    job_file = folder / "job.json"
    write_json_atomic(job_file, job)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={execution.processes}",
        "-m",
        "simqnas.distributed",
        str(job_file),
    ]
    # the processes import this very library, wherever the job runs from; each gets its share of the threads
    library = str(Path(simqnas.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [library, os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": str(max(1, threads // execution.processes)),
    }
    log.info("training in %d processes: %s", execution.processes, shlex.join(command))
    sys.stderr.flush()
    output = _stream(sys.stderr)
    returncode = subprocess.run(command, env=env, stdout=output, stderr=output, check=False).returncode
    if returncode != 0 or not result_file.is_file():
        raise LaunchError(
            f"{where}: training in {execution.processes} processes failed (torchrun exit status "
            f"{returncode}; the processes' errors are above); running the job again resumes from its last "
            "checkpoint"
        )
    model.load_state_dict(load_file(str(result_weights)))
    model.eval()
    # two more copies of the network would only take disk (a ViT-base: 350 MB each); the job file and
    # result.json stay, as the record of what ran
    for copy in (result_weights, folder / "initial.safetensors"):
        copy.unlink(missing_ok=True)
    return json.loads(result_file.read_text())["result"]


def run_job(job: Mapping[str, Any], device: torch.device) -> Any:
    """One process's part of a job file's training (inside a process group, or alone)."""
    execution = Execution(**job["execution"])
    model = load_supernet(job["model"])
    train = load_training_split(job["train"], execution.workers)
    validation = load_training_split(job["validation"], execution.workers)
    settings, recipe = split_recipe(job["settings"])
    common = {
        "checkpoint_dir": job["checkpoint_dir"],
        "execution": execution,
        "device": device,
        "recipe": recipe,
    }
    if job["kind"] == "teacher":
        result: Any = finetune_teacher(model, train, validation, **common, **settings)
    else:
        teacher = None if job["teacher"] is None else load_supernet(job["teacher"])
        space = resolve_space(SearchSpace.from_dict(job["space"]), model)
        result = train_supernet(model, teacher, space, train, validation, **common, **settings)
    if world()[0] == 0:
        model.set_active(None)
        model.cpu()
        model.save(job["result_weights"])
        write_json_atomic(job["result"], {"result": result})
    return result


def main(argv: list[str] | None = None) -> None:
    """A torchrun process: join the group (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR from torchrun), train."""
    (job_file,) = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(job_file).read_text())
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s rank {os.environ.get('RANK', 0)} %(name)s %(levelname)s %(message)s",
    )
    execution = Execution(**job["execution"])
    device = resolve_device(execution, job["where"], int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        run_job(job, device)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
