"""The int8 engine probe on the default model: each engine's figures and the probe's cost.

The default MLP (29 -> 256 -> 256 -> 3, seeded random weights: the kernels' speed does not
depend on the weights' values) is statically quantized for every engine this torch offers
(``quantbench.measure.engines.static_builder``: fused Linear+ReLU, min/max calibration on 512 rows)
and probed with the default ``ProbeConfig`` (or ``--objective latency``). Printed: every
engine's figures, the pick and why, and the seconds spent since the interpreter started (the
cost the probe adds to a cold run is what this script takes minus a bare ``import torch``).
Then, for context, the picked engine's model and the FP32 model are timed against each other
(``--fp32-rounds`` interleaved rounds of the same block timing, after the cost figures): the
median of the per-round speed ratios and their range (a stalled round on a shared machine
moves the range, not the median).

Usage: python benchmarks/engine_probe_bench.py [--objective throughput|latency] [--json PATH]
       [--fp32-rounds 10]
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402

import torch  # noqa: E402

T_TORCH = time.perf_counter()

from quantbench.measure import engines  # noqa: E402
from quantbench.measure.engine_record import OBJECTIVES  # noqa: E402
from quantbench.models import build_model  # noqa: E402
from quantbench.quant.ao import backend  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", choices=OBJECTIVES, default="throughput")
    parser.add_argument("--json", default=None, help="write the record here")
    parser.add_argument("--fp32-rounds", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": [256, 256], "dropout": 0.0}, 29, 3).eval()
    rows = torch.randn(512, 29, generator=torch.Generator().manual_seed(1))
    with backend.quiet():
        record = engines.probe_engines(
            engines.static_builder(model, rows), rows, engines.ProbeConfig(objective=args.objective)
        )
    t_end = time.perf_counter()
    for name, entry in record["engines"].items():
        if entry["status"] != "ok":
            print(f"{name:<8} failed at {entry['stage']}: {entry['error']}")
            continue
        tput = f"{entry['samples_per_s']:>12,.0f} samples/s" if "samples_per_s" in entry else ""
        print(f"{name:<8} {entry['median_ms']:>9.4f} ms/call{tput}  "
              f"time vs fastest {entry['time_vs_fastest']:.3f}")  # fmt: skip
    print(f"pick: {record['engine']} ({record['reason']})")
    print(f"probe {record['probe_seconds']:.2f} s; import torch {T_TORCH - T_START:.2f} s; "
          f"script total {t_end - T_START:.2f} s (plus interpreter start)")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(record, fh, indent=1)
    versus_fp32(model, rows, record, args.fp32_rounds)


def versus_fp32(model, rows, record, rounds: int) -> None:
    """Picked engine's model vs FP32, interleaved rounds: median and range of per-round ratios."""
    cfg = engines.ProbeConfig(**record["settings"])
    engine = record["engine"]
    torch.backends.quantized.engine = engine
    with backend.quiet():
        models = {"fp32": model, engine: engines.static_builder(model, rows)(engine)}
    x = rows.repeat(math.ceil(cfg.rows / rows.shape[0]), 1)[: cfg.rows].contiguous()
    medians: dict[str, list[float]] = {n: [] for n in models}
    for name, m in models.items():
        engines.call_seconds(name, m, x, cfg.warmup)
    for r in range(rounds):
        for name in list(models)[r % 2 :] + list(models)[: r % 2]:
            medians[name].append(statistics.median(engines.call_seconds(name, models[name], x, 20)))
    ratios = [f / q for f, q in zip(medians["fp32"], medians[engine], strict=True)]
    mid = statistics.median(ratios)
    print(f"{engine} vs fp32 at {cfg.objective} ({cfg.rows} rows/call): {mid:.2f}x "
          f"[{min(ratios):.2f}, {max(ratios):.2f}] over {rounds} rounds; fp32 "
          f"{1e3 * statistics.median(medians['fp32']):.4f} ms/call")  # fmt: skip


if __name__ == "__main__":
    main()
