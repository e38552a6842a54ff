"""Rule train_supernet: sandwich-rule elastic training (distilled from the teacher if the config has one),
or a given checkpoint."""

import logging

import yaml

from simqnas.data import load_split
from simqnas.io import write_json_atomic, write_text_atomic
from simqnas.logs import log_to
from simqnas.space import space_from_spec
from simqnas.supernets import build_supernet, load_supernet, resolve_space, sandwich_archs
from simqnas.training import train_supernet, validation_accuracy

log_to(snakemake.log[0])
spec = snakemake.params.supernet
train, validation = load_split(snakemake.input.train), load_split(snakemake.input.validation)
if hasattr(snakemake.input, "checkpoint"):
    supernet = load_supernet(snakemake.input.checkpoint)
    space = resolve_space(space_from_spec(spec["space"], "supernet.space"), supernet)
    metrics = {"source": snakemake.input.checkpoint}
else:
    supernet = build_supernet(spec, snakemake.params.dataset, seed=spec["training"]["seed"])
    space = resolve_space(space_from_spec(spec["space"], "supernet.space"), supernet)
    metrics = {
        "epochs": train_supernet(
            supernet,
            load_supernet(snakemake.input.teacher) if hasattr(snakemake.input, "teacher") else None,
            space,
            train,
            validation,
            checkpoint_dir=snakemake.params.checkpoint_dir,
            **spec["training"],
        )
    }
for name, arch in zip(("largest", "smallest"), sandwich_archs(space), strict=True):
    metrics[f"{name}_validation_accuracy"] = validation_accuracy(supernet, arch, train, validation)
    logging.info("%s sub-network validation accuracy: %.4f", name, metrics[f"{name}_validation_accuracy"])
supernet.set_active(None)
supernet.save(snakemake.output.supernet)
write_text_atomic(snakemake.output.space, yaml.safe_dump(space.to_dict(), sort_keys=False))
write_json_atomic(snakemake.output.metrics, metrics)
