# SimQ-NAS: joint architecture and quantization-policy search, reproduced from files.
#   snakemake --cores N results/figures     (figures + tables of the configured experiments)
# The DAG mirrors rules/: data -> supernet -> calibration -> baseline -> search (iterations are
# checkpoints, evaluation in shards) -> latency -> test (held-out split) -> report.
import sys

from snakemake.utils import min_version, validate

from simqnas.config import (
    ConfigError,
    check_config,
    check_config_files,
    check_results_folder,
    put_on_pythonpath,
)

min_version("9.27")

put_on_pythonpath(workflow.basedir)


# The config files read strictly first (a key given twice, a file that is not UTF-8, an alias bomb: one
# line), before Snakemake's loader reads the embedded default.
try:
    check_config_files(workflow.overwrite_configfiles or ["config/config.yaml"])
except ConfigError as error:
    sys.exit(str(error))


# The embedded default, unless --configfile names a complete config of its own (not merged with it, so a
# user's experiments never inherit the default's).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


try:
    # the networks are built (without memory) once, by the main process, not again by every job; a local
    # run's jobs use this machine's devices, so a `cuda` it lacks is refused here (a cluster job checks its node)
    RUNS = check_config(
        config,
        networks=workflow.is_main_process,
        devices=workflow.is_main_process and workflow.local_exec,
    )
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
