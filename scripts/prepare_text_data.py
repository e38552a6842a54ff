"""Rule prepare_text_data: tokenized, stratified train / validation / calibration / test splits."""

import logging

from simqnas.data import save_split
from simqnas.data.prepare import SPLITS, prepare_text_dataset
from simqnas.io import write_json_atomic
from simqnas.logs import log_to

log_to(snakemake.log[0])
tensors, summary = prepare_text_dataset(snakemake.params.dataset)
for split in SPLITS:
    save_split(snakemake.output[split], tensors[split])
logging.info("splits: %s", summary["splits"])
write_json_atomic(snakemake.output.summary, summary)
