"""Rule remeasure_front_latency: the final LINAS latency front measured on one host profile."""

import json
import logging

import numpy as np
import pandas as pd

from simqnas.evalstore import EvaluationStore
from simqnas.io import atomic_path
from simqnas.latency import HostProfile
from simqnas.logs import log_to
from simqnas.shard import EvaluationContext, measure_on_host

log_to(snakemake.log[0])
host, machine = HostProfile.for_latency_job(snakemake.params.host)
front = pd.read_csv(snakemake.input.front)
if front.empty:  # every latency of the search stayed unstable: nothing to measure (summarize_hosts says so)
    logging.warning("the latency front is empty: nothing to measure on host %s", host.name)
    table = pd.DataFrame(columns=["candidate", "latency_ms", "host"])
else:
    members = [
        (int(m), np.asarray(json.loads(g))) for m, g in zip(front["member"], front["genome"], strict=True)
    ]
    context = EvaluationContext.from_job(snakemake.input, "joint", snakemake.params.supernet)
    store = EvaluationStore(snakemake.params.store)
    table = measure_on_host(context, members, host, machine, store, with_quality=False)
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
