"""What the deploy steps cost a workflow run: per rule and method, and per export phase.

Two parts, both from one finished run's ``RESULTS`` folder:

1. the Snakemake benchmark records (``RESULTS/benchmarks/{rule}/.../*.tsv``): per rule the jobs,
   wall seconds and CPU seconds summed, and for ``export_model`` and ``check_parity`` the same per
   method (the last path part), so the deploy steps' share of the run is read off one table;
2. each checkpoint of one replicate (``RESULTS/models/{model}/{rep}/{method}.pt``) exported in a
   fresh Python process, as the ``export_model`` job does, timed phase by phase (wall and CPU
   seconds of that process): ``import torch``, importing ``quantbench.deploy.graph`` and the
   loader, loading the checkpoint, the first ``export_graph`` call (the exporter's one-off
   start-up included) and a second call on the same checkpoint (the exporter warm).

Usage (after e.g. ``snakemake --cores 2`` with the default config, on an otherwise idle machine)::

    python benchmarks/export_cost.py results [--rep seed42]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

PHASES = ("import torch", "import deploy", "load", "export 1st", "export 2nd")

_CHILD = """
import json, sys, time
marks = [(time.perf_counter(), time.process_time())]
def mark():
    marks.append((time.perf_counter(), time.process_time()))
import torch
mark()
from quantbench.deploy.graph import export_graph
from quantbench.quant.loader import load_model
mark()
loaded = load_model(sys.argv[1])
mark()
export_graph(loaded)
mark()
export_graph(loaded)
mark()
print(json.dumps([[b[0] - a[0], b[1] - a[1]] for a, b in zip(marks, marks[1:])]))
"""


def rule_totals(results: Path) -> None:
    """Jobs, wall s and CPU s per rule (and per method for the deploy rules)."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        with tsv.open(encoding="utf-8") as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        keys = [rule]
        if rule in ("export_model", "check_parity"):
            keys.append(f"{rule} {tsv.stem}")
        for key in keys:
            totals[key][0] += 1
            totals[key][1] += float(row["s"])
            totals[key][2] += float(row["cpu_time"])
    print(f"{'rule':<36} {'jobs':>5} {'wall s':>9} {'CPU s':>9}")
    for key in sorted(totals):
        jobs, wall, cpu = totals[key]
        print(f"{key:<36} {jobs:>5} {wall:>9.1f} {cpu:>9.1f}")
    cpu_all = sum(v[2] for k, v in totals.items() if " " not in k)
    deploy = sum(totals[r][2] for r in ("export_model", "check_parity"))
    print(f"deploy CPU share: {deploy:.1f} of {cpu_all:.1f} CPU s ({100 * deploy / cpu_all:.1f} %)")


def phases(results: Path, rep: str) -> None:
    """Each checkpoint of ``rep`` exported in a fresh process, phase by phase."""
    src = Path(__file__).resolve().parents[1] / "src"
    print(f"\n{'checkpoint':<28}" + "".join(f"{p:>20}" for p in PHASES))
    print(f"{'(wall s / CPU s)':<28}")
    for ckpt in sorted((results / "models").glob(f"*/{rep}/*.pt")):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ckpt)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        )
        times = json.loads(out.stdout.strip().splitlines()[-1])
        name = f"{ckpt.parent.parent.name}/{ckpt.stem}"
        print(f"{name:<28}" + "".join(f"{w:>12.2f} / {c:>5.2f}" for w, c in times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--rep", default="seed42", help="the replicate whose checkpoints to export")
    args = parser.parse_args()
    rule_totals(args.results)
    phases(args.results, args.rep)


if __name__ == "__main__":
    main()
