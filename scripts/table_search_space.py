"""Rule table_search_space: the paper's Tables 1-3 from config/spaces/paper/ and the configured spaces."""

from contextlib import redirect_stderr

from simqnas.tables import table_models, write_search_space_tables

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    models = table_models(snakemake.input.paper_spaces, dict(snakemake.params.extra_spaces))
    write_search_space_tables(
        models,
        table1_csv=snakemake.output.table1_csv,
        table1_md=snakemake.output.table1_md,
        table23_csv=snakemake.output.table23_csv,
        table23_md=snakemake.output.table23_md,
    )
