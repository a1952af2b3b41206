"""Does an int8 model run slower at a batch size it did not first run at? Per engine, measured.

Some int8 kernels set themselves up at their first call and keep that set-up for one input
shape: ``onednn``'s quantized Linear builds one primitive (and lays its weight out for it) at
its first call, and every later call of another shape takes a slower path. A model timed at
batch 1 and then at batch 512 (or the other way round) is then timed on that slower path for
one of them, which a deployment serving one batch size never takes. The timing harness
(``quantbench.measure.harness``) therefore gives each batch size copies of their own; this script
shows the size of the effect it avoids.

For every int8 engine this torch offers and both int8 kinds the workflow times on it (static:
fused Linear+ReLU, min/max calibration, as the engine probe builds it; dynamic), two fresh
copies of the default MLP (29 -> 256 -> 256 -> 3, seeded random weights: kernel speed does not
depend on the values) are made: one first called with a full batch, one first called with one
row. Both are then timed at both sizes in ``--rounds`` interleaved rounds (order rotating), FP32
beside them; printed are the medians over rounds of each block's median call time and the
ratio "other shape first / this shape first" (above 1: slower when the model first ran the
other size).

Usage: python benchmarks/first_shape_bench.py [--batch 512] [--rounds 20] [--calls 50]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from collections.abc import Callable

import torch
from torch import nn

from quantbench.measure import engines
from quantbench.measure.harness import pass_ms
from quantbench.models import build_model
from quantbench.quant.ao import backend, dynamic


def block_ms(module: nn.Module, x: torch.Tensor, calls: int) -> float:
    """Median milliseconds of ``calls`` forward passes on ``x`` (the timing job's own loop)."""
    return statistics.median(pass_ms(module, x, calls))


def dynamic_builder(model: nn.Module) -> Callable[[str], nn.Module]:
    """``build(engine)``: ``model`` quantized dynamically under the engine set by the caller."""
    return lambda engine: dynamic.quantize_dynamic(model)  # a copy: ``model`` is not modified


@torch.inference_mode()
def first_called(module: nn.Module, x: torch.Tensor) -> nn.Module:
    """A fresh copy of ``module`` whose first call had the shape of ``x``."""
    fresh = copy.deepcopy(module)
    fresh(x)
    return fresh


def measure(models: dict[str, nn.Module], inputs: dict[str, torch.Tensor], args) -> dict:
    """{(model, input): median over rounds of block medians}, interleaved, order rotating."""
    keys = [(m, i) for m in models for i in inputs]
    per: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    for r in range(args.rounds):
        for m, i in keys[r % len(keys) :] + keys[: r % len(keys)]:
            per[(m, i)].append(block_ms(models[m], inputs[i], args.calls))
    return {k: statistics.median(v) for k, v in per.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    fp32 = build_model({"arch": "mlp", "hidden": [256, 256], "dropout": 0.0}, 29, 3).eval()
    rows = torch.randn(args.batch, 29)
    inputs = {f"batch {args.batch}": rows.contiguous(), "batch 1": rows[:1].contiguous()}
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} rounds x {args.calls} calls")
    fp32_ms = measure({"fp32": fp32}, inputs, args)
    print("fp32: " + ", ".join(f"{i} {fp32_ms[('fp32', i)]:.4f} ms" for i in inputs))
    builders = {
        "static": engines.static_builder(fp32, rows),
        "dynamic": dynamic_builder(fp32),
    }
    for engine in backend.supported_engines():
        for kind, build in builders.items():
            torch.backends.quantized.engine = engine
            try:
                with backend.quiet():
                    model = build(engine)
            except Exception as exc:  # an engine this build offers but cannot run here
                print(f"{engine} {kind}: not built ({type(exc).__name__})")
                continue
            models = {f"first {i}": first_called(model, x) for i, x in inputs.items()}
            ms = measure(models, inputs, args)
            for i in inputs:
                (other,) = (o for o in inputs if o != i)
                same, cross = ms[(f"first {i}", i)], ms[(f"first {other}", i)]
                print(
                    f"{engine:7s} {kind:7s} at {i:9s}: {same:.4f} ms when first called at it, "
                    f"{cross:.4f} ms when first called at {other} ({cross / same:.2f}x); "
                    f"FP32 / this shape first = {fp32_ms[('fp32', i)] / same:.2f}x"
                )


if __name__ == "__main__":
    main()
