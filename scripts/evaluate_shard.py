"""Rule evaluate_shard: accuracy and size of every shards-th candidate of an iteration, in one process."""

from simqnas.evalstore import EvaluationStore
from simqnas.history import read_candidates
from simqnas.io import atomic_path
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, evaluate_quality, shard_members

log_to(snakemake.log[0])
context = EvaluationContext.from_job(
    snakemake.input, snakemake.wildcards.space, snakemake.params.supernet, snakemake.params.quality_threads
)
members = shard_members(
    read_candidates(snakemake.input.candidates), int(snakemake.wildcards.shard), snakemake.params.shards
)
table = evaluate_quality(context, members, EvaluationStore(snakemake.params.store))
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
