"""Rule collect_run: every evaluation of a search run in evaluation order, with the run's identity."""

import pandas as pd

from simqnas.io import atomic_path
from simqnas.logs import log_to

log_to(snakemake.log[0])

run = snakemake.params.run
table = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
table.insert(0, "evaluation", range(len(table)))
for column, value in reversed(
    [
        ("net", run.net),
        ("space", run.space),
        ("objective", run.objective),
        ("algorithm", run.algorithm),
        ("seed", run.seed),
    ]
):
    table.insert(0, column, value)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
