"""How long does the summarize step take on a default-sized run?

Usage: python benchmarks/summarize_bench.py [--replicates 3] [--rows 3600] [--rounds 20]
                                            [--runs 3] [--resamples 9999]

Writes synthetic quality and timing facts of the results layout (FP32 and six methods, seeded
predictions and timings; see tests/report_facts.py), then runs ``summarize`` on them in --runs
fresh processes, imports included, as the summarize job does. Prints wall and CPU seconds of
the whole call and of its two parts: the statistics (metrics records) and the plots.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, time
args = json.loads(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
from quantbench.report import build_metrics, summarize
from quantbench.report.plots import write_plots
from quantbench.report.stats import ReportConfig
root = args["root"]
summarize(args["quality"], args["timing"], root + "/metrics", root + "/summary.csv",
          root + "/summary.md", root + "/recommendation.json", root + "/plots",
          {"confidence": 0.95, "bootstrap_resamples": args["resamples"]},
          {"goal": "size", "max_accuracy_drop": 0.5})
t1, c1 = time.perf_counter(), time.process_time()
by_model = build_metrics(args["quality"], args["timing"],
                         ReportConfig(bootstrap_resamples=args["resamples"]))
t2, c2 = time.perf_counter(), time.process_time()
write_plots(by_model, root + "/plots_again")
t3, c3 = time.perf_counter(), time.process_time()
print(json.dumps({"total": [t1 - t0, c1 - c0], "stats": [t2 - t1, c2 - c1],
                  "plots": [t3 - t2, c3 - c2]}))
"""


def line(name: str, runs: list[dict[str, list[float]]]) -> str:
    wall = [r[name][0] for r in runs]
    cpu = [r[name][1] for r in runs]
    return (
        f"{name:>6}: wall median {statistics.median(wall):.2f} s (min {min(wall):.2f}), "
        f"CPU median {statistics.median(cpu):.2f} s (min {min(cpu):.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=3)
    ap.add_argument("--rows", type=int, default=3600)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--resamples", type=int, default=9999)
    args = ap.parse_args()
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    from tests.report_facts import write_run

    with tempfile.TemporaryDirectory() as tmp:
        seeds = tuple(range(42, 42 + args.replicates))
        facts = write_run(Path(tmp), seeds=seeds, rows=args.rows, rounds=args.rounds)
        child = {
            "root": tmp, "quality": facts.quality, "timing": facts.timing,
            "resamples": args.resamples,
        }  # fmt: skip
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, json.dumps(child)], capture_output=True,
                text=True, check=True, cwd=ROOT / "src",
            )  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(
        f"summarize: {len(facts.quality)} quality files ({args.replicates} replicates x "
        f"{len(facts.quality) // args.replicates} models, {args.rows} test rows), "
        f"{len(facts.timing)} timing files ({args.rounds} rounds), "
        f"{args.resamples} bootstrap resamples, {args.runs} runs"
    )
    for name in ("total", "stats", "plots"):
        print(line(name, runs))


if __name__ == "__main__":
    main()
