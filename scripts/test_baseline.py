"""Rule test_baseline: the full network in FP32 or all-INT8 on the held-out test split, per sample."""

import logging

from simqnas.evalstore import EvaluationStore
from simqnas.heldout import baseline_test
from simqnas.io import write_json_atomic
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, evaluation_settings

log_to(snakemake.log[0])
context = EvaluationContext.load(
    snakemake.input.supernet,
    snakemake.input.space,
    "joint",
    snakemake.input.calibration,
    snakemake.input.test,
    evaluation_settings(snakemake.params.supernet),
    snakemake.params.quality_threads,
)
record = baseline_test(context, snakemake.wildcards.precision, EvaluationStore(snakemake.params.store))
logging.info("test baseline %s: accuracy %.4f", snakemake.wildcards.precision, record["accuracy"])
write_json_atomic(snakemake.output[0], record)
