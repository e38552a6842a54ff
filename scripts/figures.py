"""Rule figures: every figure of every configured super-network under results/figures/{net}/."""

import logging
from pathlib import Path

import pandas as pd

from simqnas.logs import log_to
from simqnas.plots import host_figures, network_figures

log_to(snakemake.log[0])
out = Path(snakemake.output[0])
for net, evaluations, baselines, hypervolume in zip(
    snakemake.params.nets,
    snakemake.input.evaluations,
    snakemake.input.baselines,
    snakemake.input.hypervolume,
    strict=True,
):
    written = network_figures(
        net, pd.read_csv(evaluations), pd.read_csv(baselines), pd.read_csv(hypervolume), out / net
    )
    logging.info("%s: %d files", net, len(written))
# the final LINAS latency front of each super-network on every host profile
for net, hosts in zip(snakemake.params.host_nets, snakemake.input.hosts, strict=True):
    written = host_figures(net, pd.read_csv(hosts), out / net)
    logging.info("%s: %d files (hosts)", net, len(written))
