#!/usr/bin/env bash
# The default experiment (config.yaml) through `snakemake --profile slurm` against a local run of
# the same config, on the single-node cluster of scripts/slurm/cluster.sh:
#   1. local cold run, --cores $(nproc)               (the reference)
#   2. profile cold run                                target: <= 2x the local cold run
#   3. profile run after one method's bits changed     target: <= 45 s
#   4. profile no-op run (everything up to date)       target: <= 3 s
# For each profile run it also prints the cluster's idle time inside the run (seconds between the
# first submission and the last SLURM job's end when no job of the run was running, from sacct)
# and the exit tail (process end minus the newest file under results/).
# Run as root from the repository root: bash benchmarks/slurm_bench.sh
# PYTHON picks the interpreter that has quantbench, Snakemake and the SLURM plugin (default:
# .venv/bin/python of the repository if present, else python3). ACCOUNT: the SLURM account
# (default quantbench, the one cluster.sh creates). The cluster is left as found: running if it
# was running, stopped otherwise. The machine may be shared: `uptime` is printed with the figures.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER="$ROOT/scripts/slurm/cluster.sh"
if [[ -z ${PYTHON:-} ]]; then
    PYTHON=python3
    [[ -x $ROOT/.venv/bin/python ]] && PYTHON=$ROOT/.venv/bin/python
fi
export SBATCH_ACCOUNT=${ACCOUNT:-quantbench}
LIMIT_S=${LIMIT_S:-1200} # per run

was_running=0
bash "$CLUSTER" status >/dev/null 2>&1 && was_running=1
((was_running)) || bash "$CLUSTER" start >/dev/null

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
    for item in Snakefile config.yaml workflow src envs profiles slurm; do
        [[ -e $ROOT/$item ]] && cp -r "$ROOT/$item" "$1/"
    done
}

# timed LOG COMMAND...: run COMMAND with its output in LOG; sets T0, T1 (epoch seconds) and SECS.
timed() {
    local log=$1
    shift
    T0=$(date +%s.%N)
    if ! "$@" >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "failed: $*" >&2
        exit 1
    fi
    T1=$(date +%s.%N)
    SECS=$(awk -v a="$T0" -v b="$T1" 'BEGIN {printf "%.1f", b - a}')
}

profile_run() { # LOG: one profile run in $work/slurm; sets T0, T1, SECS
    cd "$work/slurm"
    timed "$1" timeout -k 10 "$LIMIT_S" "$PYTHON" -m snakemake --profile slurm
    cd - >/dev/null
}

# run_facts LOG T0 T1: "<jobs> <idle s> <exit tail s>" of one profile run.
run_facts() {
    local log=$1 t0=$2 t1=$3 run_id jobs newest
    jobs=$(grep -c 'has been submitted with SLURM jobid' "$log" || true)
    newest=$(find "$work/slurm/results" -type f -printf '%T@\n' | sort -n | tail -1)
    run_id=$(sed -n 's/.*SLURM run ID: \([^ ]*\).*/\1/p' "$log" | head -1)
    local idle=n/a
    if [[ -n $run_id && $jobs -gt 0 ]]; then
        # Start and End of every allocation; idle = time in [first submit, last end] with none.
        idle=$(sacct -X -n -P --name "$run_id" -o Submit,Start,End \
            --starttime "$(date -d @"${t0%.*}" +%Y-%m-%dT%H:%M:%S)" --endtime now |
            "$PYTHON" -c '
import sys
from datetime import datetime as dt
rows = [[dt.fromisoformat(f) for f in line.strip().split("|")] for line in sys.stdin if line.strip()]
first = min(r[0] for r in rows)
spans = sorted((r[1], r[2]) for r in rows)
idle, reach = 0.0, first
for start, end in spans:
    if start > reach:
        idle += (start - reach).total_seconds()
    reach = max(reach, end)
print(f"{idle:.0f}")')
    fi
    echo "$jobs $idle $(awk -v a="$newest" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
}

echo "== local cold run (--cores $(nproc))" >&2
copy_workflow "$work/local"
cd "$work/local"
timed "$work/local.log" "$PYTHON" -m snakemake --cores "$(nproc)"
cd - >/dev/null
local_s=$SECS
load_local=$(uptime)

echo "== profile cold run" >&2
copy_workflow "$work/slurm"
profile_run "$work/cold.log"
cold_s=$SECS
read -r cold_jobs cold_idle cold_tail < <(run_facts "$work/cold.log" "$T0" "$T1")
load_cold=$(uptime)

echo "== profile run, one method changed (rtn_w4 bits 4 -> 8)" >&2
sed -i 's/rtn_w4: {kind: rtn, bits: 4,/rtn_w4: {kind: rtn, bits: 8,/' "$work/slurm/config.yaml"
grep -q 'rtn_w4: {kind: rtn, bits: 8,' "$work/slurm/config.yaml" ||
    { echo "config.yaml has no rtn_w4 line to change" >&2; exit 1; }
profile_run "$work/change.log"
change_s=$SECS
read -r change_jobs change_idle change_tail < <(run_facts "$work/change.log" "$T0" "$T1")

echo "== profile no-op run" >&2
profile_run "$work/noop.log"
noop_s=$SECS
grep -q 'Nothing to be done' "$work/noop.log" || { tail -20 "$work/noop.log" >&2; exit 1; }
load_end=$(uptime)

ratio=$(awk -v a="$cold_s" -v b="$local_s" 'BEGIN {printf "%.2f", a / b}')
printf '\n| run | seconds | sbatch jobs | cluster idle s | exit tail s | target |\n'
printf '| --- | ---: | ---: | ---: | ---: | --- |\n'
printf '| local cold, --cores %s | %s | | | | reference |\n' "$(nproc)" "$local_s"
printf '| profile cold | %s | %s | %s | %s | <= 2x local (now %sx) |\n' \
    "$cold_s" "$cold_jobs" "$cold_idle" "$cold_tail" "$ratio"
printf '| profile, rtn_w4 bits changed | %s | %s | %s | %s | <= 45 s |\n' \
    "$change_s" "$change_jobs" "$change_idle" "$change_tail"
printf '| profile no-op | %s | | | | <= 3 s |\n' "$noop_s"
printf '\nload after local run: %s\nload after profile cold run: %s\nload at end: %s\n' \
    "$load_local" "$load_cold" "$load_end"
printf 'machine: %s CPUs, %s MiB, %s\n' "$(nproc)" \
    "$(free -m | awk '/^Mem:/ {print $2}')" "$(sinfo --version)"
