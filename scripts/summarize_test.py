"""Rule summarize_test: every run's front points and the baselines on the held-out test split."""

import pandas as pd

from simqnas.io import atomic_path
from simqnas.logs import log_to
from simqnas.summary import heldout_baselines_table, heldout_points

log_to(snakemake.log[0])
PRECISIONS = ("fp32", "int8")
points = heldout_points(pd.read_csv(snakemake.input.evaluations), snakemake.params.runs, snakemake.input.runs)
# input.own holds the network's FP32 and INT8 records, input.references two per reference, in that order
own = dict(zip(PRECISIONS, snakemake.input.own, strict=True))
references = {
    name: dict(zip(PRECISIONS, snakemake.input.references[2 * i : 2 * i + 2], strict=True))
    for i, name in enumerate(snakemake.params.references)
}
baselines = heldout_baselines_table(own, references, snakemake.wildcards.net)
for frame, path in ((points, snakemake.output.points), (baselines, snakemake.output.baselines)):
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
