"""How much do timings of the same model vary between runs on this machine?

Usage: python benchmarks/timing_noise.py RESULTS_DIR [--model fp32] [--runs 8]

Times one checkpoint of a finished run (RESULTS_DIR/models/<model>.pt on
RESULTS_DIR/data/dataset.npz) in --runs separate processes with the evaluate settings of
config.yaml, exactly as the evaluate step does, and prints the spread of p50 latency and
throughput. Ratios between models of one run that fall inside this spread are not differences.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys, torch
from quantbench.loader import load_model
from quantbench.dataset import load_dataset
from quantbench.latency import TimingConfig, measure_latency, measure_throughput, set_threads
cfg = TimingConfig(**json.loads(sys.argv[3]))
set_threads(cfg.threads)
module = load_model(sys.argv[1]).module
x = torch.from_numpy(load_dataset(sys.argv[2]).x_test)
print(json.dumps({"p50": measure_latency(module, x, cfg)["p50"],
                  "rate": measure_throughput(module, x, cfg)["samples_per_s"]}))
"""


def spread(values: list[float]) -> str:
    mid = statistics.median(values)
    return (
        f"median {mid:.4g}, min {min(values):.4g} ({min(values) / mid - 1:+.1%}), "
        f"max {max(values):.4g} ({max(values) / mid - 1:+.1%})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--model", default="fp32")
    ap.add_argument("--runs", type=int, default=8)
    args = ap.parse_args()
    timing = yaml.safe_load((ROOT / "config.yaml").read_text())["evaluate"]
    ckpt = args.results / "models" / f"{args.model}.pt"
    data = args.results / "data" / "dataset.npz"
    runs = []
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(ckpt), str(data), json.dumps(timing)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.model}, {args.runs} separate processes, settings {timing}")
    print("p50 latency ms (batch 1):", spread([r["p50"] for r in runs]))
    print(
        f"throughput samples/s (batch {timing['batch_size']}):", spread([r["rate"] for r in runs])
    )


if __name__ == "__main__":
    main()
