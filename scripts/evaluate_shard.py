"""Rule evaluate_shard: accuracy and size of every shards-th candidate of an iteration's pool of runs, in one
process."""

from simqnas.evalstore import EvaluationStore
from simqnas.history import read_candidates
from simqnas.io import atomic_path
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, evaluate_pool, pool_members

log_to(snakemake.log[0])
context = EvaluationContext.from_job(
    snakemake.input, snakemake.wildcards.space, snakemake.params.supernet, snakemake.params.quality_threads
)
runs, paths = snakemake.params.runs, snakemake.input.candidates
candidates = {run: read_candidates(path) for run, path in zip(runs, paths, strict=True)}
members = pool_members(candidates, int(snakemake.wildcards.shard), snakemake.params.shards)
table = evaluate_pool(context, members, EvaluationStore(snakemake.params.store))
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
