"""Rule gather_iteration: the iteration's evaluations, one row per candidate."""

from simqnas.history import gather_iteration, read_candidates
from simqnas.io import atomic_path
from simqnas.logs import log_to

log_to(snakemake.log[0])

table = gather_iteration(
    read_candidates(snakemake.input.candidates),
    list(snakemake.input.shards),
    list(snakemake.input.latency),
    int(snakemake.wildcards.it),
    run=snakemake.params.run.label,
)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
