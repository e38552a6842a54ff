# SimQ-NAS: joint architecture and quantization-policy search, reproduced from files.
#   snakemake --cores N results/figures     (figures + tables of the configured experiments)
# The DAG mirrors rules/: data -> supernet -> calibration -> baseline -> search (iterations are
# checkpoints, evaluation in shards) -> latency -> test (held-out split) -> report.
import sys

from snakemake.utils import min_version, validate

from simqnas.config import (
    ConfigError,
    check_config,
    check_results_folder,
    put_on_pythonpath,
)

min_version("9.27")

put_on_pythonpath(workflow.basedir)


# The embedded default, unless --configfile names a complete config of its own (not merged with it, so a
# user's experiments never inherit the default's).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


try:
    RUNS = check_config(config)
    check_results_folder()
except ConfigError as error:
    # one line naming the key, file or value, before any job runs
    sys.exit(str(error))
validate(config, "config/schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/supernet.smk"
include: "rules/calibration.smk"
include: "rules/baseline.smk"
include: "rules/search.smk"
include: "rules/latency.smk"
include: "rules/test.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/figures",
