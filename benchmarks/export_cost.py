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
   second call on the same checkpoint (the exporter warm). Of the first call, the wall seconds
   inside ``torch.onnx.export`` and inside ``onnx.version_converter`` (opset 20 -> 21) are shown
   apart, and ``dynamo`` says whether the process imported ``torch._dynamo`` or ``onnxscript``
   (the TorchScript exporter needs neither; their import was most of a first export before).

Parts 1 and 2 are skipped when the folder has no ``benchmarks`` records (a folder holding only
``models/{model}/{rep}/{method}.pt``). ``--src`` imports another checkout's ``src`` (e.g. to
time the main branch against a working tree on the same checkpoints).

Usage (after e.g. ``snakemake --cores 2`` with the default config, on an otherwise idle machine)::

    python benchmarks/export_cost.py results [--rep seed42] [--logs logs] [--src ../other/src]
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
INSIDE = ("torch.onnx", "convert")  # wall seconds of the first export spent in each

_CHILD = """
import functools, json, sys, time
marks = [(time.perf_counter(), time.process_time())]
inside = {"torch.onnx": 0.0, "convert": 0.0}
def mark():
    marks.append((time.perf_counter(), time.process_time()))
def timed(key, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            inside[key] += time.perf_counter() - t
    return run
import torch
mark()
import onnx.version_converter
from quantbench.deploy.graph import export_graph
from quantbench.quant.loader import load_model
torch.onnx.export = timed("torch.onnx", torch.onnx.export)
vc = onnx.version_converter
vc.convert_version = timed("convert", vc.convert_version)
mark()
loaded = load_model(sys.argv[1])
mark()
export_graph(loaded)
mark()
first = dict(inside)
dynamo = any(m in sys.modules for m in ("torch._dynamo", "onnxscript"))
export_graph(loaded)
mark()
times = [[b[0] - a[0], b[1] - a[1]] for a, b in zip(marks, marks[1:])]
print(json.dumps({"phases": times, "inside": first, "dynamo": dynamo}))
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


def phases(results: Path, rep: str, src: Path) -> None:
    """Each checkpoint of ``rep`` exported in a fresh process, phase by phase."""
    head = "".join(f"{p:>20}" for p in PHASES) + "".join(f"{p:>12}" for p in (*INSIDE, "dynamo"))
    print(f"\n{'checkpoint':<28}{head}")
    print(f"{'(wall s / CPU s; wall s)':<28}")
    for ckpt in sorted((results / "models").glob(f"*/{rep}/*.pt")):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ckpt)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        )
        got = json.loads(out.stdout.strip().splitlines()[-1])
        name = f"{ckpt.parent.parent.name}/{ckpt.stem}"
        row = "".join(f"{w:>12.2f} / {c:>5.2f}" for w, c in got["phases"])
        row += "".join(f"{got['inside'].get(k, 0.0):>12.3f}" for k in INSIDE)
        print(f"{name:<28}{row}{'yes' if got['dynamo'] else 'no':>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--rep", default="seed42", help="the replicate whose checkpoints to export")
    parser.add_argument(
        "--logs", type=Path, default=None, help="the run's logs folder (default: RESULTS/../logs)"
    )
    parser.add_argument(
        "--src",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src",
        help="the quantbench source tree to import (default: this checkout's src)",
    )
    args = parser.parse_args()
    if (args.results / "benchmarks").is_dir():
        rules = rule_totals(args.results)
        score_parts(args.logs or args.results.resolve().parent / "logs", rules)
    phases(args.results, args.rep, args.src.resolve())


if __name__ == "__main__":
    main()
