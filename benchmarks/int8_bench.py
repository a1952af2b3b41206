"""The int8 kinds on the default-size model: accuracy, checkpoint size, speed vs FP32.

Data: ``quantbench.data.synthetic.generate_flows(SyntheticConfig())`` when that module is present
(else a 30-feature gaussian-mixture stand-in; the output says which), non-finite rows dropped,
a stratified 70/15/15 split and a StandardScaler fitted on the training rows, like the
workflow's preprocessing. The FP32 MLP ([256, 256], dropout 0.1) is trained with
``quantbench.training.train.train_fp32`` and the workflow's default training settings; then
``ptq_dynamic``, ``ptq_static`` and ``qat`` run with their default parameters. Timing uses the
workflow's harness (``quantbench.measure.harness``) with one thread, FP32 and int8 models
interleaved over ``--rounds`` rounds, best round kept.

Usage: python benchmarks/int8_bench.py [--n-flows N] [--seed S] [--rounds R] [--sweep]
``--sweep`` adds variants (other observers, per-tensor weights) to see what each choice costs.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

from quantbench.data.dataset import Dataset
from quantbench.measure.harness import (
    TimingConfig,
    measure_latency,
    measure_throughput,
    set_threads,
)
from quantbench.models import resolve
from quantbench.quant.ao import backend
from quantbench.quant.base import CalibrationData
from quantbench.quant.methods import registry as methods
from quantbench.training.checkpoint import save_checkpoint
from quantbench.training.train import TrainConfig, train_fp32

DEFAULT_VARIANTS: dict[str, dict[str, Any]] = {
    "ptq_dynamic": {"kind": "ptq_dynamic"},
    "ptq_static": {"kind": "ptq_static", "calibration_samples": 2048, "observer": "histogram"},
    "qat": {"kind": "qat", "epochs": 5, "lr": 1.0e-4},
}
SWEEP_VARIANTS: dict[str, dict[str, Any]] = {
    "ptq_dynamic_per_tensor": {"kind": "ptq_dynamic", "per_channel": False},
    "ptq_static_minmax": {"kind": "ptq_static", "observer": "minmax"},
    "ptq_static_movavg": {"kind": "ptq_static", "observer": "moving_average"},
    "ptq_static_per_tensor": {"kind": "ptq_static", "per_channel": False},
    "qat_histogram": {"kind": "qat", "observer": "histogram"},
    "qat_minmax": {"kind": "qat", "observer": "minmax"},
}


def load_flows(n_flows: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """(features, labels, feature names, description of the source)."""
    try:
        from quantbench.data.synthetic import LABEL, SyntheticConfig, generate_flows
    except ImportError:
        return (*gaussian_stand_in(n_flows or 24000, seed), "gaussian-mixture stand-in")
    cfg = SyntheticConfig(seed=seed) if n_flows is None else SyntheticConfig(n_flows, seed=seed)
    df = generate_flows(cfg)
    x = df.drop(columns=LABEL).to_numpy(np.float64)
    classes, y = np.unique(df[LABEL].to_numpy(str), return_inverse=True)
    keep = np.isfinite(x).all(axis=1)
    names = [str(c) for c in df.columns if c != LABEL]
    return x[keep], y[keep], names, f"quantbench.synthetic {cfg} classes {list(classes)}"


def gaussian_stand_in(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 0.5, size=(6, 30))
    cluster = rng.integers(0, 6, size=n)
    x = centers[cluster] + rng.standard_t(5, size=(n, 30))
    return x, cluster % 3, [f"f{i}" for i in range(30)]


def make_dataset(n_flows: int | None, seed: int) -> tuple[Dataset, str]:
    """Stratified 70/15/15 split, StandardScaler fitted on the training rows only."""
    x, y, names, source = load_flows(n_flows, seed)
    idx = np.arange(len(y))
    train, rest = train_test_split(idx, test_size=0.3, stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    scaler = StandardScaler().fit(x[train])
    split = {"t": train, "v": val, "s": test}
    parts = {s: scaler.transform(x[i]).astype(np.float32) for s, i in split.items()}
    ds = Dataset(
        x_train=parts["t"], y_train=y[train].astype(np.int64),
        x_val=parts["v"], y_val=y[val].astype(np.int64),
        x_test=parts["s"], y_test=y[test].astype(np.int64),
        feature_names=tuple(names), class_names=tuple(str(c) for c in sorted(set(y.tolist()))),
    )  # fmt: skip
    return ds, source


@torch.inference_mode()
def accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (module(x).argmax(1) == y).float().mean().item()


def checkpoint_bytes(folder: Path, name: str, kind: str, params: dict, state: dict, ds) -> int:
    """Size of the checkpoint file the workflow would write for this model."""
    meta = {
        "method": name,
        "kind": kind,
        "params": params,
        "model": resolve({"arch": "mlp"}, ds.n_features, ds.n_classes).to_dict(),
        "feature_names": list(ds.feature_names),
        "class_names": list(ds.class_names),
        "seed": 0,
    }
    path = folder / f"{name}.pt"
    save_checkpoint(path, meta, state)
    return path.stat().st_size


def quantize_all(model: nn.Module, calib: CalibrationData, variants: dict) -> dict[str, Any]:
    engine = backend.select_engine("auto")
    results = {}
    for name, variant in variants.items():
        params = methods.make_params(variant["kind"], {**variant, "engine": engine})
        t0 = time.perf_counter()
        results[name] = methods.get_kind(variant["kind"]).quantize(
            copy.deepcopy(model), calib, params
        )
        print(f"  {name}: quantized in {time.perf_counter() - t0:.2f} s")
    return results


def time_models(models: dict[str, nn.Module], x: torch.Tensor, rounds: int) -> dict[str, Any]:
    """Best-of-rounds throughput (batch 512) and batch-1 p50, models interleaved per round."""
    cfg = TimingConfig(threads=1, batch_size=512, warmup=50, latency_samples=500)
    best: dict[str, dict[str, float]] = {n: {"tput": 0.0, "p50": float("inf")} for n in models}
    for _ in range(rounds):
        for name, module in models.items():
            tput = measure_throughput(module, x, cfg)["samples_per_s"]
            p50 = measure_latency(module, x, cfg)["p50"]
            best[name]["tput"] = max(best[name]["tput"], tput)
            best[name]["p50"] = min(best[name]["p50"], p50)
    return best


def check(label: str, ok: bool) -> str:
    return f"{label}: {'met' if ok else 'MISSED'}"


def print_table(ds, rows: dict[str, dict[str, float]]) -> None:
    fp = rows["fp32"]
    print(f"\n{'model':<24}{'test acc':>9}{'Δ pt':>7}{'size B':>9}{'size×':>7}"
          f"{'rows/s@512':>12}{'tput×':>7}{'p50 ms':>8}{'lat×':>6}")  # fmt: skip
    for name, r in rows.items():
        print(
            f"{name:<24}{r['acc']:>9.4f}{100 * (r['acc'] - fp['acc']):>+7.2f}{r['size']:>9d}"
            f"{r['size'] / fp['size']:>7.3f}{r['tput']:>12.0f}{r['tput'] / fp['tput']:>7.2f}"
            f"{r['p50']:>8.4f}{r['p50'] / fp['p50']:>6.2f}"
        )


def print_targets(rows: dict[str, dict[str, float]], qat_seconds: float) -> None:
    fp, st, qa, dy = rows["fp32"], rows["ptq_static"], rows["qat"], rows["ptq_dynamic"]
    print("\ntargets:")
    for line in (
        check("ptq_static within 0.5 pt of FP32", st["acc"] >= fp["acc"] - 0.005),
        check("qat within 0.3 pt of FP32", qa["acc"] >= fp["acc"] - 0.003),
        check("qat not below ptq_static by > 0.2 pt", qa["acc"] >= st["acc"] - 0.002),
        check("ptq_static throughput >= 1.8x FP32", st["tput"] >= 1.8 * fp["tput"]),
        check("qat throughput >= 1.8x FP32", qa["tput"] >= 1.8 * fp["tput"]),
        check("ptq_static checkpoint <= 0.32x FP32", st["size"] <= 0.32 * fp["size"]),
        check("qat checkpoint <= 0.32x FP32", qa["size"] <= 0.32 * fp["size"]),
        check("ptq_dynamic checkpoint <= 0.30x FP32", dy["size"] <= 0.30 * fp["size"]),
        check(f"QAT fine-tune <= 30 s ({qat_seconds:.2f} s)", qat_seconds <= 30),
    ):
        print("  " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-flows", type=int, default=None, help="default: SyntheticConfig's")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sweep", action="store_true")
    args = parser.parse_args()
    set_threads(1)
    ds, source = make_dataset(args.n_flows, args.seed)
    print(f"data: {source}\n  rows train/val/test {len(ds.y_train)}/{len(ds.y_val)}/"
          f"{len(ds.y_test)}, {ds.n_features} features, {ds.n_classes} classes")  # fmt: skip
    print(f"torch {torch.__version__}, engine {backend.select_engine('auto')}, 1 thread")
    model_cfg = resolve(
        {"arch": "mlp", "hidden": [256, 256], "dropout": 0.1}, ds.n_features, ds.n_classes
    )
    t0 = time.perf_counter()
    fp32, history = train_fp32(ds, model_cfg, TrainConfig(device="cpu", seed=args.seed))
    print(f"fp32: trained {len(history)} epochs in {time.perf_counter() - t0:.1f} s")
    calib = CalibrationData(
        x_train=torch.from_numpy(ds.x_train), y_train=torch.from_numpy(ds.y_train),
        x_val=torch.from_numpy(ds.x_val), y_val=torch.from_numpy(ds.y_val), seed=args.seed,
    )  # fmt: skip
    variants = DEFAULT_VARIANTS | (SWEEP_VARIANTS if args.sweep else {})
    results = quantize_all(fp32, calib, variants)
    x_test, y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
    models = {"fp32": fp32} | {n: r.module for n, r in results.items()}
    states = {"fp32": (fp32.state_dict(), "fp32", {})}
    states |= {n: (r.state, variants[n]["kind"], variants[n]) for n, r in results.items()}
    with tempfile.TemporaryDirectory() as tmp:
        sizes = {n: checkpoint_bytes(Path(tmp), n, k, p, s, ds) for n, (s, k, p) in states.items()}
    timing = time_models(models, x_test, args.rounds)
    rows = {
        n: {"acc": accuracy(m, x_test, y_test), "size": sizes[n], **timing[n]}
        for n, m in models.items()
    }
    print_table(ds, rows)
    qat_seconds = results["qat"].info["fine_tune_seconds"]
    print(f"\nqat: best epoch {results['qat'].info['best_epoch']}, history:")
    for h in results["qat"].info["history"]:
        print(f"  {h}")
    print_targets(rows, qat_seconds)


if __name__ == "__main__":
    main()
