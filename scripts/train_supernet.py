"""Rule train_supernet: sandwich-rule elastic training (distilled from the teacher if the config has one),
or a given checkpoint. `training.processes` > 1: in that many torchrun processes (simqnas.distributed)."""

import logging

import torch
import yaml

from simqnas.data import load_split
from simqnas.data.streaming import load_training_split
from simqnas.distributed import train_in_processes
from simqnas.execution import job_device, split_execution
from simqnas.io import write_json_atomic, write_text_atomic
from simqnas.logs import log_to
from simqnas.recipe import split_recipe
from simqnas.space import space_from_spec
from simqnas.supernets import build_supernet, load_supernet, resolve_space, sandwich_archs
from simqnas.training import train_supernet, validation_accuracy

log_to(snakemake.log[0])
spec = snakemake.params.supernet
where = f"supernets.{snakemake.wildcards.net}.training"
validation = load_split(snakemake.input.validation)
device = torch.device("cpu")
settings, execution = split_execution(spec["training"] or {}, where)
# a streamed training split (datasets.<name>.stream) is decoded as it is read, by `workers` processes
train = load_training_split(snakemake.input.train, execution.workers)
if hasattr(snakemake.input, "checkpoint"):
    supernet = load_supernet(snakemake.input.checkpoint)
    space = resolve_space(space_from_spec(spec["space"], "supernet.space"), supernet)
    metrics = {"source": snakemake.input.checkpoint}
else:
    device = job_device(execution, where)
    supernet = build_supernet(spec, snakemake.params.dataset, seed=spec["training"]["seed"])
    space = resolve_space(space_from_spec(spec["space"], "supernet.space"), supernet)
    teacher = snakemake.input.teacher if hasattr(snakemake.input, "teacher") else None
    if execution.processes > 1 and settings["epochs"] > 0:
        epochs = train_in_processes(
            "supernet",
            supernet,
            execution=execution,
            train=snakemake.input.train,
            validation=snakemake.input.validation,
            checkpoint_dir=snakemake.params.checkpoint_dir,
            settings=settings,
            where=where,
            teacher=teacher,
            space=space,
            threads=snakemake.threads,
        )
        supernet.to(device)
    else:
        hyperparameters, recipe = split_recipe(settings)
        epochs = train_supernet(
            supernet,
            None if teacher is None else load_supernet(teacher),
            space,
            train,
            validation,
            checkpoint_dir=snakemake.params.checkpoint_dir,
            execution=execution,
            device=device,
            recipe=recipe,
            **hyperparameters,
        )
    metrics = {"epochs": epochs}
for name, arch in zip(("largest", "smallest"), sandwich_archs(space), strict=True):
    metrics[f"{name}_validation_accuracy"] = validation_accuracy(supernet, arch, train, validation)
    logging.info("%s sub-network validation accuracy: %.4f", name, metrics[f"{name}_validation_accuracy"])
supernet.set_active(None)
supernet.cpu()
supernet.save(snakemake.output.supernet)
write_text_atomic(snakemake.output.space, yaml.safe_dump(space.to_dict(), sort_keys=False))
write_json_atomic(snakemake.output.metrics, metrics)
