"""Rule claims_table: the paper's four qualitative claims for every searched network, from intervals."""

import json
from pathlib import Path

import pandas as pd

from simqnas.claims import claims_markdown, claims_table
from simqnas.io import write_text_atomic
from simqnas.logs import log_to

log_to(snakemake.log[0])
inputs = snakemake.input
tables = [
    claims_table(
        net,
        pd.read_csv(inputs.evaluations[i]),
        pd.read_csv(inputs.baselines[i]),
        pd.read_csv(inputs.hypervolume[i]),
        json.loads(Path(inputs.normalization[i]).read_text()),
        pd.read_csv(inputs.test[i]),
        pd.read_csv(inputs.test_baselines[i]),
        snakemake.params.margin,
    )
    for i, net in enumerate(snakemake.params.nets)
]
table = pd.concat(tables, ignore_index=True)
write_text_atomic(snakemake.output.csv, table.to_csv(index=False))
write_text_atomic(snakemake.output.md, claims_markdown(table))
