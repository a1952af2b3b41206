"""Evaluate one checkpoint: quality on the test split, size on disk, and timed speed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quantbench.checkpoint import check_matches, tensor_bytes
from quantbench.dataset import Dataset, load_dataset
from quantbench.files import read_json, write_json
from quantbench.latency import (
    TimingConfig,
    cpu_name,
    kernels_that_ran,
    measure_latency,
    measure_throughput,
    set_threads,
)
from quantbench.loader import load_model

# Facts a method reports at quantize time that the metrics carry on unchanged.
_INFO_KEYS = ("layer_error", "history", "execution", "calibration_rows", "quantize_seconds")


@torch.inference_mode()
def predict(module: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    out = [module(x[i : i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


def quality(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(class_names)))
    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "class_names": list(class_names),
        "per_class": {
            c: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def describe_execution(kernels: list[str], info: dict[str, Any]) -> str:
    if "execution" in info:
        return str(info["execution"])
    if any(k.startswith("quantized::") for k in kernels):
        return "int8 kernels"
    return "fp32"


def evaluate_checkpoint(
    ckpt_path: str | os.PathLike[str],
    ds: Dataset,
    timing: TimingConfig,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the metrics dict of the metrics schema for one checkpoint."""
    info = info or {}
    set_threads(timing.threads)
    loaded = load_model(ckpt_path)
    meta = loaded.meta
    check_matches(meta, list(ds.feature_names), list(ds.class_names), ckpt_path)
    x_test = torch.from_numpy(ds.x_test)
    metrics: dict[str, Any] = {
        "method": meta["method"],
        "kind": meta["kind"],
        "params": meta["params"],
        "bits": int(info.get("bits", 32 if meta["kind"] == "fp32" else 8)),
        "seed": int(meta.get("seed", 0)),
        **quality(ds.y_test, predict(loaded.module, x_test), list(ds.class_names)),
        "size_bytes": Path(ckpt_path).stat().st_size,
        "payload_bytes": tensor_bytes(loaded.state),
    }
    kernels = kernels_that_ran(loaded.module, x_test)
    metrics |= {
        "latency_ms": measure_latency(loaded.module, x_test, timing),
        "throughput": measure_throughput(loaded.module, x_test, timing),
        "kernels": kernels,
        "execution": describe_execution(kernels, info),
        "engine": torch.backends.quantized.engine
        if any(k.startswith("quantized::") for k in kernels)
        else None,
        "threads": torch.get_num_threads(),
        "device": "cpu",
        "torch_version": str(torch.__version__),
        "cpu": cpu_name(),
    }
    metrics |= {k: info[k] for k in _INFO_KEYS if k in info and k != "execution"}
    return metrics


def run_evaluation(
    checkpoint_path: str,
    dataset_path: str,
    info_path: str | None,
    timing: dict[str, Any],
    engine: str,
    metrics_out: str,
) -> None:
    """The evaluate step: one checkpoint in, its metrics JSON out."""
    from quantbench import ao

    if ao.available():
        ao.use_engine(ao.select_engine(engine))
    ds = load_dataset(dataset_path)
    info = read_json(info_path) if info_path else {}
    metrics = evaluate_checkpoint(checkpoint_path, ds, TimingConfig(**timing), info)
    write_json(metrics_out, metrics)
