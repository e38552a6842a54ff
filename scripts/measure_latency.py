"""Rule measure_latency: an iteration's candidates on a host profile, in one pass each: compiled INT8
end-to-end latency, accuracy and size (one quantization serves both)."""

from simqnas.evalstore import EvaluationStore
from simqnas.history import read_candidates
from simqnas.io import atomic_path
from simqnas.latency import HostProfile
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, measure_on_host

log_to(snakemake.log[0])
host, machine = HostProfile.for_latency_job(snakemake.params.host)
context = EvaluationContext.from_job(
    snakemake.input, snakemake.wildcards.space, snakemake.params.supernet, snakemake.params.quality_threads
)
genomes = read_candidates(snakemake.input.candidates)
store = EvaluationStore(snakemake.params.store)
table = measure_on_host(
    context,
    enumerate(genomes),
    host,
    machine,
    store,
    with_quality=True,
)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
