"""The time step: FP32 and one method's model of the first replicate, timed against each other
in paired rounds (:mod:`quantbench.measure.harness`), the timing record out."""

from __future__ import annotations

from typing import Any

import torch

from quantbench.core.files import read_json, write_json
from quantbench.data.dataset import Dataset, load_dataset
from quantbench.machine.cpu import cpu_facts
from quantbench.machine.kernels import describe_execution, kernels_that_ran, runs_int8
from quantbench.machine.memory import peak_rss_bytes
from quantbench.measure.harness import RotatingCopies, TimingConfig, paired_rounds, set_threads
from quantbench.quant.loader import LoadedModel, load_model
from quantbench.training.checkpoint import CheckpointError

TIMING_FORMAT = "quantbench-timing"
TIMING_VERSION = 1


def _describe_side(loaded: LoadedModel, x: torch.Tensor, info: dict[str, Any]) -> dict[str, Any]:
    kernels = kernels_that_ran(loaded.module, x)
    int8 = runs_int8(kernels)
    return {
        "method": str(loaded.meta["method"]),
        "kind": str(loaded.meta["kind"]),
        "kernels": kernels,
        "execution": describe_execution(kernels, info),
        "engine": torch.backends.quantized.engine if int8 else None,
    }


def _load_pair(
    reference_path: str, candidate_path: str, method: str, ds: Dataset
) -> tuple[LoadedModel, LoadedModel]:
    """Both checkpoints, refused (one line) unless they fit the dataset and each other."""
    ref, cand = load_model(reference_path, expect=ds), load_model(candidate_path, expect=ds)
    if ref.meta["kind"] != "fp32":
        raise CheckpointError(
            f"{reference_path}: the reference must be an fp32 checkpoint, this one is "
            f"{ref.meta['kind']!r}; pass the FP32 model of the same replicate"
        )
    if cand.meta["method"] != method:
        raise CheckpointError(
            f"{candidate_path}: checkpoint of method {cand.meta['method']!r}, not {method!r}; "
            "delete it and rerun the workflow"
        )
    if ref.meta["model"] != cand.meta["model"]:
        raise CheckpointError(
            f"{candidate_path}: model shape {cand.meta['model']} differs from the reference's "
            f"{ref.meta['model']}; rerun the workflow so both come from the same FP32 model"
        )
    return ref, cand


def run_timing(
    reference_path: str,
    candidate_path: str,
    dataset_path: str,
    info_path: str | None,
    model: str,
    method: str,
    replicate: str,
    timing: dict[str, Any],
    timing_out: str,
) -> None:
    """The time step: FP32 and one method's model timed in paired rounds, the timing JSON out.

    Loading the candidate sets the int8 engine its checkpoint names. The record also holds the
    process's peak RSS (both models, their ``LAYOUTS`` copies per block kind, the data and
    torch) and
    the CPU facts (:func:`quantbench.machine.cpu.cpu_facts`).
    """
    cfg = TimingConfig(**timing)
    set_threads(cfg.threads)
    ds = load_dataset(dataset_path)
    ref, cand = _load_pair(reference_path, candidate_path, method, ds)
    x = torch.from_numpy(ds.x_test)
    info = read_json(info_path) if info_path else {}
    sides = {"reference": _describe_side(ref, x, {}), "candidate": _describe_side(cand, x, info)}
    make = {
        "reference": RotatingCopies(ref.module, seed=0),
        "candidate": RotatingCopies(cand.module, seed=1),
    }
    rounds = paired_rounds(make, x, cfg)
    facts = cpu_facts()
    write_json(
        timing_out,
        {
            "format": TIMING_FORMAT,
            "version": TIMING_VERSION,
            "model": model,
            "method": method,
            "kind": sides["candidate"]["kind"],
            "replicate": replicate,
            "settings": cfg.settings(),
            **sides,
            "rounds": rounds,
            "threads": torch.get_num_threads(),
            "device": "cpu",
            "torch_version": str(torch.__version__),
            "cpu": facts["model"],
            "cpu_facts": facts,
            "memory": {
                "peak_rss_bytes": peak_rss_bytes(),
                "copies_per_side": make["candidate"].count,
            },
        },
    )
