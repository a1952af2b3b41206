"""Synthetic quality and timing facts of the results layout, from seeded predictions and timings.

A run is FP32 plus methods; each method's predictions are FP32's of the same replicate with a
chosen number of rows broken (FP32 right, method wrong) and fixed (FP32 wrong, method right), so
the paired counts b and c are known exactly. Timings: every call of a round is a base time times
a shared drift of the round times per-call noise; the candidate's base is FP32's divided by the
chosen speed-up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from quantbench.core.files import write_json

CLASSES = ["video", "voip", "web"]
LAYERS = ["net.0", "net.3", "net.6"]


@dataclass(frozen=True)
class Method:
    """One synthetic method: paired row changes against FP32 and its speed-ups."""

    name: str
    kind: str
    bits: int = 8
    broken: int = 0  # rows FP32 gets right and the method wrong, per replicate
    fixed: int = 0  # rows FP32 gets wrong and the method right, per replicate
    size_bytes: int = 76_000
    speed_1: float = 1.0  # true batch-1 speed-up
    speed_n: float = 1.0  # true full-batch speed-up
    layer_error: bool = False
    jitter: int = 0  # extra broken rows in replicate i: i * jitter (spread over replicates)
    ort_1: float = 4.0  # true batch-1 speed-up of its ONNX artifact over torch FP32
    ort_n: float = 1.2  # true full-batch speed-up of its ONNX artifact over torch FP32
    # rows its artifact gets wrong where its torch model is right, per replicate (parity records)
    ort_broken: tuple[int, ...] = ()


FP32 = Method("fp32", "fp32", bits=32, size_bytes=290_000)
ORT_FP32 = (4.0, 1.2)  # FP32's artifact in ONNX Runtime over torch FP32: batch 1, batch N


def ort_block(m: Method) -> dict[str, Any]:
    """The timing record's ``onnxruntime`` block of FP32 and ``m``'s artifacts."""
    fused, attrs = {}, {}
    if m.kind in ("ptq_static", "qat"):
        fused = {"com.microsoft:QGemm": 3}
    elif m.kind in ("rtn", "gptq"):
        fused = {"com.microsoft:MatMulNBits": 3}
        attrs = {"MatMulNBits.accuracy_level": [4], "MatMulNBits.bits": [m.bits]}
    return {
        "version": "1.32.0", "available_providers": ["CPUExecutionProvider"],
        "session_options": {"intra_op_num_threads": 1, "inter_op_num_threads": 1,
                            "execution_mode": "sequential",
                            "graph_optimization_level": "ORT_ENABLE_ALL",
                            "providers": ["CPUExecutionProvider"]},
        "input": "the artifact's model graph on the rows the torch sides take",
        "reference": {"artifact": "results/deploy/mlp/seed42/fp32/model.onnx",
                      "ops": {"MatMul": 3}, "quantized_ops": {}, "kernel_attributes": {}},
        "candidate": {"artifact": f"results/deploy/mlp/seed42/{m.name}/model.onnx",
                      "ops": fused or {"MatMul": 3}, "quantized_ops": fused,
                      "kernel_attributes": attrs},
        "sessions_per_side": 16,
        "end_to_end": {
            "input": "raw feature rows; every output",
            "reference": {"latency_ms_p50": 0.012, "pass_ms_p50": 0.8, "calls": 500,
                          "passes": 100, "batch_size": 512},
            "candidate": {"latency_ms_p50": 0.015, "pass_ms_p50": 0.4, "calls": 500,
                          "passes": 100, "batch_size": 512},
        },
    }  # fmt: skip


DEFAULT_METHODS = [
    Method("ptq_dynamic", "ptq_dynamic", broken=6, fixed=4, size_bytes=75_500, speed_1=0.8,
           speed_n=1.4, jitter=1),
    Method("ptq_static", "ptq_static", broken=8, fixed=5, size_bytes=76_800, speed_1=0.7,
           speed_n=2.4, jitter=2),
    Method("qat", "qat", broken=5, fixed=6, size_bytes=76_900, speed_1=0.7, speed_n=2.3,
           jitter=1),
    Method("gptq_w4", "gptq", bits=4, broken=3, fixed=2, size_bytes=41_200, layer_error=True,
           jitter=1),
    Method("rtn_w4", "rtn", bits=4, broken=10, fixed=4, size_bytes=41_000, layer_error=True,
           jitter=2),
    Method("rtn_w2", "rtn", bits=2, broken=160, fixed=20, size_bytes=24_000, layer_error=True,
           jitter=5),
]  # fmt: skip


@dataclass
class Run:
    """Where the synthetic facts were written."""

    root: Path
    quality: list[str] = field(default_factory=list)
    timing: list[str] = field(default_factory=list)
    engine: list[str] = field(default_factory=list)
    parity: list[str] = field(default_factory=list)


def labels_and_fp32(seed: int, rows: int, fp32_accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """Balanced labels and FP32 predictions right on ``fp32_accuracy`` of the rows."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(rows) % len(CLASSES))
    wrong = rng.choice(rows, size=round(rows * (1 - fp32_accuracy)), replace=False)
    preds = labels.copy()
    preds[wrong] = (labels[wrong] + rng.integers(1, len(CLASSES), wrong.size)) % len(CLASSES)
    return labels, preds


