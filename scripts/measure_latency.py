"""Rule measure_latency: compiled INT8 end-to-end latency of an iteration's candidates on a host profile."""

from simqnas.evalstore import EvaluationStore
from simqnas.history import read_candidates
from simqnas.io import atomic_path
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, HostProfile, measure_latencies

log_to(snakemake.log[0])
host = HostProfile.for_latency_job(snakemake.params.host)
context = EvaluationContext.from_job(snakemake.input, snakemake.wildcards.space, snakemake.params.supernet)
genomes = read_candidates(snakemake.input.candidates)
table = measure_latencies(context, list(enumerate(genomes)), host, EvaluationStore(snakemake.params.store))
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
