"""Rule finetune_teacher: full fine-tuning of the pretrained network, the distillation teacher.
`teacher.processes` > 1: in that many torchrun processes (simqnas.distributed)."""

import logging

from simqnas.data import load_split
from simqnas.data.streaming import load_training_split
from simqnas.distributed import train_in_processes
from simqnas.execution import job_device, split_execution
from simqnas.io import write_json_atomic
from simqnas.logs import log_to
from simqnas.recipe import split_recipe
from simqnas.supernets import build_supernet
from simqnas.training import finetune_teacher

log_to(snakemake.log[0])
spec = snakemake.params.supernet
where = f"supernets.{snakemake.wildcards.net}.teacher"
settings, execution = split_execution(spec["teacher"], where)
hyperparameters, recipe = split_recipe(settings)
device = job_device(execution, where)
teacher = build_supernet(spec, snakemake.params.dataset, seed=spec["teacher"]["seed"])
if execution.processes > 1:
    accuracy = train_in_processes(
        "teacher",
        teacher,
        execution=execution,
        train=snakemake.input.train,
        validation=snakemake.input.validation,
        checkpoint_dir=snakemake.params.checkpoint_dir,
        settings=settings,
        where=where,
        threads=snakemake.threads,
    )
else:
    accuracy = finetune_teacher(
        teacher,
        load_training_split(snakemake.input.train, execution.workers),
        load_split(snakemake.input.validation),
        checkpoint_dir=snakemake.params.checkpoint_dir,
        execution=execution,
        device=device,
        recipe=recipe,
        **hyperparameters,
    )
logging.info("teacher validation accuracy: %.4f", accuracy)
teacher.cpu()
teacher.save(snakemake.output.teacher)
write_json_atomic(snakemake.output.metrics, {"validation_accuracy": accuracy, "settings": spec["teacher"]})
