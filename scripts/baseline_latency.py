"""Rule baseline_latency: compiled latency of the full super-network (FP32 or all-INT8) on a host."""

import logging
import sys

from simqnas.io import write_json_atomic
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, HostProfile, WrongHostError, baseline_latency

log_to(snakemake.log[0])
host = HostProfile.from_config(snakemake.params.host)
try:
    host.checked_machine()  # before loading anything: a wrong node fails in seconds, with one line
except WrongHostError as error:
    sys.exit(str(error))
context = EvaluationContext.from_job(snakemake.input, "joint", snakemake.params.supernet)
record = baseline_latency(context, snakemake.wildcards.precision, host)
logging.info("baseline latency %s on %s: %.3f ms", record["precision"], record["host"], record["latency_ms"])
write_json_atomic(snakemake.output[0], record)
