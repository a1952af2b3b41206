"""What exporting and checking the artifacts costs a workflow run: per rule, per method, per phase.

Three parts, from one finished run's ``RESULTS`` folder and its ``logs`` folder beside it:

1. the Snakemake benchmark records (``RESULTS/benchmarks/{rule}/.../*.tsv``): per rule the jobs,
   wall seconds and CPU seconds summed;
2. the score jobs' own ``part seconds`` lines (``logs/score/...``, see ``score_logs.py``): with
   ``deploy.export`` a score job also exports its variant and checks its parity, and logs the
   wall seconds of each part; per method and in total, with the share of export and parity in
   the score jobs' and in all jobs' summed wall time;
3. each checkpoint of one replicate (``RESULTS/models/{model}/{rep}/{method}.pt``) exported in a
   fresh Python process, timed phase by phase (wall and CPU seconds of that process):
   ``import torch``, importing ``quantbench.deploy.graph`` and the loader, loading the
   checkpoint, the first ``export_graph`` call (the exporter's one-off start-up included) and a
   second call on the same checkpoint (the exporter warm).

Usage (after e.g. ``snakemake --cores 2`` with the default config, on an otherwise idle machine)::

    python benchmarks/export_cost.py results [--rep seed42] [--logs logs]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from score_logs import PARTS, part_seconds, per_method, totals

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


def rule_totals(results: Path) -> dict[str, list[float]]:
    """Jobs, wall s and CPU s per rule, printed and returned."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        rule = tsv.relative_to(results / "benchmarks").parts[0]
        with tsv.open(encoding="utf-8") as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        totals[rule][0] += 1
        totals[rule][1] += float(row["s"])
        totals[rule][2] += float(row["cpu_time"])
    print(f"{'rule':<36} {'jobs':>5} {'wall s':>9} {'CPU s':>9}")
    for rule in sorted(totals):
        jobs, wall, cpu = totals[rule]
        print(f"{rule:<36} {jobs:>5} {wall:>9.1f} {cpu:>9.1f}")
    return totals


def score_parts(logs: Path, rules: dict[str, list[float]]) -> None:
    """The score jobs' parts per method and in total, and the export and parity share."""
    parts = part_seconds(logs)
    if not parts:
        print(f"\nno score logs with part seconds under {logs / 'score'}")
        return
    print(f"\nscore jobs' parts (wall s, from {logs / 'score'}):")
    print(f"{'method':<24}" + "".join(f"{p:>10}" for p in PARTS))
    for method, seconds in sorted(per_method(parts).items()):
        print(f"{method:<24}" + "".join(f"{seconds.get(p, 0.0):>10.2f}" for p in PARTS))
    summed = totals(parts)
    print(f"{'all':<24}" + "".join(f"{summed[p]:>10.2f}" for p in PARTS))
    deploy = summed["export"] + summed["parity"]
    score_wall = rules.get("score", [0, 0.0, 0.0])[1]
    all_wall = sum(v[1] for v in rules.values())
    if score_wall and all_wall:
        print(
            f"export + parity: {deploy:.1f} s = {100 * deploy / score_wall:.1f} % of the score "
            f"jobs' wall time ({score_wall:.1f} s) and {100 * deploy / all_wall:.1f} % of all "
            f"jobs' ({all_wall:.1f} s)"
        )


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
    parser.add_argument(
        "--logs", type=Path, default=None, help="the run's logs folder (default: RESULTS/../logs)"
    )
    args = parser.parse_args()
    rules = rule_totals(args.results)
    score_parts(args.logs or args.results.resolve().parent / "logs", rules)
    phases(args.results, args.rep)


if __name__ == "__main__":
    main()
