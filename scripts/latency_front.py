"""Rule latency_front: the final LINAS front of the joint accuracy + latency search (seeds pooled)."""

import logging

import pandas as pd

from simqnas.host_front import latency_front
from simqnas.io import atomic_path
from simqnas.logs import log_to

log_to(snakemake.log[0])
front = latency_front(
    pd.read_csv(snakemake.input.evaluations),
    snakemake.params.search,
    unstable=pd.read_csv(snakemake.input.unstable),
)
logging.info("front of %d networks, to be re-measured on every host", len(front))
with atomic_path(snakemake.output[0]) as tmp:
    front.to_csv(tmp, index=False)
