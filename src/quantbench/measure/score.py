"""Score one checkpoint: its predictions on the test split, its size, the path that ran.

The score step writes facts only (see ``workflow/schemas/quality.schema.json``): the test labels,
the model's predictions on the same rows, a fingerprint of those rows, the checkpoint's size,
the bytes its weights occupy once loaded (:func:`quantbench.machine.memory.resident_weight_bytes`)
and the kernels one forward pass ran. The model runs the path it was quantized for: int8 checkpoints
with the engine they name, int4 layers on the int4 kernel (bfloat16 activations), so accuracy is
scored on the path that is timed. Accuracy, macro-F1, per-class scores, confusion matrices and
every comparison with FP32 are computed from these facts by the report, so a scoring job needs
no quiet machine and no scikit-learn.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quantbench.core.files import read_json, write_json
from quantbench.data.dataset import Dataset, load_dataset
from quantbench.machine.kernels import describe_execution, kernels_that_ran, runs_int8
from quantbench.machine.memory import resident_weight_bytes
from quantbench.quant.loader import load_model
from quantbench.training.checkpoint import tensor_bytes

QUALITY_FORMAT = "quantbench-quality"
QUALITY_VERSION = 1
# Facts a method reports at quantize time that the quality record carries on unchanged.
INFO_KEYS = (
    "layer_error",
    "history",
    "calibration_rows",
    "quantize_seconds",
    "fine_tune_seconds",
    "best_epoch",
    "engine",
    "weight_qscheme",
    "group_size",
    "epochs_run",
    "best_val_loss",
    "best_val_accuracy",
    "coverage",
)


@torch.inference_mode()
def predict(module: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> np.ndarray:
    """Class index of every row (argmax of the logits), in row order."""
    out = [module(x[i : i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


def test_rows_fingerprint(ds: Dataset) -> str:
    """sha256 of the test features then the test labels: two records pair only on equal rows."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ds.x_test, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(ds.y_test, dtype=np.int64).tobytes())
    return digest.hexdigest()


def score_checkpoint(
    ckpt_path: str | os.PathLike[str], ds: Dataset, info: dict[str, Any]
) -> dict[str, Any]:
    """The facts of the quality record for one checkpoint on the dataset's test rows."""
    loaded = load_model(ckpt_path, expect=ds)
    meta = loaded.meta
    x_test = torch.from_numpy(ds.x_test)
    kernels = kernels_that_ran(loaded.module, x_test)
    int8 = runs_int8(kernels)
    return {
        "method": meta["method"],
        "kind": meta["kind"],
        "params": meta["params"],
        "bits": int(info.get("bits", 32 if meta["kind"] == "fp32" else 8)),
        "seed": int(meta.get("seed", 0)),
        "class_names": list(ds.class_names),
        "test_rows": int(ds.x_test.shape[0]),
        "test_rows_sha256": test_rows_fingerprint(ds),
        "labels": ds.y_test.astype(int).tolist(),
        "predictions": predict(loaded.module, x_test).astype(int).tolist(),
        "size_bytes": Path(ckpt_path).stat().st_size,
        "payload_bytes": tensor_bytes(loaded.state),
        "resident_weight_bytes": resident_weight_bytes(loaded.module),
        "kernels": kernels,
        "execution": describe_execution(kernels, info),
        "engine": torch.backends.quantized.engine if int8 else None,
        "device": "cpu",
        "torch_version": str(torch.__version__),
        "info": {k: info[k] for k in INFO_KEYS if k in info},
    }


def run_scoring(
    checkpoint_path: str,
    dataset_path: str,
    info_path: str | None,
    model: str,
    replicate: str,
    quality_out: str,
) -> None:
    """The score step: one checkpoint in, its quality record out (loading sets the engine)."""
    torch.set_num_threads(1)
    ds = load_dataset(dataset_path)
    info = read_json(info_path) if info_path else {}
    record = score_checkpoint(checkpoint_path, ds, info)
    write_json(
        quality_out,
        {
            "format": QUALITY_FORMAT,
            "version": QUALITY_VERSION,
            "model": model,
            "replicate": replicate,
            **record,
        },
    )
