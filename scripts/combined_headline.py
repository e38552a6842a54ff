"""Rule combined_headline: every searched network's headline table in one, the paper's numbers beside ours."""

from simqnas.headline import combined_headline, headline_markdown, read_headline
from simqnas.io import write_text_atomic
from simqnas.logs import log_to

log_to(snakemake.log[0])
table = combined_headline(
    snakemake.params.nets, snakemake.params.families, [read_headline(path) for path in snakemake.input]
)
write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
write_text_atomic(snakemake.output.md, headline_markdown(table, snakemake.params.margin))
