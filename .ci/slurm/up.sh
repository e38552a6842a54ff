#!/usr/bin/env bash
# Bring up a real SLURM cluster on this one machine (Debian's slurm-wlm) for CI and tests: one slurmctld and
# one `slurmd -N NAME` per node name, every node on this host (NodeAddr=127.0.0.1), each carrying its own
# feature (host profile), all in one default partition. Idempotent: when the cluster is already up it only
# prints the export line. Must run as root. Settings: see .ci/slurm/common.sh (env vars SIMQNAS_SLURM_*).
#
#   sudo bash .ci/slurm/up.sh && export SLURM_CONF=/run/simqnas-slurm/etc/slurm.conf
#   ...
#   sudo bash .ci/slurm/down.sh
#
# Nodes over-subscribe the machine: every node advertises all of its cores and most of its memory, so two
# "exclusive" jobs on two different nodes still share the same cores. Good for testing placement and
# scheduling, not for timing.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"
require_root

cluster_up() {  # every daemon alive and every node idle (or allocated/mixed by a running job)
    local n states
    live_pid "$D/munge/munged.pid" >/dev/null || return 1
    live_pid "$D/run/slurmctld.pid" >/dev/null || return 1
    for n in $(node_names); do live_pid "$D/run/slurmd-$n.pid" >/dev/null || return 1; done
    states=$(timeout 10 sinfo -h -N -o '%N %t' 2>/dev/null) || return 1
    [[ $(grep -cE ' (idle|mix|alloc)$' <<<"$states") -eq $(node_names | wc -l) ]]
}

print_env() {
    printf 'export SLURM_CONF=%s PATH=%s/bin:$PATH\n' "$SLURM_CONF" "$D" >"$D/env.sh"
    echo "SLURM test cluster is up. Use it with (or: source $D/env.sh):"
    cat "$D/env.sh"
    # In GitHub Actions, later steps get the variables too.
    if [[ -n ${GITHUB_ENV:-} ]]; then echo "SLURM_CONF=$SLURM_CONF" >>"$GITHUB_ENV"; fi
    if [[ -n ${GITHUB_PATH:-} ]]; then echo "$D/bin" >>"$GITHUB_PATH"; fi
}

if [[ -f $CONF ]] && cluster_up; then
    timeout 10 sinfo -N -o '%N %t %f %c %m' || true
    print_env
    exit 0
fi

# 1. Packages (about 7 s on Debian 12).
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sinfo >/dev/null \
    || ! command -v munged >/dev/null; then
    echo "Installing slurmctld slurmd slurm-client munge ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# 2. A clean slate (stops anything half-started by an earlier run).
bash "$here/down.sh" >/dev/null
rm -rf "$D/log"
mkdir -p "$D/etc" "$D/bin" "$D/run" "$D/state/ctld" "$D/log" "$D/munge"
for n in $(node_names); do mkdir -p "$D/state/slurmd-$n"; done
chmod 755 "$D" "$D/etc" "$D/log"

# srun wrapper: inside a job, snakemake-executor-plugin-slurm-jobstep (0.6.1) runs `srun ... snakemake ...`
# with every SLURM_* variable except the job's identity removed from the environment, SLURM_CONF included,
# so srun would look for /etc/slurm/slurm.conf and fail ("Could not establish a configuration source").
# PATH survives, so this wrapper (first on PATH, see the export line) puts SLURM_CONF back.
cat >"$D/bin/srun" <<WRAP
#!/bin/sh
SLURM_CONF=\${SLURM_CONF:-$CONF} exec /usr/bin/srun "\$@"
WRAP
chmod 755 "$D/bin" "$D/bin/srun"

# 3. munge: a private key, socket and daemon (munged insists on a munge-owned, non-world-writable dir).
if [[ ! -s $D/munge/munge.key ]]; then
    mungekey --create --keyfile="$D/munge/munge.key"
fi
chown -R munge:munge "$D/munge"
chmod 600 "$D/munge/munge.key"
# the socket directory must be reachable by every user that runs SLURM commands
chmod 755 "$D/munge"
touch "$D/log/munged.log" && chown munge:munge "$D/log/munged.log"
runuser -u munge -- /usr/sbin/munged \
    --socket="$D/munge/munge.socket" --pid-file="$D/munge/munged.pid" \
    --key-file="$D/munge/munge.key" --seed-file="$D/munge/munged.seed" --log-file="$D/log/munged.log"

# 4. slurm.conf for this host.
host=$(hostname -s)
cpus=$(nproc)
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# leave 1 GiB to the system; every node advertises the rest (over-subscribed, see above)
node_mem_mb=${SIMQNAS_SLURM_NODE_MEM_MB:-$((mem_total_mb > 2048 ? mem_total_mb - 1024 : mem_total_mb))}
{
    cat <<CONF
# Written by .ci/slurm/up.sh: a one-machine test cluster. Do not use for production.
ClusterName=simqnas
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$SIMQNAS_SLURM_PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# accept the node sizes written here even where they over-subscribe the machine
SlurmdParameters=config_overrides
ReturnToService=2
# finished jobs stay visible to squeue/scontrol (with their requested Features) for an hour; the Snakemake
# plugin's squeue status check needs >= 120 s
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# one line per finished job (JobId, JobState, NodeList, ...): a record that outlives MinJobAge
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MessageTimeout=10
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
StateSaveLocation=$D/state/ctld
SlurmdSpoolDir=$D/state/slurmd-%n
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd-%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
CONF
    i=0
    names=()
    for spec in $SIMQNAS_SLURM_NODES; do
        name=${spec%%:*}
        features=${spec#*:}
        [[ $features == "$spec" ]] && features=""
        echo "NodeName=$name NodeAddr=127.0.0.1 NodeHostname=$host Port=$((SIMQNAS_SLURM_PORT + 1 + i))" \
            "CPUs=$cpus RealMemory=$node_mem_mb${features:+ Feature=$features} State=UNKNOWN"
        names+=("$name")
        i=$((i + 1))
    done
    echo "PartitionName=main Nodes=$(IFS=,; echo "${names[*]}") Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
} >"$CONF"

# 5. Daemons: slurmctld, then one slurmd per node name.
/usr/sbin/slurmctld -f "$CONF"
for n in $(node_names); do
    /usr/sbin/slurmd -f "$CONF" -N "$n"
done

# 6. Wait until every node is idle.
deadline=$((SECONDS + SIMQNAS_SLURM_TIMEOUT))
until cluster_up; do
    if ((SECONDS >= deadline)); then
        echo "error: the SLURM test cluster did not come up within ${SIMQNAS_SLURM_TIMEOUT}s." >&2
        timeout 10 sinfo -N -l >&2 || true
        echo "slurm.conf: $CONF" >&2
        show_logs
        bash "$here/down.sh" >&2 || true
        exit 1
    fi
    sleep 1
done
timeout 10 sinfo -N -o '%N %t %f %c %m'
print_env
