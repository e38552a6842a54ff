"""Rule baseline_quality: accuracy and size of the full super-network in FP32 or all-INT8."""

import logging

from simqnas.io import write_json_atomic
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, evaluate_baseline

log_to(snakemake.log[0])
context = EvaluationContext.from_job(
    snakemake.input, "joint", snakemake.params.supernet, snakemake.params.quality_threads
)
record = evaluate_baseline(context, snakemake.wildcards.precision)
logging.info("baseline %s: %s", snakemake.wildcards.precision, record)
write_json_atomic(snakemake.output[0], record)
