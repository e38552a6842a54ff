"""Rule remeasure_front_latency: the final LINAS latency front measured on one host profile."""

import json

import numpy as np
import pandas as pd

from simqnas.evalstore import EvaluationStore
from simqnas.io import atomic_path
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, HostProfile, measure_latencies

log_to(snakemake.log[0])
host = HostProfile.for_latency_job(snakemake.params.host)
front = pd.read_csv(snakemake.input.front)
members = [(int(m), np.asarray(json.loads(g))) for m, g in zip(front["member"], front["genome"], strict=True)]
context = EvaluationContext.from_job(snakemake.input, "joint", snakemake.params.supernet)
table = measure_latencies(context, members, host, EvaluationStore(snakemake.params.store))
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
