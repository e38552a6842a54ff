"""Rule finetune_teacher: full fine-tuning of the pretrained network, the distillation teacher."""

import logging

from simqnas.data import load_split
from simqnas.io import write_json_atomic
from simqnas.logs import log_to
from simqnas.supernets import build_supernet
from simqnas.training import finetune_teacher

log_to(snakemake.log[0])
spec = snakemake.params.supernet
teacher = build_supernet(spec, snakemake.params.dataset, seed=spec["teacher"]["seed"])
accuracy = finetune_teacher(
    teacher,
    load_split(snakemake.input.train),
    load_split(snakemake.input.validation),
    checkpoint_dir=snakemake.params.checkpoint_dir,
    **spec["teacher"],
)
logging.info("teacher validation accuracy: %.4f", accuracy)
teacher.save(snakemake.output.teacher)
write_json_atomic(snakemake.output.metrics, {"validation_accuracy": accuracy, "settings": spec["teacher"]})
