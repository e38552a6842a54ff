"""Rule headline_table: the paper's headline claims for a super-network, measured (validation picks the point,
the held-out test split reports it), next to the paper's."""

import pandas as pd

from simqnas.headline import headline_markdown, headline_table
from simqnas.io import write_text_atomic
from simqnas.logs import log_to

log_to(snakemake.log[0])
table = headline_table(
    snakemake.params.family,
    pd.read_csv(snakemake.input.evaluations),
    pd.read_csv(snakemake.input.baselines),
    snakemake.params.margin,
    references=snakemake.params.references,
    test=pd.read_csv(snakemake.input.test),
    test_baselines=pd.read_csv(snakemake.input.test_baselines),
)
write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
write_text_atomic(snakemake.output.md, headline_markdown(table, snakemake.params.margin))
