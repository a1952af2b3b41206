#!/usr/bin/env bash
# Times the SLURM test path on this machine:
#   1. scripts/slurm/cluster.sh start, from stopped daemons (packages already installed),
#   2. the tiny config through `snakemake --profile slurm`, with the flags tests/test_slurm.py uses,
#   3. the same config with the local executor (`--cores 2`), for comparison.
# Run as root from anywhere: bash benchmarks/slurm_bench.sh
# PYTHON picks the interpreter that has quantbench, Snakemake and the SLURM plugin
# (default: .venv/bin/python of the repository if present, else python3).
# The cluster is left as it was found: running if it was running, stopped otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER="$ROOT/scripts/slurm/cluster.sh"
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x $ROOT/.venv/bin/python ]] && PYTHON=$ROOT/.venv/bin/python
fi

was_running=0
bash "$CLUSTER" status >/dev/null 2>&1 && was_running=1

work=$(mktemp -d -t quantbench-slurm-bench.XXXXXX)
cleanup() {
    rm -rf "$work"
    ((was_running)) || bash "$CLUSTER" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

# copy_workflow DEST: the files a run needs, never results or logs.
copy_workflow() {
    mkdir -p "$1"
    local item
    for item in Snakefile config.yaml workflow src envs profiles tests slurm; do
        [[ -e $ROOT/$item ]] && cp -r "$ROOT/$item" "$1/"
    done
}

# seconds LOG COMMAND...: run COMMAND with its output in LOG, print its wall time in seconds;
# on failure show the end of LOG and fail.
seconds() {
    local log=$1 t0 t1
    shift
    t0=$(date +%s.%N)
    if ! "$@" >"$log" 2>&1; then
        tail -40 "$log" >&2
        return 1
    fi
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}'
}

echo "== cluster start (from stopped daemons)" >&2
bash "$CLUSTER" stop >/dev/null 2>&1 || true
start_s=$(seconds "$work/start.log" bash "$CLUSTER" start)

echo "== tiny config through SLURM" >&2
copy_workflow "$work/slurm"
slurm_s=$(
    cd "$work/slurm"
    SBATCH_ACCOUNT=quantbench seconds "$work/slurm.log" timeout -k 10 300 "$PYTHON" -m snakemake \
        --profile slurm --configfile tests/config_tiny.yaml \
        --retries 0 --slurm-init-seconds-before-status-checks 2
)
jobs=$(grep -c 'has been submitted with SLURM jobid' "$work/slurm.log" || true)

echo "== tiny config, local executor" >&2
copy_workflow "$work/local"
local_s=$(
    cd "$work/local"
    seconds "$work/local.log" "$PYTHON" -m snakemake --configfile tests/config_tiny.yaml --cores 2
)

printf '\n| step | seconds |\n| --- | ---: |\n'
printf '| cluster start (munge, MariaDB, slurmdbd, slurmctld, slurmd; node idle, sacct up) | %s |\n' "$start_s"
printf '| tiny config through SLURM (%s sbatch jobs) | %s |\n' "$jobs" "$slurm_s"
printf '| tiny config, local executor, --cores 2 | %s |\n' "$local_s"
printf '\nmachine: %s CPUs, %s MiB, %s\n' "$(nproc)" \
    "$(free -m | awk '/^Mem:/ {print $2}')" "$(sinfo --version)"
