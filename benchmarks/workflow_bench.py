"""Cold run and no-op rerun of a config, timed end to end, with the figures of its summary.

Usage: python benchmarks/workflow_bench.py [--cores 4] [--configfile FILE] [--config KEY=VALUE ...]
                                           [--keep DIR]

Copies the repository's workflow into a fresh folder (no results, no Snakemake metadata), runs
`snakemake --cores N` there, then runs it again (nothing to do), and prints both wall times with
their targets, then per model and method the accuracy (mean and interval over replicates), the
paired difference to FP32 with its verdict, the checkpoint size ratio, the speed-ups with their
intervals and verdicts, and the recommendation, all read from results/metrics/ and
results/recommendation.json. `--config replicates=1` times the single-replicate run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.workflow_helpers import SNAKEMAKE, copy_workflow


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def interval(block: dict, scale: float = 1.0, digits: int = 2) -> str:
    lo, hi = (scale * v for v in block["ci"])
    return f"{scale * block['estimate']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def method_line(m: dict, fp32: dict) -> str:
    size = m["size_bytes"] / fp32["size_bytes"]
    text = f"  {m['method']:14s} acc {interval(m['accuracy'], 100)} %  size {size:.3f}x FP32"
    if "vs_fp32" in m:
        diff = m["vs_fp32"]["accuracy_diff_pt"]
        text += f"\n{'':17s}Δacc {interval(diff)} pt: {diff['verdict']}"
    for key, label in (("batch_1", "batch 1"), ("batch_n", f"batch {m['throughput']['batch']}")):
        s = m["speedup"][key]
        if s.get("verdict") != "reference":
            text += f"\n{'':17s}speed-up {label}: {interval(s, digits=3)} ({s['verdict']})"
    return text


def report(workdir: Path) -> None:
    results = workdir / "results"
    for folder in sorted((results / "metrics").iterdir()):
        metrics = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
        fp32 = metrics.pop("fp32")
        print(f"model {folder.name}: FP32 accuracy {interval(fp32['accuracy'], 100)} %")
        for m in metrics.values():
            print(method_line(m, fp32))
    rec = json.loads((results / "recommendation.json").read_text())
    for entry in rec["models"]:
        print(f"recommendation ({rec['goal']}) for {entry['model']}: {entry['choice']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="4")
    ap.add_argument("--configfile", default=None, help="extra config file (relative to repo)")
    ap.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--keep", default=None, help="run in this folder and keep it")
    args = ap.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="qb-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    copy_workflow(workdir)
    cmd = [*SNAKEMAKE, "--cores", args.cores]
    if args.configfile:
        cmd += ["--configfile", args.configfile]
    if args.config:
        cmd += ["--config", *args.config]
    cold = timed(cmd, workdir)
    noop = timed(cmd, workdir)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores; {' '.join(cmd[2:])}; load average now {load:.2f}")
    print(f"cold run: {cold:.1f} s  (targets: 3 replicates <= 90 s, 1 replicate <= 40 s)")
    print(f"no-op rerun: {noop:.1f} s  (target <= 3 s)")
    report(workdir)
    print(f"results in {workdir}")


if __name__ == "__main__":
    main()
