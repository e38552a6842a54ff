#!/usr/bin/env bash
# Stop the one-machine SLURM cluster started by .ci/slurm/up.sh and clear its state. Idempotent: safe to
# run when nothing is up, and meant to run from a trap (`trap 'bash .ci/slurm/down.sh' EXIT`).
# Logs stay in $SIMQNAS_SLURM_DIR/log for inspection (up.sh clears them), and the munge key stays;
# SIMQNAS_SLURM_PURGE=1 removes the whole directory.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
require_root

stop_pidfile() {  # stop_pidfile FILE NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local f=$1 name=$2 pid i
    pid=$(live_pid "$f") || { rm -f "$f"; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "$name (pid $pid) ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
    echo "stopped $name (pid $pid)"
}

if [[ -d $D ]]; then
    # Cancel whatever is still queued or running, so no job step outlives its slurmd.
    if live_pid "$D/run/slurmctld.pid" >/dev/null && [[ -n $(timeout 10 squeue -h -o %i 2>/dev/null) ]]; then
        timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null
        for ((i = 0; i < 30; i++)); do
            [[ -z $(timeout 10 squeue -h -o %i -t PENDING,RUNNING,CONFIGURING,COMPLETING 2>/dev/null) ]] && break
            sleep 0.5
        done
    fi
    for n in $(node_names); do stop_pidfile "$D/run/slurmd-$n.pid" "slurmd $n"; done
    stop_pidfile "$D/run/slurmctld.pid" slurmctld
    stop_pidfile "$D/munge/munged.pid" munged
    # the config goes too: a slurm.conf whose slurmctld is down makes every SLURM client call (and every
    # snakemake call) wait ~10 s for the controller; without it they fail at once
    rm -rf "$D/state" "$D/run" "$D/etc" "$D/bin" "$D/env.sh"
    if [[ ${SIMQNAS_SLURM_PURGE:-0} == 1 ]]; then rm -rf "$D"; fi
fi
echo "SLURM test cluster at $D is down."
exit 0
