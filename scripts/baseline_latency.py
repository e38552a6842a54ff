"""Rule baseline_latency: compiled latency of the full super-network (FP32 or all-INT8) on a host."""

import logging

from simqnas.io import write_json_atomic
from simqnas.latency import HostProfile
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, baseline_latency

log_to(snakemake.log[0])
host, machine = HostProfile.for_latency_job(snakemake.params.host)
context = EvaluationContext.from_job(snakemake.input, "joint", snakemake.params.supernet)
record = baseline_latency(context, snakemake.wildcards.precision, host, machine)
logging.info("baseline latency %s on %s: %.3f ms", record["precision"], record["host"], record["latency_ms"])
write_json_atomic(snakemake.output[0], record)