def method_predictions(
    labels: np.ndarray, fp32: np.ndarray, broken: int, fixed: int, seed: int
) -> np.ndarray:
    """FP32's predictions with ``broken`` right rows made wrong and ``fixed`` wrong rows right."""
    rng = np.random.default_rng(seed)
    right, wrong = np.flatnonzero(fp32 == labels), np.flatnonzero(fp32 != labels)
    preds = fp32.copy()
    b = rng.choice(right, size=broken, replace=False)
    preds[b] = (labels[b] + 1) % len(CLASSES)
    c = rng.choice(wrong, size=fixed, replace=False)
    preds[c] = labels[c]
    return preds


def coverage(m: Method) -> dict[str, Any]:
    """A coverage record (quantbench.quant.coverage.report's layout): the int8 kinds leave the head
    FP32 here, the weight-only kinds quantize every layer."""
    params, macs = [1000, 4000, 300], [960, 3968, 288]
    keep = 2 if m.kind.startswith(("ptq", "qat")) else None
    layers = [
        {"layer": name, "type": "Linear", "params": p, "macs": k, "quantized": i != keep,
         "int8_kernel": i != keep and keep is not None,
         **({"how": "packed codes"} if i != keep else {"why": "kept FP32"})}
        for i, (name, p, k) in enumerate(zip(LAYERS, params, macs, strict=True))
    ]  # fmt: skip
    q = [e for e in layers if e["quantized"]]
    return {
        "layers": layers, "layers_quantized": len(q), "layers_fp32": len(layers) - len(q),
        "params": sum(params), "macs": sum(macs),
        "weights_quantized": sum(e["params"] for e in q) / sum(params),
        "macs_quantized": sum(e["macs"] for e in q) / sum(macs),
        "macs_int8_kernels": sum(e["macs"] for e in q if e["int8_kernel"]) / sum(macs),
    }  # fmt: skip


def quality_record(
    m: Method, model: str, seed: int, labels: np.ndarray, preds: np.ndarray
) -> dict[str, Any]:
    digest = hashlib.sha256(labels.astype(np.int64).tobytes() + str(seed).encode()).hexdigest()
    info: dict[str, Any] = {}
    if m.layer_error:
        scale = 0.5 if m.kind == "gptq" else 1.0
        info["layer_error"] = [
            {"layer": name, "calib": scale * f * 0.8 * (1 + seed % 3 / 10),
             "heldout": scale * f * (1 + seed % 3 / 10)}
            for name, f in zip(LAYERS, (2e-4, 5e-3, 1e-2), strict=True)
        ]  # fmt: skip
    if m.kind != "fp32":
        info |= {"calibration_rows": 2048, "quantize_seconds": 0.5, "coverage": coverage(m)}
    int8 = m.kind.startswith(("ptq", "qat"))
    return {
        "format": "quantbench-quality", "version": 1, "model": model, "method": m.name,
        "kind": m.kind, "params": {"kind": m.kind} if m.kind != "fp32" else {}, "bits": m.bits,
        "replicate": f"seed{seed}", "seed": seed, "class_names": CLASSES,
        "test_rows": int(labels.size), "test_rows_sha256": digest,
        "labels": labels.tolist(), "predictions": preds.tolist(),
        "size_bytes": m.size_bytes, "payload_bytes": m.size_bytes - 3000,
        "resident_weight_bytes": m.size_bytes - 2000,
        "kernels": ["quantized::linear"] if int8 else ["aten::addmm"],
        "execution": "int8 kernels" if int8 else "fp32", "engine": "x86" if int8 else None,
        "device": "cpu", "torch_version": "2.5.1+cpu", "info": info,
    }  # fmt: skip


