"""Rule summarize_hosts: the final LINAS latency front on every host profile, normalized per host."""

import json
import logging
from pathlib import Path

import pandas as pd

from simqnas.host_front import host_comparison
from simqnas.io import atomic_path
from simqnas.logs import log_to

log_to(snakemake.log[0])
hosts = snakemake.params.hosts
front = pd.read_csv(snakemake.input.front)
# an empty front (every latency of the search unstable) was measured nowhere: its tables hold no rows
latencies = (
    {}
    if front.empty
    else {host: pd.read_csv(path) for host, path in zip(hosts, snakemake.input.latency, strict=True)}
)
int8 = {
    host: json.loads(Path(path).read_text())["latency_ms"]
    for host, path in zip(hosts, snakemake.input.baselines, strict=True)
}
table = host_comparison(front, latencies, int8)
logging.info("%d front members on %d hosts", table["member"].nunique(), len(hosts))
with atomic_path(snakemake.output[0]) as tmp:
    table.to_csv(tmp, index=False)
