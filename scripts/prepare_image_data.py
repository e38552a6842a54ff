"""Rule prepare_image_data: stratified train / validation / calibration / test image splits (with
`stream: true`, the training split as a list of its files, decoded when training reads it)."""

import logging

from simqnas.data.prepare import SPLITS, prepare_image_dataset, save_image_split
from simqnas.io import write_json_atomic
from simqnas.logs import log_to

log_to(snakemake.log[0])
tensors, summary = prepare_image_dataset(snakemake.params.dataset)
for split in SPLITS:
    save_image_split(snakemake.output[split], tensors[split])
logging.info("splits: %s", summary["splits"])
write_json_atomic(snakemake.output.summary, summary)
