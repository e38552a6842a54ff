"""Rule summarize_net: tidy tables of every search of a super-network, its baselines (and those of the
reference networks it names), hypervolumes in one fixed normalization per objective (bounds from the data's
chance accuracy and the FP32 full network) and the final hypervolumes over seeds; evaluations with an
unstable latency are listed apart."""

import json
import logging
from pathlib import Path

from simqnas.io import atomic_path, write_json_atomic
from simqnas.logs import log_to
from simqnas.summary import (
    add_normalized_latency,
    baselines_table,
    chance_accuracy,
    final_hypervolumes,
    hypervolume_table,
    load_evaluations,
    reference_files,
    split_unstable_latency,
)

log_to(snakemake.log[0])
quality = {precision: snakemake.input[precision] for precision in ("fp32", "int8")}
latency = {
    tuple(name.removeprefix("latency_").rsplit("_", 1)): path
    for name, path in snakemake.input.items()
    if name.startswith("latency_")
}
# params.references describes input.references file by file: (reference, host or None, precision)
references = reference_files(snakemake.params.references, snakemake.input.references)
baselines = baselines_table(quality, latency, network=snakemake.wildcards.net, references=references)
evaluations = add_normalized_latency(load_evaluations(snakemake.input.runs), baselines)
chance = chance_accuracy(json.loads(Path(snakemake.input.data).read_text()))
hypervolume, normalization = hypervolume_table(evaluations, baselines, chance)
evaluations, unstable = split_unstable_latency(evaluations)
if len(unstable):
    logging.warning(
        "%d evaluations with an unstable latency left out of fronts, hypervolumes and claims: %s",
        len(unstable),
        snakemake.output.unstable_latency,
    )
for frame, path in (
    (evaluations, snakemake.output.evaluations),
    (unstable, snakemake.output.unstable_latency),
    (baselines, snakemake.output.baselines),
    (hypervolume, snakemake.output.hypervolume),
    (final_hypervolumes(hypervolume), snakemake.output.final_hypervolume),
):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
write_json_atomic(snakemake.output.normalization, normalization)
