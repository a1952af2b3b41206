"""GPTQ against RTN on the default-size model: quantize time, per-layer error, checkpoint size.

Trains a default-size MLP (hidden 256, 256) on the default synthetic traffic data (gaussian
mixture data if ``quantbench.data.synthetic`` is missing), or loads a workflow FP32 checkpoint and
dataset, then quantizes it with ``gptq`` and ``rtn`` at 8, 4, 3 and 2 bits and prints one row
per variant: quantize seconds (median of ``--repeats`` after one untimed warm-up), held-out
output error of each layer, and the checkpoint file size as a share of the FP32 file.

Usage::

    python benchmarks/gptq_bench.py [--threads 1] [--group-size 32] [--no-act-order]
    python benchmarks/gptq_bench.py --checkpoint results/models/mlp/seed42/fp32.pt \\
        --dataset results/data/seed42/dataset.npz
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quantbench.models import ModelSpec, resolve
from quantbench.quant.base import CalibrationData, QuantizedModel
from quantbench.quant.loader import load_model
from quantbench.quant.methods import registry as methods
from quantbench.quant.weightonly.layers import matrix_layers
from quantbench.training.checkpoint import save_checkpoint

BITS = (8, 4, 3, 2)
TIME_TARGET_S = 2.0


@dataclass
class Setup:
    model: nn.Module
    spec: ModelSpec
    calib: CalibrationData
    meta: dict[str, Any]  # checkpoint meta of the FP32 model
    source: str


def _synthetic_rows(n_flows: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Features (log-compressed) and labels of the default synthetic traffic data."""
    try:
        from quantbench.data.synthetic import LABEL, SyntheticConfig, generate_flows
    except ImportError:
        g = np.random.default_rng(seed)
        centers = g.normal(0, 0.6, (6, 30))
        cluster = g.integers(0, 6, n_flows)
        x = centers[cluster] + g.normal(0, 1, (n_flows, 30))
        return x, cluster % 3, f"gaussian mixture ({n_flows} rows, 30 features)"
    df = generate_flows(SyntheticConfig(n_flows=n_flows, seed=seed))
    x = df.drop(columns=LABEL).to_numpy(float)
    y = df[LABEL].astype("category").cat.codes.to_numpy()
    x = np.sign(x) * np.log1p(np.abs(np.nan_to_num(x, posinf=0.0, neginf=0.0)))
    return x, y, f"synthetic traffic ({n_flows} flows, {x.shape[1]} features)"


def _split(x: np.ndarray, y: np.ndarray, seed: int) -> CalibrationData:
    """70/15 train/val split (test rows left out), standardised with training statistics."""
    order = np.random.default_rng(seed).permutation(len(y))
    n_train, n_val = int(0.7 * len(y)), int(0.15 * len(y))
    tr, va = order[:n_train], order[n_train : n_train + n_val]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-8
    xs = torch.from_numpy((x - mu) / sd).float()
    ys = torch.from_numpy(y.astype(np.int64))
    return CalibrationData(xs[tr], ys[tr], xs[va], ys[va], seed=seed)


