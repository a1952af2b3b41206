"""The quantize step: FP32 checkpoint + one named variant -> quantized checkpoint + info JSON.

The int8 kinds take their engine from the run's engine record (``results/engine/{model}.json``,
written by the probe_engine step): the resolved name replaces the variant's ``engine`` (``auto``
or the configured one), so the checkpoint's parameters name the engine it was quantized for and
loading it sets that engine before the module is rebuilt.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch

from quantbench.core.files import read_json, write_json
from quantbench.data.dataset import load_dataset
from quantbench.machine.device import resolve_device
from quantbench.quant.base import CalibrationData
from quantbench.quant.loader import load_model
from quantbench.quant.methods import registry as methods
from quantbench.training.checkpoint import save_checkpoint

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
    engine_path: str | None = None,
) -> None:
    """Quantize with ``variant`` (its ``kind`` picks the implementation) and save the result."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    kind = variant["kind"]
    variant = dict(variant)
    if engine_path is not None:
        variant["engine"] = resolved_engine(engine_path, variant.get("engine", "auto"))
    params = methods.make_params(kind, variant)
    ds = load_dataset(dataset_path)
    fp32 = load_model(fp32_path, expect=ds)
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
        **({"engine": variant["engine"]} if "engine" in variant else {}),
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


def resolved_engine(engine_path: str, requested: str) -> str:
    """The engine of the run's engine record; ValueError (one line) if it answers another
    request than this variant's (the record is stale: rerun the workflow)."""
    record = read_json(engine_path)
    if record.get("requested") != requested:
        raise ValueError(
            f"{engine_path}: engine record for quantization.engine {record.get('requested')!r}, "
            f"this variant asks for {requested!r}; delete it and rerun the workflow"
        )
    return str(record["engine"])
