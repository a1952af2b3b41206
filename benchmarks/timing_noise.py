"""Repeat the timing jobs: how wide are the paired intervals, how often do they contain 1?

Usage: python benchmarks/timing_noise.py RESULTS_DIR [--jobs 10] [--methods gptq_w4 rtn_w4 ...]
       [--model mlp] [--replicate seed42] [--set rounds=40 ...] [--onnxruntime]

Runs the time step (``quantbench.measure.timing.run_timing``, exactly as the workflow does)
--jobs times for every method and for FP32 against a second copy of itself (``fp32``, an A/A
test: any interval excluding 1 there is noise), one job after another, each in its own process,
with the ``evaluate`` settings of config.yaml (``--set key=value`` overrides one; ``--keep DIR``
keeps every timing JSON). Checkpoints are read from RESULTS_DIR in the replicate layout
(models/<model>/<replicate>/<method>.pt, data/<replicate>/dataset.npz) or the flat one
(models/<method>.pt, data/dataset.npz).

Per method and batch size it prints the speed-up computed as the summary does (per-round ratio
of medians, geometric mean, bootstrap interval of the mean log ratio over rounds, with the
report's own code and seed), the interval's
half-width, and how many jobs found "no measurable difference" (the interval contains 1), faster
or slower. Beside that it prints the spread of FP32's absolute throughput between the processes:
the error an unpaired comparison of two separate timing runs would carry.

With ``--onnxruntime`` every job also times the ONNX artifacts, as the workflow does with
``runtimes: [torch, onnxruntime]`` (``deploy/<model>/<replicate>/<method>/model.onnx`` and
``data/<replicate>/test_raw.npz`` under RESULTS_DIR), and the same lines are printed for ONNX
Runtime: the method's artifact against FP32's, and, for ``fp32``, ONNX Runtime FP32 against a
second session of itself (its A/A test: "no measurable difference" should read in at least 9 of
10 processes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from quantbench.report import order, stats  # noqa: E402

CHILD = """
import json, sys, time
from quantbench.measure.timing import run_timing
args = json.loads(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
run_timing(**args)
wall = time.perf_counter() - t0
print(json.dumps({"seconds": wall, "cpu_share": (time.process_time() - c0) / wall}))
"""


def ort_paths(results: Path, model: str, replicate: str, method: str) -> dict:
    """The artifacts and raw test rows of the workflow's replicate layout."""
    folder = results / "deploy" / model / replicate
    return {
        "artifacts": {
            "ort_reference": str(folder / "fp32" / "model.onnx"),
            "ort_candidate": str(folder / method / "model.onnx"),
        },
        "raw_test_path": str(results / "data" / replicate / "test_raw.npz"),
    }


def paths(results: Path, model: str, replicate: str, method: str) -> dict[str, str | None]:
    nested = results / "models" / model / replicate
    models, data = (
        (nested, results / "data" / replicate) if nested.is_dir() else (results / "models", None)
    )
    data = data or results / "data"
    info = models / f"{method}.info.json"
    return {
        "reference_path": str(models / "fp32.pt"),
        "candidate_path": str(models / f"{method}.pt"),
        "dataset_path": str(data / "dataset.npz"),
        "info_path": str(info) if info.is_file() else None,
    }


def speedup(
    rounds: list[dict], key: str, cfg: stats.ReportConfig, sides=("reference", "candidate")
) -> stats.Interval:
    """The summary's own figure (quantbench.report.order) for one timing job."""
    ratios = order.round_ratios(
        [r[sides[0]][key] for r in rounds], [r[sides[1]][key] for r in rounds]
    )
    return order.speedup_interval(ratios, cfg)


def time_once(args: dict, out: Path) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({**args, "timing_out": str(out)})],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if proc.returncode:
        sys.exit(f"timing job failed: {proc.stderr.strip().splitlines()[-1]}")
    doc = json.loads(out.read_text())
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "doc": doc}


def spread(values: list[float]) -> str:
    mid = statistics.median(values)
    return f"median {mid:.4g}, {min(values) / mid - 1:+.1%} … {max(values) / mid - 1:+.1%}"


def report(
    method: str, runs: list[dict], cfg: stats.ReportConfig, pair=("reference", "candidate")
) -> None:
    batch = runs[0]["doc"]["settings"]["batch_size"]
    for key, label in (("latency_ms", "batch 1"), ("pass_ms", f"batch {batch}")):
        cis = [speedup(r["doc"]["rounds"], key, cfg, pair) for r in runs]
        half = [100 * (iv.hi - iv.lo) / 2 / iv.estimate for iv in cis]
        sides = [order.speed_direction(iv, cfg.speed_noise) for iv in cis]
        print(
            f"{method:12s} {label:9s} speed-up {spread([iv.estimate for iv in cis])}; "
            f"half-width median {np.median(half):.1f} %, max {max(half):.1f} %; "
            f"interval contains 1: {sum(iv.contains(1.0) for iv in cis)}/{len(cis)}; "
            f"verdict (noise band ±{cfg.speed_noise:.0%}): no measurable difference "
            f"{sides.count(0)}, faster {sides.count(1)}, slower {sides.count(-1)}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--methods", nargs="*", help="default: every method of config.yaml")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--replicate", default="seed42")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--resamples", type=int, default=9999)
    ap.add_argument("--speed-noise", type=float, default=None, help="default: config.yaml's")
    ap.add_argument("--keep", type=Path, help="folder to keep every timing JSON in")
    ap.add_argument("--onnxruntime", action="store_true", help="time the ONNX artifacts too")
    args = ap.parse_args()
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    timing = dict(config["evaluate"]) | {k: int(v) for k, v in (s.split("=") for s in args.set)}
    methods = list(dict.fromkeys(["fp32", *(args.methods or config["methods"])]))
    noise = config["report"]["speed_noise"] if args.speed_noise is None else args.speed_noise
    cfg = stats.ReportConfig(
        confidence=args.confidence, bootstrap_resamples=args.resamples, speed_noise=noise
    )
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or Path(tmp)
        for job in range(args.jobs):
            for method in methods:
                loads.append(os.getloadavg()[0])
                step = paths(args.results, args.model, args.replicate, method)
                step |= {"model": args.model, "method": method, "replicate": args.replicate,
                         "timing": timing}  # fmt: skip
                if args.onnxruntime:
                    step |= ort_paths(args.results, args.model, args.replicate, method)
                runs[method].append(time_once(step, out_dir / f"{method}.{job}.json"))
    print(f"{args.jobs} timing jobs per method, one after another; settings {timing}")
    print(f"load average {min(loads):.1f} … {max(loads):.1f}; CPU {runs['fp32'][0]['doc']['cpu']}")
    for method in methods:
        report(method, runs[method], cfg)
    for method in methods if args.onnxruntime else []:
        report(f"ORT {method}", runs[method], cfg, ("ort_reference", "ort_candidate"))
    every = [r for rs in runs.values() for r in rs]
    print(
        f"one job: {spread([r['seconds'] for r in every])} s in run_timing, "
        f"CPU share {spread([r['cpu_share'] for r in every])}"
    )
    batch = timing["batch_size"]
    rates = [
        batch / np.median([t for rnd in r["doc"]["rounds"] for t in rnd["reference"]["pass_ms"]])
        for r in every
    ]  # FP32 samples per ms, one figure per process
    rates = [1e3 * r for r in rates]
    print(f"FP32 throughput between processes (unpaired), samples/s: {spread(rates)}")


if __name__ == "__main__":
    main()
