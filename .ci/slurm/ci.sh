#!/usr/bin/env bash
# CI on a SLURM cluster brought up on this machine: up.sh, the SLURM tests, and down.sh from a trap, so the
# daemons stop also when a test fails or the job is cancelled. Run as root from anywhere:
#
#   bash .ci/slurm/ci.sh                          # tests/test_slurm.py tests/test_slurm_workflow.py
#   bash .ci/slurm/ci.sh tests/test_slurm.py tests/test_workflow.py -k slurm    # any pytest arguments
#
# Every run is wrapped in `timeout -k 30`: a hung status loop of the SLURM executor ignores SIGTERM's
# graceful wait. SIMQNAS_SLURM_CI_TIMEOUT (seconds, default 1800) bounds the whole pytest run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
child=""
cleanup() {
    # on a signal, stop the tests first (timeout passes the signal to its whole process group)
    if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
        kill -TERM "$child" 2>/dev/null
        wait "$child" 2>/dev/null || true  # (set -e holds in traps too)
    fi
    bash .ci/slurm/down.sh || true
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
bash .ci/slurm/up.sh
# shellcheck disable=SC1091
source "${SIMQNAS_SLURM_DIR:-/run/simqnas-slurm}/env.sh"
export HF_HUB_OFFLINE=1
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(tests/test_slurm.py tests/test_slurm_workflow.py)
# in the background + wait, so that a TERM/INT to this script is handled at once, not after the tests
timeout -k 30 "${SIMQNAS_SLURM_CI_TIMEOUT:-1800}" .venv/bin/python -m pytest -q "${args[@]}" &
child=$!
wait "$child"
