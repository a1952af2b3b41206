"""What the deploy steps cost a workflow run: per rule and method, and per export phase.

Two parts, both from one finished run's ``RESULTS`` folder:

1. the Snakemake benchmark records (``RESULTS/benchmarks/{rule}/.../*.tsv``): per rule the jobs,
   wall seconds and CPU seconds summed, and for ``export_model`` and ``check_parity`` the same per
   method (the last path part), so the deploy steps' share of the run is read off one table;
2. each checkpoint of one replicate (``RESULTS/models/{model}/{rep}/{method}.pt``) exported in a
   fresh Python process, as the ``export_model`` job does, timed phase by phase (wall and CPU
   seconds of that process): ``import torch``, importing ``quantbench.deploy.graph`` and the
   loader, loading the checkpoint, the first ``export_graph`` call (the exporter's one-off
   start-up included) and a second call on the same checkpoint (the exporter warm). Of the
   first call, the wall seconds inside ``torch.onnx.export`` and inside
   ``onnx.version_converter`` (opset 20 -> 21) are shown apart, and ``dynamo`` says whether
   the process imported ``torch._dynamo`` or ``onnxscript`` (the TorchScript exporter needs
   neither; their import was most of a first export before).

Part 1 is skipped when the folder has no ``benchmarks`` records (a folder holding only
``models/{model}/{rep}/{method}.pt``). ``--src`` imports another checkout's ``src`` (e.g. to
time the main branch against a working tree on the same checkpoints).

Usage (after e.g. ``snakemake --cores 2`` with the default config, on an otherwise idle machine)::

    python benchmarks/export_cost.py results [--rep seed42] [--src ../other/src]
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
        "--src",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src",
        help="the quantbench source tree to import (default: this checkout's src)",
    )
    args = parser.parse_args()
    if (args.results / "benchmarks").is_dir():
        rule_totals(args.results)
    phases(args.results, args.rep, args.src.resolve())


if __name__ == "__main__":
    main()
