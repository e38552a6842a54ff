"""Rule test_front: every point of a search run's own validation front, on the held-out test split."""

import pandas as pd

from simqnas.evalstore import EvaluationStore
from simqnas.heldout import front_test_table
from simqnas.io import atomic_path
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, evaluation_settings

log_to(snakemake.log[0])
context = EvaluationContext.load(
    snakemake.input.supernet,
    snakemake.input.space,
    snakemake.wildcards.space,
    snakemake.input.calibration,
    snakemake.input.test,
    evaluation_settings(snakemake.params.supernet),
    snakemake.params.quality_threads,
)
table = front_test_table(
    context,
    pd.read_csv(snakemake.input.evaluations),
    snakemake.wildcards.obj,
    EvaluationStore(snakemake.params.store),
)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
