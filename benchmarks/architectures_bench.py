"""Every kind on every built-in architecture, on the default data, through the workflow's steps.

Generates the default synthetic traffic data and preprocesses it as the workflow does
(``quantbench.data.synthetic``, ``quantbench.data.preprocess.run_preprocess`` with config.yaml's
data settings), trains each architecture with ``quantbench.training.train.run_training``
(config.yaml's training settings, CPU, one thread) and quantizes it with
``quantbench.quant.quantize.run_quantization`` using config.yaml's method variants, plus GPTQ and
RTN at 3 and 2 bits for the layer-error target. Every checkpoint is loaded back with
``quantbench.quant.loader.load_model`` (weights-only) and scored on the test split. Printed per
architecture: training time and epochs, then per variant the test accuracy and its difference from
FP32 (points), the checkpoint size as a share of FP32's, the coverage (share of weights quantized,
share of multiply-accumulates on quantized weights and on int8 kernels, the FP32 layers), the
quantize time; then GPTQ's and RTN's held-out output error of every layer at 3 and 2 bits; then
each target of the models issue with PASS or FAIL.

Usage::

    python benchmarks/architectures_bench.py [--archs mlp cnn1d transformer] [--seed 42]
        [--n-flows 24000] [--custom examples/residual_mlp.py:residual_mlp]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from quantbench.core.files import read_json
from quantbench.data.dataset import load_dataset
from quantbench.data.preprocess import run_preprocess
from quantbench.data.settings import data_config_from_mapping
from quantbench.data.synthetic import SyntheticConfig, write_flows_csv
from quantbench.measure.score import predict
from quantbench.quant.ao import backend
from quantbench.quant.loader import load_model
from quantbench.quant.quantize import run_quantization
from quantbench.training.train import run_training

DATA = {"nonfinite": "drop", "categorical": "onehot", "val_fraction": 0.15, "test_fraction": 0.15}
TRAIN = {"epochs": 40, "batch_size": 256, "lr": 1e-3, "weight_decay": 1e-4, "patience": 5}
METHODS: dict[str, dict[str, Any]] = {
    "ptq_dynamic": {"kind": "ptq_dynamic"},
    "ptq_static": {"kind": "ptq_static", "calibration_samples": 2048, "observer": "histogram"},
    "qat": {"kind": "qat", "epochs": 5, "lr": 1.0e-4},
    "gptq_w4": {"kind": "gptq", "bits": 4, "group_size": 32, "act_order": True},
    "rtn_w4": {"kind": "rtn", "bits": 4, "group_size": 32},
    "gptq_w3": {"kind": "gptq", "bits": 3, "group_size": 32, "act_order": True},
    "rtn_w3": {"kind": "rtn", "bits": 3, "group_size": 32},
    "gptq_w2": {"kind": "gptq", "bits": 2, "group_size": 32, "act_order": True},
    "rtn_w2": {"kind": "rtn", "bits": 2, "group_size": 32},
}
INT8 = ("ptq_dynamic", "ptq_static", "qat")


def make_data(folder: Path, n_flows: int, seed: int) -> Path:
    raw, out = folder / "raw.csv", folder / "dataset.npz"
    write_flows_csv(SyntheticConfig(n_flows=n_flows, seed=seed), raw)
    cfg = data_config_from_mapping(DATA)
    run_preprocess([str(raw)], cfg, seed, out, folder / "pre.joblib", folder / "card.json")
    return out


def accuracy(path: Path, x: torch.Tensor, y: np.ndarray) -> float:
    return float((predict(load_model(path).module, x) == y).mean())


def train(folder: Path, spec: dict[str, Any], dataset: Path, seed: int) -> dict[str, Any]:
    t0, c0 = time.perf_counter(), time.process_time()
    run_training(
        str(dataset),
        spec,
        {**TRAIN, "device": "cpu", "threads": 1},
        seed,
        str(folder / "fp32.pt"),
        str(folder / "fp32.history.json"),
    )
    history = read_json(folder / "fp32.history.json")
    return {
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "epochs": history["epochs_run"],
    }


def quantize(folder: Path, dataset: Path, seed: int, engine: str) -> dict[str, dict]:
    out = {}
    for name, variant in METHODS.items():
        v = {**variant, "engine": engine} if variant["kind"] in INT8 else dict(variant)
        t0 = time.process_time()
        run_quantization(
            name,
            v,
            str(folder / "fp32.pt"),
            str(dataset),
            seed,
            "cpu",
            1,
            str(folder / f"{name}.pt"),
            str(folder / f"{name}.info.json"),
        )
        out[name] = {
            "info": read_json(folder / f"{name}.info.json"),
            "cpu_s": time.process_time() - t0,
        }
    return out


def fp32_layers(cov: dict[str, Any]) -> str:
    names = [e["layer"] or "(model)" for e in cov["layers"] if not e["quantized"]]
    other = " + products outside layers" if "other_macs" in cov else ""
    return (", ".join(names) or "none") + other


def report_arch(arch: str, folder: Path, dataset: Path, fit: dict, quant: dict) -> dict:
    ds = load_dataset(dataset)
    x, y = torch.from_numpy(ds.x_test), ds.y_test
    fp32_acc = accuracy(folder / "fp32.pt", x, y)
    fp32_size = (folder / "fp32.pt").stat().st_size
    print(
        f"\n## {arch}: FP32 test accuracy {fp32_acc:.4f}, {fp32_size / 1024:.1f} KB, trained "
        f"{fit['epochs']} epochs in {fit['cpu_s']:.1f} s CPU ({fit['wall_s']:.1f} s wall)"
    )
    print(
        "| method | accuracy | Δ pt | size × FP32 | weights q | MACs q | MACs int8 | "
        "quantize s CPU | FP32 layers |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    rows = {}
    for name, q in quant.items():
        acc = accuracy(folder / f"{name}.pt", x, y)
        ratio = (folder / f"{name}.pt").stat().st_size / fp32_size
        cov = q["info"]["coverage"]
        rows[name] = {
            "accuracy": acc,
            "delta_pt": 100 * (acc - fp32_acc),
            "size_ratio": ratio,
            "coverage": cov,
            "layer_error": q["info"].get("layer_error", []),
        }
        print(
            f"| {name} | {acc:.4f} | {100 * (acc - fp32_acc):+.2f} | {ratio:.3f} | "
            f"{cov['weights_quantized']:.1%} | {cov['macs_quantized']:.1%} | "
            f"{cov['macs_int8_kernels']:.1%} | {q['cpu_s']:.2f} | {fp32_layers(cov)} |"
        )
    print_layer_errors(rows)
    return {"fp32_accuracy": fp32_acc, "fit": fit, "methods": rows}


def print_layer_errors(rows: dict[str, dict]) -> None:
    print("\nheld-out output error per layer, GPTQ vs RTN:")
    for bits in (3, 2):
        g, r = rows[f"gptq_w{bits}"]["layer_error"], rows[f"rtn_w{bits}"]["layer_error"]
        cells = [
            f"{a['layer']} {a['heldout']:.3g} vs {b['heldout']:.3g}"
            for a, b in zip(g, r, strict=True)
        ]
        print(f"  {bits} bits: " + "; ".join(cells))


def check(name: str, ok: bool, figure: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {figure}")
    return ok


def targets(results: dict[str, dict]) -> None:
    print("\n## targets")
    for arch, r in results.items():
        acc, m = r["fp32_accuracy"], r["methods"]
        check(f"{arch} FP32 accuracy in 0.85–0.96", 0.85 <= acc <= 0.96, f"{acc:.4f}")
        if arch in ("cnn1d", "transformer"):
            for name, limit in (
                ("ptq_dynamic", 0.5),
                ("ptq_static", 1.0),
                ("qat", 1.0),
                ("gptq_w4", 1.0),
            ):
                d = m[name]["delta_pt"]
                check(f"{arch} {name} within {limit} pt of FP32", d >= -limit, f"{d:+.2f} pt")
        for bits in (3, 2):
            g, r_ = m[f"gptq_w{bits}"]["layer_error"], m[f"rtn_w{bits}"]["layer_error"]
            pairs = zip(g, r_, strict=True)
            worse = [a["layer"] for a, b in pairs if not a["heldout"] < b["heldout"]]
            check(
                f"{arch} GPTQ below RTN at {bits} bits on every layer",
                not worse,
                f"not below on {worse}" if worse else "all layers",
            )
        for name, row in m.items():
            cov = row["coverage"]["weights_quantized"]
            if arch in ("mlp", "cnn1d", "custom") and name in (
                "ptq_dynamic",
                "ptq_static",
                "qat",
                "gptq_w4",
                "rtn_w4",
            ):
                check(f"{arch} {name} quantizes 100 % of weights", cov == 1.0, f"{cov:.1%}")
            if cov >= 0.95:
                limit = 0.32 if name in INT8 else {"4": 0.18}.get(name[-1])
                if limit:
                    r_ = row["size_ratio"]
                    check(f"{arch} {name} checkpoint <= {limit}x FP32", r_ <= limit, f"{r_:.3f}x")
        if arch == "transformer":
            for name in ("gptq_w4", "rtn_w4"):
                layers = m[name]["coverage"]["layers"]
                linear = [e for e in layers if e["type"] == "Linear"]
                check(
                    f"transformer {name} quantizes every Linear",
                    all(e["quantized"] for e in linear),
                    f"{len(linear)} Linear layers",
                )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", nargs="+", default=["mlp", "cnn1d", "transformer"])
    p.add_argument("--custom", default=None, help="path.py:factory of a custom model")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--n-flows", type=int, default=24000)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args()
    torch.set_num_threads(1)
    engine = backend.select_engine("auto")
    print(f"torch {torch.__version__}, engine {engine}, 1 thread, seed {args.seed}")
    specs = {a: {"arch": a} for a in args.archs}
    if args.custom:
        path, factory = args.custom.split(":")
        specs["custom"] = {"arch": "custom", "path": path, "factory": factory}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = make_data(Path(tmp), args.n_flows, args.seed)
        for arch, spec in specs.items():
            folder = Path(tmp) / arch
            folder.mkdir()
            fit = train(folder, spec, dataset, args.seed)
            quant = quantize(folder, dataset, args.seed, engine)
            results[arch] = report_arch(arch, folder, dataset, fit, quant)
    targets(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
