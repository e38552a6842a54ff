"""Rule calibration_set: the seeded calibration subset (sample count from the config)."""

import logging

from simqnas.data import load_split, save_split
from simqnas.data.prepare import calibration_subset
from simqnas.logs import log_to

log_to(snakemake.log[0])
spec = snakemake.params.calibration
subset = calibration_subset(load_split(snakemake.input.calibration), spec["samples"], spec["seed"])
logging.info("calibration subset: %d samples (seed %d)", len(subset["labels"]), spec["seed"])
save_split(snakemake.output[0], subset)
