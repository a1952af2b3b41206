"""Parity of the ONNX graphs with their torch models, on real workflow checkpoints.

Every checkpoint under ``RESULTS/models/{model}/{rep}/{method}.pt`` is loaded, exported with
``quantbench.deploy.graph.export_graph`` and scored on the test rows of its replicate
(``RESULTS/data/{rep}/dataset.npz``) by torch and by ONNX Runtime (CPU provider, one thread,
default session options), in the same batches for both (the dynamic int8 kinds quantize each
batch from its own range). Printed per (model, rep, method): the kind, the argmax agreement
with the torch model, the largest |Δlogit|, the layers that fell back to FP32 and the export
time; then the CPU, onnxruntime and torch versions.

Targets: FP32 graphs 100 % agreement and max |Δlogit| <= 1e-4; quantized graphs >= 99.5 %.

Usage (after a workflow run, e.g. ``snakemake --cores 4 --configfile
configs/architectures.yaml``)::

    python benchmarks/deploy_parity.py results [--batch 512] [--accuracy-level 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from quantbench.data.dataset import load_dataset
from quantbench.deploy.graph import ACCURACY_LEVEL, export_graph
from quantbench.machine.cpu import cpu_facts, describe
from quantbench.quant.loader import load_model

FP32_DELTA = 1e-4
QUANT_AGREEMENT = 0.995


def _session(model) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


@torch.no_grad()
def _logits(module, session, x: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray]:
    want, got = [], []
    for start in range(0, x.shape[0], batch):
        rows = x[start : start + batch]
        want.append(module(torch.from_numpy(rows)).numpy())
        got.append(session.run(["logits"], {"features": rows})[0])
    return np.concatenate(want), np.concatenate(got)


def score(path: Path, results: Path, batch: int, level: int) -> dict:
    loaded = load_model(path)
    rep = path.parent.name
    x = load_dataset(results / "data" / rep / "dataset.npz").x_test.astype(np.float32)
    t0 = time.perf_counter()
    graph = export_graph(loaded, accuracy_level=level)
    seconds = time.perf_counter() - t0
    want, got = _logits(loaded.module.eval(), _session(graph.model), x, batch)
    agreement = float((want.argmax(1) == got.argmax(1)).mean())
    delta = float(np.abs(want - got).max())
    fp32 = loaded.meta["kind"] == "fp32"
    ok = (agreement == 1.0 and delta <= FP32_DELTA) if fp32 else agreement >= QUANT_AGREEMENT
    return {
        "model": path.parent.parent.name,
        "rep": rep,
        "method": path.stem,
        "kind": loaded.meta["kind"],
        "rows": int(x.shape[0]),
        "agreement": agreement,
        "delta": delta,
        "fallbacks": sum(layer.fallback is not None for layer in graph.layers),
        "export_s": seconds,
        "ok": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the workflow's results/ folder")
    parser.add_argument("--batch", type=int, default=512, help="rows per call (default 512)")
    parser.add_argument("--accuracy-level", type=int, default=ACCURACY_LEVEL)
    args = parser.parse_args()
    paths = sorted((args.results / "models").glob("*/*/*.pt"))
    if not paths:
        sys.exit(f"{args.results}: no checkpoints under models/; run the workflow first")
    torch.set_num_threads(1)
    head = f"{'model':<12} {'rep':<8} {'method':<14} {'kind':<12} {'rows':>6} "
    print(head + f"{'agree %':>8} {'max|dlogit|':>12} {'fallbacks':>9} {'export s':>8}  target")
    for path in paths:
        r = score(path, args.results, args.batch, args.accuracy_level)
        print(
            f"{r['model']:<12} {r['rep']:<8} {r['method']:<14} {r['kind']:<12} {r['rows']:>6} "
            f"{100 * r['agreement']:>8.3f} {r['delta']:>12.2e} {r['fallbacks']:>9} "
            f"{r['export_s']:>8.2f}  {'met' if r['ok'] else 'MISSED'}"
        )
    print(f"\nCPU: {describe(cpu_facts())}")
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, batch {args.batch}, "
          f"MatMulNBits accuracy_level {args.accuracy_level}")  # fmt: skip


if __name__ == "__main__":
    main()
