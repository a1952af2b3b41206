"""The time step: FP32 and one method's model of the first replicate, timed against each other
in paired rounds (:mod:`quantbench.measure.harness`), the timing record out."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from quantbench.core.files import read_json, write_json
from quantbench.data.dataset import Dataset, load_dataset
from quantbench.machine.cpu import cpu_facts
from quantbench.machine.kernels import describe_execution, kernels_that_ran, runs_int8
from quantbench.machine.memory import peak_rss_bytes
from quantbench.measure.harness import (
    BLOCKS,
    LAYOUTS,
    RotatingCopies,
    TimingConfig,
    paired_rounds,
    rows_at,
    set_threads,
    solo_figures,
)
from quantbench.quant.loader import LoadedModel, load_model
from quantbench.training.checkpoint import CheckpointError

TIMING_FORMAT = "quantbench-timing"
TIMING_VERSION = 1
# The ONNX Runtime sides of a timing job: FP32's artifact and the method's, same replicate.
E2E_WARMUP = 20  # untimed calls and passes before each whole artifact's own figures
ORT_SIDES = {"ort_reference": "reference", "ort_candidate": "candidate"}


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


def _artifact_side(onnx_path: str) -> dict[str, Any]:
    """What ONNX Runtime makes of one artifact: its optimized graph's operators."""
    from quantbench.measure.ort import optimized_facts, quantized_ops

    ops, attrs = optimized_facts(onnx_path)
    return {
        "artifact": str(onnx_path),
        "ops": ops,
        "quantized_ops": quantized_ops(ops),
        "kernel_attributes": attrs,
    }


def _ort_sides(
    artifacts: dict[str, str], x: torch.Tensor
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(session factories, inputs, the record's ``onnxruntime`` block) of the two artifacts'
    model graphs: like the torch sides, they take the preprocessed test rows and give logits."""
    from quantbench.measure.ort import (
        MODEL_INPUT,
        RotatingSessions,
        RowFeeds,
        model_part,
        runtime_facts,
    )

    make = {s: RotatingSessions(model_part(artifacts[s]), LAYOUTS, BLOCKS) for s in ORT_SIDES}
    feeds = RowFeeds({MODEL_INPUT: x.numpy()})
    block = {
        **runtime_facts(),
        "input": "the artifact's model graph (features in, logits out) on the rows the torch "
        "sides take; preprocessing and head timed apart (end_to_end)",
        **{ORT_SIDES[s]: _artifact_side(artifacts[s]) for s in ORT_SIDES},
        "sessions_per_side": make["ort_candidate"].count,
    }
    return make, dict.fromkeys(ORT_SIDES, feeds), block


def whole_artifacts(
    paths: dict[str, str], raw_test_path: str, cfg: TimingConfig, rows: int | None = None
) -> dict[str, dict[str, Any]]:
    """Each whole artifact of ``paths`` (name -> model.onnx) on its own: raw rows in, every
    output out; absolute medians (:func:`~quantbench.measure.harness.solo_figures`) of a
    quarter of ``cfg``'s calls and passes after at most :data:`E2E_WARMUP` of each. ``rows``:
    the test split's row count, which the raw rows must have (one line otherwise)."""
    from quantbench.data.rawrows import load_raw_rows
    from quantbench.measure.ort import RowFeeds, SessionRunner, open_session

    raw = load_raw_rows(raw_test_path)
    if rows is not None and len(raw) != rows:
        raise ValueError(
            f"{raw_test_path}: {len(raw)} raw test rows, the dataset has {rows}; rerun "
            "the preprocess step"
        )
    feeds = RowFeeds(raw.feeds())
    calls = max(cfg.latency_samples // 4, 1)
    passes = max(cfg.throughput_repeats // 4, 1)
    cfg = replace(cfg, warmup=min(cfg.warmup, E2E_WARMUP))
    call_rows = rows_at(feeds, np.arange(calls) % len(raw))
    batch = rows_at(feeds, np.arange(cfg.batch_size) % len(raw))
    out = {}
    for name, path in paths.items():
        runner = SessionRunner(open_session(path), output=None)
        out[name] = solo_figures(runner, call_rows, batch, calls, passes, cfg)
    return out


def _add_runtimes(
    make: dict[str, Any], artifacts: dict[str, str] | None, raw_test_path: str | None, x
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Add the ONNX Runtime sides to ``make`` when there are artifacts; (their inputs, the
    record's ``runtimes`` and ``onnxruntime`` fields)."""
    if not artifacts:
        return {}, {"runtimes": ["torch"]}
    if raw_test_path is None:
        raise ValueError("timing ONNX artifacts needs the raw test rows (raw_test_path)")
    ort_make, inputs, block = _ort_sides(artifacts, x)
    make |= ort_make
    return inputs, {"runtimes": ["torch", "onnxruntime"], "onnxruntime": block}


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
    artifacts: dict[str, str] | None = None,
    raw_test_path: str | None = None,
) -> None:
    """The time step: FP32 and one method's model timed in paired rounds, the timing JSON out.

    With ``artifacts`` (``{"ort_reference": fp32 model.onnx, "ort_candidate": the method's}``)
    and the replicate's raw test rows, both artifacts are timed too, as ONNX Runtime sessions
    in the same rounds (sides ``ort_reference``, ``ort_candidate``). Like for like: those sides
    run each artifact's model graph on the rows the torch sides take (the preprocessed test
    rows, logits out), so a speed-up compares the same work. Each whole artifact (raw rows
    through its in-graph preprocessing, logits, probabilities and label out) is then timed on
    its own, for the record's absolute ``onnxruntime.end_to_end`` figures.

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
    make: dict[str, Any] = {
        "reference": RotatingCopies(ref.module, seed=0),
        "candidate": RotatingCopies(cand.module, seed=1),
    }
    inputs, runtimes = _add_runtimes(make, artifacts, raw_test_path, x)
    rounds = paired_rounds(make, x, cfg, inputs=inputs)
    if artifacts and raw_test_path is not None:
        paths = {name: artifacts[side] for side, name in ORT_SIDES.items()}
        runtimes["onnxruntime"]["end_to_end"] = {
            "input": "raw feature rows; every output (logits, probabilities, label)",
            **whole_artifacts(paths, raw_test_path, cfg, x.shape[0]),
        }
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
            **runtimes,
        },
    )
