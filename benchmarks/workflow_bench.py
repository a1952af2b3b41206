"""Cold run and no-op rerun of the default config, timed end to end.

Usage: python benchmarks/workflow_bench.py [--cores 4] [--configfile config.yaml] [--keep DIR]

Copies the repository's workflow into a fresh folder (no results, no Snakemake metadata), runs
`snakemake --cores N` there, then runs it again (nothing to do), and prints both wall times with
the targets of the backbone issue, plus FP32 accuracy and checkpoint size ratios from the run.
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


def report(workdir: Path) -> None:
    metrics = {
        p.stem: json.loads(p.read_text())
        for p in sorted((workdir / "results/metrics").glob("*.json"))
    }
    fp32 = metrics["fp32"]
    print(f"FP32 test accuracy: {fp32['accuracy']:.4f}  (target 0.85-0.96)")
    for name, m in metrics.items():
        delta = 100 * (m["accuracy"] - fp32["accuracy"])
        size = m["size_bytes"] / fp32["size_bytes"]
        print(f"  {name:14s} acc {m['accuracy']:.4f} ({delta:+.2f} pt)  size {size:.3f}x FP32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="4")
    ap.add_argument("--configfile", default=None, help="extra config file (relative to repo)")
    ap.add_argument("--keep", default=None, help="run in this folder and keep it")
    args = ap.parse_args()
    workdir = Path(args.keep or tempfile.mkdtemp(prefix="qb-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    copy_workflow(workdir)
    cmd = [*SNAKEMAKE, "--cores", args.cores]
    if args.configfile:
        cmd += ["--configfile", args.configfile]
    cold = timed(cmd, workdir)
    noop = timed(cmd, workdir)
    print(f"machine: {os.cpu_count()} cores; snakemake --cores {args.cores}")
    print(f"cold run: {cold:.1f} s  (target <= 60 s)")
    print(f"no-op rerun: {noop:.1f} s  (target <= 3 s)")
    report(workdir)
    print(f"results in {workdir}")


if __name__ == "__main__":
    main()
