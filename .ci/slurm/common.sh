# Shared settings of .ci/slurm/up.sh and down.sh (sourced, not run).
# Everything (config, munge key and socket, state, PID files, logs) lives under one private directory,
# so a system slurm.conf or munged is never touched. Point SLURM's commands at it with the printed
#   export SLURM_CONF=$SIMQNAS_SLURM_DIR/etc/slurm.conf
SIMQNAS_SLURM_DIR=${SIMQNAS_SLURM_DIR:-/run/simqnas-slurm}
# Node names and their features (NAME:FEATURE[,FEATURE...]); each feature stands for one host profile of
# the workflow config (`hosts: {name: {feature: ...}}`), the target of `--constraint`.
SIMQNAS_SLURM_NODES=${SIMQNAS_SLURM_NODES:-"node8380:xeon8380 node8480:xeon8480"}
# slurmctld listens on PORT, the slurmd of node i on PORT+1+i (away from the default 6817/6818).
SIMQNAS_SLURM_PORT=${SIMQNAS_SLURM_PORT:-16817}
# Seconds to wait for the nodes to become idle.
SIMQNAS_SLURM_TIMEOUT=${SIMQNAS_SLURM_TIMEOUT:-90}

D=$SIMQNAS_SLURM_DIR
CONF=$D/etc/slurm.conf
export SLURM_CONF=$CONF

node_names() {
    local spec
    for spec in $SIMQNAS_SLURM_NODES; do echo "${spec%%:*}"; done
}

# PID of a PID file if that process is alive, else nothing.
live_pid() {
    local f=$1 pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

show_logs() {
    local f
    for f in "$D"/log/*.log; do
        [[ -f $f ]] || continue
        echo "----- $f (last 30 lines) -----" >&2
        tail -n 30 "$f" >&2
    done
}

require_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: $0 must run as root (it installs packages and starts munged, slurmctld, slurmd)." >&2
        exit 1
    fi
}
