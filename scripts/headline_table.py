"""Rule headline_table: the paper's headline claims for a super-network, measured, next to the paper's."""

import pandas as pd

from simqnas.headline import headline_table
from simqnas.io import write_text_atomic
from simqnas.logs import log_to

log_to(snakemake.log[0])
table = headline_table(
    snakemake.params.family,
    pd.read_csv(snakemake.input.evaluations),
    pd.read_csv(snakemake.input.baselines),
    snakemake.params.tolerance,
)
write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
shown = table[[c for c in table.columns if not c.endswith("_value") and c != "iso_accuracy_tolerance"]]
note = (
    f"\n\nIso-accuracy: a point counts when its accuracy >= the all-INT8 baseline's minus "
    f"{snakemake.params.tolerance * 100:.2f} percentage points. Fronts pool every seed of an algorithm.\n"
)
write_text_atomic(snakemake.output.md, shown.to_markdown(index=False) + note)