def _side(
    rng: np.random.Generator, base_1: float, base_n: float, drift: float, calls: int,
    passes: int, noise: float,
) -> dict[str, list[float]]:  # fmt: skip
    drift *= float(rng.lognormal(0, noise))  # this side's own share of the round's noise
    return {
        "latency_ms": (base_1 * drift * rng.lognormal(0, noise, calls)).tolist(),
        "pass_ms": (base_n * drift * rng.lognormal(0, noise, passes)).tolist(),
    }


def timing_record(
    m: Method, model: str, rep: str, rounds: int = 20, seed: int = 0, noise: float = 0.03,
    latency_samples: int = 2000, throughput_repeats: int = 200, onnxruntime: bool = False,
) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng(seed)
    calls = max(1, latency_samples // rounds)
    passes = max(1, throughput_repeats // rounds)
    out_rounds = []
    for i in range(rounds):
        drift = float(rng.lognormal(0, 0.05))  # machine drift, shared by both sides
        ref = _side(rng, 0.045, 2.2, drift, calls, passes, noise)
        cand = _side(rng, 0.045 / m.speed_1, 2.2 / m.speed_n, drift, calls, passes, noise)
        order = ["reference", "candidate"] if i % 2 == 0 else ["candidate", "reference"]
        out_rounds.append({"order": order, "reference": ref, "candidate": cand})
        if onnxruntime:
            sides = ("ort_reference", "ort_candidate")
            out_rounds[-1] |= {
                sides[0]: _side(rng, 0.045 / ORT_FP32[0], 2.2 / ORT_FP32[1], drift, calls,
                                passes, noise),
                sides[1]: _side(rng, 0.045 / m.ort_1, 2.2 / m.ort_n, drift, calls, passes,
                                noise),
            }  # fmt: skip
            out_rounds[-1]["order"] = [*order, *sides]
    int8 = m.kind.startswith(("ptq", "qat"))
    return {
        "format": "quantbench-timing", "version": 1, "model": model, "method": m.name,
        "kind": m.kind, "replicate": rep,
        "settings": {"threads": 1, "batch_size": 512, "warmup": 100, "rounds": rounds,
                     "latency_samples": latency_samples,
                     "throughput_repeats": throughput_repeats},
        "reference": {"method": "fp32", "kind": "fp32", "kernels": ["aten::addmm"],
                      "execution": "fp32", "engine": None},
        "candidate": {"method": m.name, "kind": m.kind,
                      "kernels": ["quantized::linear"] if int8 else ["aten::addmm"],
                      "execution": "int8 kernels" if int8 else "fp32",
                      "engine": "x86" if int8 else None},
        "rounds": out_rounds, "threads": 1, "device": "cpu", "torch_version": "2.5.1+cpu",
        "cpu": "Example CPU 7763 @ 2.40GHz",
        "cpu_facts": {"model": "Example CPU 7763 @ 2.40GHz", "architecture": "x86_64",
                      "features": ["avx2", "fma", "avx512f"], "torch_capability": "AVX512"},
        "memory": {"peak_rss_bytes": 300 * 2**20,
                   "copies_per_side": 16},
        "runtimes": ["torch", "onnxruntime"] if onnxruntime else ["torch"],
        **({"onnxruntime": ort_block(m)} if onnxruntime else {}),
    }  # fmt: skip


def parity_record(
    m: Method, model: str, rep: str, labels: np.ndarray, torch: np.ndarray, artifact: np.ndarray
) -> dict[str, Any]:
    """A parity record as the parity check writes it: the artifact's predictions on the rows."""
    return {
        "format": "quantbench-parity", "version": 2, "model": model, "replicate": rep,
        "method": m.name, "kind": m.kind, "artifact": f"results/deploy/{model}/{rep}/{m.name}",
        "rows": int(labels.size), "agreeing_rows": int(np.count_nonzero(torch == artifact)),
        "agreement": float(np.mean(torch == artifact)), "max_abs_logit_diff": 1e-6,
        "mean_abs_logit_diff": 1e-7, "artifact_accuracy": float(np.mean(artifact == labels)),
        "torch_accuracy": float(np.mean(torch == labels)), "nonfinite_logits": 0,
        "labels_sha256": hashlib.sha256(labels.astype(np.int64).tobytes()).hexdigest(),
        "predictions": artifact.tolist(), "fallbacks": [], "onnx_bytes": m.size_bytes + 3_000,
    }  # fmt: skip


def artifact_predictions(labels: np.ndarray, torch: np.ndarray, broken: int) -> np.ndarray:
    """The torch model's predictions with its first ``broken`` right rows made wrong."""
    preds = torch.copy()
    rows = np.flatnonzero(torch == labels)[:broken]
    preds[rows] = (labels[rows] + 1) % len(CLASSES)
    return preds


def _write_parity(
    run: Run, m: Method, model: str, i: int, seed: int, labels: np.ndarray, preds: np.ndarray
) -> None:
    broken = m.ort_broken[i] if i < len(m.ort_broken) else 0
    art = artifact_predictions(labels, preds, broken)
    path = run.root / "parity" / model / f"seed{seed}" / f"{m.name}.json"
    write_json(path, parity_record(m, model, f"seed{seed}", labels, preds, art))
    run.parity.append(str(path))


def engine_record(model: str = "mlp", probed: bool = True) -> dict[str, Any]:
    """An engine record as the probe_engine step writes it (two engines, x86 the faster)."""
    entries = {
        "x86": {"status": "ok", "round_ms": [0.21, 0.2], "median_ms": 0.205,
                "time_vs_fastest": 1.0, "samples_per_s": 2497561.0, "calls_per_round": 20,
                "build_seconds": 0.04},
        "qnnpack": {"status": "ok", "round_ms": [0.61, 0.6], "median_ms": 0.605,
                    "time_vs_fastest": 2.95, "samples_per_s": 846281.0, "calls_per_round": 16,
                    "build_seconds": 0.05},
        "onednn": {"status": "failed", "stage": "run", "error": "RuntimeError: no kernel"},
    }  # fmt: skip
    return {
        "model": model, "format": "quantbench-engine", "version": 1,
        "engine": "x86", "requested": "auto" if probed else "x86", "probed": probed,
        "reason": "fastest at throughput: 2.95x faster than qnnpack" if probed
        else "x86 set explicitly in quantization.engine; no probe ran",
        "fastest": "x86" if probed else None, "tied": ["x86"] if probed else [],
        "default": "x86", "settings": {"objective": "throughput", "batch_size": 512},
        "engines": entries if probed else {}, "round_orders": [], "probe_seconds": 0.4,
        "torch_version": "2.5.1+cpu", "cpu": {"model": "Example CPU 7763 @ 2.40GHz"},
    }  # fmt: skip


def write_run(
    root: Path,
    methods: list[Method] | None = None,
    seeds: tuple[int, ...] = (42, 43, 44),
    rows: int = 3600,
    rounds: int = 20,
    model: str = "mlp",
    fp32_accuracy: float = 0.91,
    onnxruntime: bool = False,
    fp32: Method = FP32,
) -> Run:
    """Quality files for FP32 and every method in every replicate, timing per method; with
    ``onnxruntime``, parity records of every artifact too."""
    methods = DEFAULT_METHODS if methods is None else methods
    run = Run(root)
    for r, seed in enumerate(seeds):
        spread = 0.002 * ((seed - seeds[0]) % 3 - 1)  # replicates differ a little
        labels, fp32_preds = labels_and_fp32(seed, rows, fp32_accuracy + spread)
        for i, m in enumerate([fp32, *methods]):
            extra = (seed - seeds[0]) * m.jitter
            preds = fp32_preds if m is fp32 else method_predictions(
                labels, fp32_preds, m.broken + extra, m.fixed, seed * 100 + i
            )  # fmt: skip
            path = root / "quality" / model / f"seed{seed}" / f"{m.name}.json"
            write_json(path, quality_record(m, model, seed, labels, preds))
            run.quality.append(str(path))
            if onnxruntime:
                _write_parity(run, m, model, r, seed, labels, preds)
    for i, m in enumerate(methods):
        path = root / "timing" / model / f"{m.name}.json"
        record = timing_record(m, model, f"seed{seeds[0]}", rounds, seed=i, onnxruntime=onnxruntime)
        write_json(path, record)
        run.timing.append(str(path))
    if any(m.kind.startswith(("ptq", "qat")) for m in methods):
        path = root / "engine" / f"{model}.json"
        write_json(path, engine_record(model))
        run.engine.append(str(path))
    return run