def _train(calib: CalibrationData, spec: ModelSpec, epochs: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = spec.build()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(calib.x_train.shape[0], generator=gen).split(256):
            opt.zero_grad()
            nn.functional.cross_entropy(model(calib.x_train[idx]), calib.y_train[idx]).backward()
            opt.step()
    return model.eval()


def trained_setup(args: argparse.Namespace) -> Setup:
    x, y, source = _synthetic_rows(args.n_flows, args.seed)
    calib = _split(x, y, args.seed)
    n_classes = int(calib.y_train.max()) + 1
    spec = resolve({"arch": "mlp", "hidden": [256, 256], "dropout": 0.1}, x.shape[1], n_classes)
    model = _train(calib, spec, args.epochs, args.seed)
    meta = {
        "method": "fp32",
        "kind": "fp32",
        "params": {},
        "model": spec.to_dict(),
        "feature_names": [f"f{i}" for i in range(spec.n_features)],
        "class_names": [str(c) for c in range(spec.n_classes)],
        "seed": args.seed,
    }
    return Setup(model, spec, calib, meta, f"{source}, trained {args.epochs} epochs")


def loaded_setup(args: argparse.Namespace) -> Setup:
    from quantbench.data.dataset import load_dataset

    fp32 = load_model(args.checkpoint)
    ds = load_dataset(args.dataset)
    calib = CalibrationData(
        torch.from_numpy(ds.x_train),
        torch.from_numpy(ds.y_train),
        torch.from_numpy(ds.x_val),
        torch.from_numpy(ds.y_val),
        seed=int(fp32.meta.get("seed", args.seed)),
    )
    meta = {k: v for k, v in fp32.meta.items() if k not in ("format", "format_version")}
    return Setup(fp32.module, fp32.spec, calib, meta, f"{args.checkpoint} + {args.dataset}")


def run_variant(
    setup: Setup, variant: dict[str, Any], repeats: int
) -> tuple[QuantizedModel, float]:
    """Quantize once untimed, then ``repeats`` timed runs; the last result and median seconds."""
    kind = methods.get_kind(variant["kind"])
    params = methods.make_params(variant["kind"], variant)
    result = kind.quantize(setup.model, setup.calib, params)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = kind.quantize(setup.model, setup.calib, params)
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def size_ratio(setup: Setup, variant: dict[str, Any], state: dict, folder: Path) -> float:
    fp32_path, q_path = folder / "fp32.pt", folder / "q.pt"
    if not fp32_path.exists():
        save_checkpoint(fp32_path, setup.meta, setup.model.state_dict())
    meta = {**setup.meta, "method": "bench", "kind": variant["kind"], "params": variant}
    save_checkpoint(q_path, meta, state)
    return os.path.getsize(q_path) / os.path.getsize(fp32_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint",
        help="FP32 checkpoint (results/models/<model>/<replicate>/fp32.pt) to quantize",
    )
    parser.add_argument("--dataset", help="dataset.npz matching --checkpoint")
    parser.add_argument("--n-flows", type=int, default=24000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--no-act-order", dest="act_order", action="store_false")
    args = parser.parse_args()
    if bool(args.checkpoint) != bool(args.dataset):
        parser.error("--checkpoint and --dataset go together")
    torch.set_num_threads(args.threads)
    setup = loaded_setup(args) if args.checkpoint else trained_setup(args)
    print(f"model: {setup.spec}\ndata: {setup.source}")
    print(f"torch {torch.__version__}, {args.threads} thread(s), group_size {args.group_size}")
    report(setup, args)


def report(setup: Setup, args: argparse.Namespace) -> None:
    names = [n for n, _ in matrix_layers(setup.model, torch.zeros(1, setup.spec.n_features))]
    columns = " ".join(f"{n.removeprefix('layers.'):>10}" for n in names)
    head = f"{'bits':>4} {'method':<6} {'seconds':>8} " + columns
    print("\nheld-out output error per layer (‖WX − ŴX‖²/n)\n" + head + f" {'size':>7}")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for bits in BITS:
            rows = {}
            for kind in ("gptq", "rtn"):
                variant = {"kind": kind, "bits": bits, "group_size": args.group_size}
                if kind == "gptq":
                    variant["act_order"] = args.act_order
                result, seconds = run_variant(setup, variant, args.repeats)
                rows[kind] = [e["heldout"] for e in result.info["layer_error"]]
                ratio = size_ratio(setup, variant, result.state, Path(tmp))
                errors = " ".join(f"{e:10.3e}" for e in rows[kind])
                print(f"{bits:>4} {kind:<6} {seconds:8.3f} {errors} {ratio:6.3f}x")
                if kind == "gptq" and seconds > TIME_TARGET_S:
                    failures.append(f"gptq w{bits} took {seconds:.2f} s > {TIME_TARGET_S} s")
            worse = [n for n, g, r in zip(names, rows["gptq"], rows["rtn"], strict=True) if g >= r]
            if bits in (3, 2) and worse:
                failures.append(f"w{bits}: GPTQ held-out error not below RTN on {worse}")
    print("\ntargets: " + ("all met" if not failures else "; ".join(failures)))


if __name__ == "__main__":
    main()
