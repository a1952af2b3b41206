"""One Linear layer on three paths: FP32, torch's CPU int4 kernel, and dequantized 4-bit codes.

For each square layer size the weight (seeded gaussian) is quantized with round-to-nearest to
4-bit codes in groups of ``--group-size`` columns
(``quantbench.quant.weightonly.grid.quantize_weight``) and run as ``fp32`` (``nn.Linear`` with the
original weight), ``dequant`` (``nn.Linear`` with the dequantized weight: today's path of
rtn/gptq), ``int4`` (``quantbench.quant.weightonly.int4.Int4Linear``) and ``int4_act`` (the same
codes with the columns' groups shuffled, as GPTQ's act-order leaves them: the cost of reordering
the inputs once per call). One thread; batch 1 and ``--batch``.

Timing: ``--rounds`` rounds; in each, every path runs a block of calls (the order rotates per
round) and the block's median call time is kept. Reported: the median over rounds of those
medians, and the speed-up over FP32 as the median of the per-round ratios with their range
(a round stalled by another process moves the range, not the median). Nothing is estimated.

``--mlp H [H ...]`` times whole MLPs instead (29 inputs, hidden widths H, 3 classes: the
default model's shape, wider), every Linear on each path.

Usage: python benchmarks/int4_bench.py [--sizes 256 1024 2048] [--batch 512] [--rounds 7]
       [--group-size 32] [--seconds 0.05] [--mlp 1024 1024]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from quantbench.machine.cpu import cpu_facts, describe
from quantbench.machine.memory import resident_weight_bytes
from quantbench.models import build_model
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import Grid, QuantizedWeight, quantize_weight

PATHS = ("fp32", "dequant", "int4", "int4_act")


def shuffled_groups(qw: QuantizedWeight, seed: int) -> QuantizedWeight:
    """The same per-column codes with columns assigned to groups in a random order."""
    perm = torch.randperm(qw.codes.shape[1], generator=torch.Generator().manual_seed(seed))
    return QuantizedWeight(qw.codes, qw.scales, qw.zeros, qw.g_idx[perm], qw.grid, qw.group_size)


def layers(size: int, group_size: int, seed: int) -> dict[str, nn.Module]:
    """A square ``size`` layer (seeded gaussian weight) on each path."""
    g = torch.Generator().manual_seed(seed)
    fp32 = nn.Linear(size, size)
    with torch.no_grad():
        fp32.weight.copy_(torch.randn(size, size, generator=g) / math.sqrt(size))
    return layers_from(fp32, group_size, seed)


def mlps(hidden: list[int], group_size: int, seed: int) -> dict[str, nn.Module]:
    """The MLP 29 -> hidden -> 3 with every Linear on each path (seeded weights)."""
    torch.manual_seed(seed)
    spec = {"arch": "mlp", "hidden": list(hidden), "dropout": 0.0}
    fp32 = build_model(spec, 29, 3).eval()
    built = {name: build_model(spec, 29, 3).eval() for name in PATHS[1:]}
    for short, child in fp32.layers.named_children():
        if isinstance(child, nn.Linear):
            paths = layers_from(child, group_size, seed)
            for name, model in built.items():
                setattr(model.layers, short, paths[name])
    return {"fp32": fp32, **built}


def layers_from(fp32: nn.Linear, group_size: int, seed: int) -> dict[str, nn.Module]:
    """``fp32`` on each path (see the module docstring)."""
    qw = quantize_weight(fp32.weight.detach(), Grid(4), group_size)
    dequant = nn.Linear(fp32.in_features, fp32.out_features)
    with torch.no_grad():
        dequant.weight.copy_(qw.dequantize())
        dequant.bias.copy_(fp32.bias)
    bias = fp32.bias.detach()
    return {
        "fp32": fp32.eval(),
        "dequant": dequant.eval(),
        "int4": int4.Int4Linear.from_quantized(qw, bias),
        "int4_act": int4.Int4Linear.from_quantized(shuffled_groups(qw, seed), bias),
    }


def block_median(fn: Callable[[], object], calls: int) -> float:
    """Median seconds of ``calls`` timed calls."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return statistics.median(times)


@torch.inference_mode()
def time_paths(models: dict[str, nn.Module], x: torch.Tensor, rounds: int, seconds: float):
    """Per path: the per-round median call times (interleaved, rotating order)."""
    calls = {}
    for name, m in models.items():
        m(x)
        t = block_median(lambda m=m: m(x), 3)
        calls[name] = max(3, int(seconds / max(t, 1e-7)))
    per_round: dict[str, list[float]] = {n: [] for n in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            m = models[name]
            per_round[name].append(block_median(lambda m=m: m(x), calls[name]))
    return per_round


def speedup(ref: list[float], other: list[float]) -> tuple[float, float, float]:
    """Median and range of the per-round ratios ref / other."""
    ratios = [a / b for a, b in zip(ref, other, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


def report(size: int | str, batch: int, per_round: dict[str, list[float]], nbytes: dict) -> None:
    ref = per_round["fp32"]
    for name in PATHS:
        ms = 1e3 * statistics.median(per_round[name])
        mid, lo, hi = speedup(ref, per_round[name])
        print(
            f"{size!s:>5} {batch:>5} {name:<9}{ms:>10.4f}{mid:>8.2f}x  [{lo:.2f}, {hi:.2f}]"
            f"{nbytes[name]:>11}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=0.05, help="per path per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mlp", type=int, nargs="+", default=None, help="hidden widths")
    args = parser.parse_args()
    torch.set_num_threads(1)
    problem = int4.kernel_problem()
    print(f"torch {torch.__version__}, 1 thread, {describe(cpu_facts())}")
    if problem is not None:
        raise SystemExit(f"no int4 kernel here: {problem}")
    print(f"group size {args.group_size}, {args.rounds} rounds, ~{args.seconds} s per block")
    print(f"{'size':>5} {'batch':>5} {'path':<9}{'ms/call':>10}{'vs fp32':>9} {'range':<14}"
          f"{'weight B':>10}")  # fmt: skip
    if args.mlp:
        cases = [("mlp", 29, mlps(args.mlp, args.group_size, args.seed))]
        print(f"MLP 29 -> {' -> '.join(map(str, args.mlp))} -> 3")
    else:
        cases = [(s, s, layers(s, args.group_size, args.seed)) for s in args.sizes]
    for label, width, models in cases:
        nbytes = {n: resident_weight_bytes(m) for n, m in models.items()}
        for batch in (1, args.batch):
            x = torch.randn(batch, width, generator=torch.Generator().manual_seed(args.seed))
            report(label, batch, time_paths(models, x, args.rounds, args.seconds), nbytes)


if __name__ == "__main__":
    main()
