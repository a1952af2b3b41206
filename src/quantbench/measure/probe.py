"""The probe_engine step: which int8 engine runs this run's own model fastest on this machine.

One job per model, on the first replicate's FP32 checkpoint and dataset. With
``quantization.engine: auto`` every int8 engine this torch build offers gets the model
statically quantized for it (:func:`quantbench.measure.engines.static_builder`: fused Linear+ReLU,
min/max ranges from ``CALIBRATION_ROWS`` training rows) and the engines are timed against each
other in interleaved rounds in this one process (:func:`quantbench.measure.engines.probe_engines`).
The objective is throughput at ``evaluate.batch_size`` rows per call by default
(``quantization.probe_objective: latency`` times single rows); the fastest engine is kept, ties
within 3 % going to the first in the default order. The record (``engine.json``) holds every
engine's figures, the pick, the reason and the objective.

An explicit engine (``quantization.engine: x86`` ...) wins without a probe: the job only checks
that this torch offers it and records ``probed: false``, so a run that names its engine pays
one short process, not a measurement.

The quantize jobs of variants on int8 kernels (the int8 kinds, weight-only codes on the int8
path) read ``engine`` from this record and store it in their checkpoint's
parameters; loading a checkpoint sets that engine before the module is rebuilt.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import torch

from quantbench.core.files import write_json
from quantbench.data.dataset import load_dataset
from quantbench.machine.cpu import describe
from quantbench.measure import engines
from quantbench.measure.engine_record import explicit_record
from quantbench.quant.ao import backend
from quantbench.quant.loader import load_model

log = logging.getLogger("quantbench.probe")

CALIBRATION_ROWS = 512  # training rows that set the probe models' ranges (speed ignores them)


def probe_record(
    checkpoint_path: str, dataset_path: str, requested: str, cfg: engines.ProbeConfig
) -> dict[str, Any]:
    """The engine record for the FP32 checkpoint at ``checkpoint_path`` (module docstring)."""
    if requested != "auto":
        return explicit_record(requested, asdict(cfg))
    ds = load_dataset(dataset_path)
    loaded = load_model(checkpoint_path, expect=ds)
    rows = torch.from_numpy(ds.x_train[:CALIBRATION_ROWS]).contiguous()
    with backend.quiet():
        record = engines.probe_engines(engines.static_builder(loaded.module, rows), rows, cfg)
    return {**record, "probed": True}


def run_probe(
    checkpoint_path: str,
    dataset_path: str,
    model: str,
    requested: str,
    objective: str,
    batch_size: int,
    threads: int,
    engine_out: str,
) -> None:
    """The probe_engine step: the FP32 checkpoint in, ``engine.json`` out."""
    cfg = engines.ProbeConfig(objective=objective, batch_size=batch_size, threads=threads)
    record = probe_record(checkpoint_path, dataset_path, requested, cfg)
    log.info("CPU: %s", describe(record["cpu"]))
    for name, entry in record["engines"].items():
        if entry["status"] == "ok":
            log.info("%s: %.4f ms per call, %.3fx the fastest's time", name, entry["median_ms"],
                     entry["time_vs_fastest"])  # fmt: skip
        else:
            log.info("%s: failed at %s (%s)", name, entry["stage"], entry["error"])
    log.info("int8 engine: %s (%s)", record["engine"], record["reason"])
    write_json(engine_out, {"model": model, **record})
