"""The quantize step: FP32 checkpoint + one named variant -> quantized checkpoint + info JSON."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch

from quantbench import methods
from quantbench.checkpoint import check_matches, save_checkpoint
from quantbench.dataset import load_dataset
from quantbench.files import write_json
from quantbench.loader import load_model
from quantbench.methods.base import CalibrationData
from quantbench.train import resolve_device

log = logging.getLogger("quantbench.quantize")


def run_quantization(
    method: str,
    variant: dict[str, Any],
    fp32_path: str,
    dataset_path: str,
    seed: int,
    device: str,
    threads: int,
    checkpoint_out: str,
    info_out: str,
) -> None:
    """Quantize with ``variant`` (its ``kind`` picks the implementation) and save the result."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    kind = variant["kind"]
    params = methods.make_params(kind, variant)
    fp32 = load_model(fp32_path)
    ds = load_dataset(dataset_path)
    check_matches(fp32.meta, list(ds.feature_names), list(ds.class_names), fp32_path)
    calib = CalibrationData(
        x_train=torch.from_numpy(ds.x_train),
        y_train=torch.from_numpy(ds.y_train),
        x_val=torch.from_numpy(ds.x_val),
        y_val=torch.from_numpy(ds.y_val),
        seed=seed,
        device=str(resolve_device(device)),
    )
    log.info("quantizing %s (kind %s) with %s on %s", method, kind, variant, calib.device)
    t0 = time.perf_counter()
    result = methods.get_kind(kind).quantize(copy.deepcopy(fp32.module), calib, params)
    seconds = time.perf_counter() - t0
    log.info("%s quantized in %.2f s", method, seconds)
    meta = {
        "method": method,
        "kind": kind,
        "params": dict(variant),
        "model": fp32.meta["model"],
        "feature_names": fp32.meta["feature_names"],
        "class_names": fp32.meta["class_names"],
        "seed": seed,
    }
    save_checkpoint(checkpoint_out, meta, result.state)
    info = {"quantize_seconds": seconds, **result.info}
    write_json(info_out, {"method": method, "kind": kind, "params": dict(variant), **info})
