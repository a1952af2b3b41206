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

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from quantbench.core.files import read_json, write_json
from quantbench.data.dataset import Dataset, load_dataset
from quantbench.machine.kernels import describe_execution, kernels_that_ran, runs_int8
from quantbench.machine.memory import resident_weight_bytes
from quantbench.quant.loader import LoadedModel, load_model
from quantbench.training.checkpoint import tensor_bytes

log = logging.getLogger(__name__)

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


@torch.inference_mode()
def test_logits(module: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """float32 logits of every row, in row order, in the batches :func:`predict` uses (a dynamic
    int8 model's logits depend on the rows batched together)."""
    out = [module(x[i : i + batch_size]).float() for i in range(0, x.shape[0], batch_size)]
    return torch.cat(out)


class PartTimer:
    """Wall seconds per named part of a step, summed over its ``with timer(name):`` blocks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[part] = self.seconds.get(part, 0.0) + elapsed

    def line(self) -> str:
        """``part seconds: score=0.412 export=1.203``: what the benchmarks read from the log."""
        return "part seconds: " + " ".join(f"{k}={v:.3f}" for k, v in self.seconds.items())


def test_rows_fingerprint(ds: Dataset) -> str:
    """sha256 of the test features then the test labels: two records pair only on equal rows."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(ds.x_test, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(ds.y_test, dtype=np.int64).tobytes())
    return digest.hexdigest()


def score_model(
    loaded: LoadedModel, ckpt_path: str | os.PathLike[str], ds: Dataset, info: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray]:
    """The facts of the quality record for a loaded checkpoint on the dataset's test rows, and
    its float32 logits on those rows (what the parity check compares an artifact with)."""
    meta = loaded.meta
    x_test = torch.from_numpy(ds.x_test)
    kernels = kernels_that_ran(loaded.module, x_test)
    int8 = runs_int8(kernels)
    logits = test_logits(loaded.module, x_test)
    record = {
        "method": meta["method"],
        "kind": meta["kind"],
        "params": meta["params"],
        "bits": int(info.get("bits", 32 if meta["kind"] == "fp32" else 8)),
        "seed": int(meta.get("seed", 0)),
        "class_names": list(ds.class_names),
        "test_rows": int(ds.x_test.shape[0]),
        "test_rows_sha256": test_rows_fingerprint(ds),
        "labels": ds.y_test.astype(int).tolist(),
        "predictions": logits.argmax(1).numpy().astype(int).tolist(),
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
    return record, logits.numpy()


def score_checkpoint(
    ckpt_path: str | os.PathLike[str], ds: Dataset, info: dict[str, Any]
) -> dict[str, Any]:
    """The facts of the quality record for one checkpoint (loading refuses other data)."""
    return score_model(load_model(ckpt_path, expect=ds), ckpt_path, ds, info)[0]


def quality_record(model: str, replicate: str, facts: dict[str, Any]) -> dict[str, Any]:
    """The quality record's JSON: its format, the job's identity and the facts."""
    return {
        "format": QUALITY_FORMAT,
        "version": QUALITY_VERSION,
        "model": model,
        "replicate": replicate,
        **facts,
    }


def load_and_score(
    checkpoint_path: str, dataset_path: str, info_path: str | None
) -> tuple[LoadedModel, Dataset, dict[str, Any], np.ndarray]:
    """Data and checkpoint loaded once (loading sets the engine), then scored on one thread:
    (the loaded model, the dataset, the record's facts, the test logits)."""
    torch.set_num_threads(1)
    ds = load_dataset(dataset_path)
    info = read_json(info_path) if info_path else {}
    loaded = load_model(checkpoint_path, expect=ds)
    facts, logits = score_model(loaded, checkpoint_path, ds, info)
    return loaded, ds, facts, logits


def run_scoring(
    checkpoint_path: str,
    dataset_path: str,
    info_path: str | None,
    model: str,
    replicate: str,
    quality_out: str,
) -> None:
    """The score step without ``deploy.export``: one checkpoint in, its quality record out."""
    timer = PartTimer()
    with timer("score"):
        _, _, facts, _ = load_and_score(checkpoint_path, dataset_path, info_path)
    write_json(quality_out, quality_record(model, replicate, facts))
    log.info("scored with torch: %s", quality_out)
    log.info(timer.line())
