"""Speed figures of a timing job: absolute latency and throughput of a side, paired speed-ups
between two sides of the same rounds, and the ONNX Runtime figures of a method (``runtimes``).

Every ratio here is paired within one timing job: both sides ran in the same process, in the
same interleaved rounds, on the same rows. In a job that timed ONNX Runtime too, the sides are
``reference``/``candidate`` (torch FP32 and the method in torch) and ``ort_reference``/
``ort_candidate`` (their artifacts in ONNX Runtime), so a method in ONNX Runtime has a speed-up
against FP32 in ONNX Runtime (same runtime) and against torch FP32 (the cross-runtime question).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantbench.report.facts import REFERENCE, ModelFacts, Timed
from quantbench.report.order import round_ratios, speedup_interval
from quantbench.report.stats import ReportConfig
from quantbench.report.wording import REFERENCE as REFERENCE_WORD
from quantbench.report.wording import speed_verdict

_SPEEDUPS = (("batch_1", "latency_ms"), ("batch_n", "pass_ms"))
RUNTIME = "onnxruntime"
ORT_SIDES = ("ort_reference", "ort_candidate")


def side_figures(t: Timed, side: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Absolute latency (all batch-1 calls) and throughput (batch / median pass) of one side."""
    rounds, batch = t.record["rounds"], t.record["settings"]["batch_size"]
    calls = np.concatenate([r[side]["latency_ms"] for r in rounds])
    passes = np.concatenate([r[side]["pass_ms"] for r in rounds])
    latency = {
        "batch": 1,
        "p50": float(np.percentile(calls, 50)),
        "p95": float(np.percentile(calls, 95)),
        "mean": float(calls.mean()),
        "samples": int(calls.size),
    }
    throughput = {
        "batch": int(batch),
        "samples_per_s": float(batch / (np.median(passes) / 1000)),
        "repeats": int(passes.size),
    }
    return latency, throughput


def median_of(figures: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Key-wise median of several jobs' figures (integers stay integers)."""
    out: dict[str, Any] = {}
    for key, value in figures[0].items():
        med = float(np.median([f[key] for f in figures]))
        out[key] = round(med) if isinstance(value, int) else med
    return out


def speedups(
    t: Timed, cfg: ReportConfig, reference: str = "reference", candidate: str = "candidate"
) -> dict[str, Any]:
    """Batch-1 and batch-N speed-up of side ``candidate`` over side ``reference`` of the same
    rounds (by default the method over FP32 in torch) with intervals and verdicts."""
    rounds = t.record["rounds"]
    out = {}
    for key, name in _SPEEDUPS:
        ratios = round_ratios(
            [r[reference][name] for r in rounds], [r[candidate][name] for r in rounds]
        )
        iv = speedup_interval(ratios, cfg)
        batch = 1 if key == "batch_1" else int(t.record["settings"]["batch_size"])
        out[key] = {
            **iv.to_json(),
            "batch": batch,
            "round_ratios": ratios.tolist(),
            "noise": cfg.speed_noise,
            "verdict": speed_verdict(iv, cfg.speed_noise, rounds=ratios.tolist()),
        }
    return out


def reference_speedups(batch: int) -> dict[str, Any]:
    one = {"estimate": 1.0, "ci": [1.0, 1.0], "method": "reference", "round_ratios": []}
    return {
        "batch_1": {**one, "batch": 1, "verdict": REFERENCE_WORD},
        "batch_n": {**one, "batch": batch, "verdict": REFERENCE_WORD},
    }


def _ort_jobs(facts: ModelFacts) -> list[Timed]:
    return [
        facts.timing[m] for m in sorted(facts.timing) if RUNTIME in facts.timing[m].record.get(
            "runtimes", []
        )
    ]  # fmt: skip


def runtimes_block(facts: ModelFacts, method: str, cfg: ReportConfig) -> dict[str, Any]:
    """``{"onnxruntime": ...}``: the method's artifact in ONNX Runtime, or None when not timed.

    A method's figures come from its own timing job: absolute latency and throughput of
    ``ort_candidate``, its speed-up over ``ort_reference`` (FP32 in ONNX Runtime) and over
    ``reference`` (torch FP32). FP32's absolute figures are the median over every job (as for
    torch); its speed-up over torch FP32 is that of the first job by method name.
    """
    jobs = _ort_jobs(facts)
    if method != REFERENCE:
        jobs = [t for t in jobs if t.record["method"] == method]
    if not jobs:
        return {RUNTIME: None}
    side = ORT_SIDES[0] if method == REFERENCE else ORT_SIDES[1]
    figures = [side_figures(t, side) for t in jobs]
    first = jobs[0].record
    ort = first["onnxruntime"]
    key = "reference" if method == REFERENCE else "candidate"
    art = ort[key]
    batch = int(first["settings"]["batch_size"])
    same = reference_speedups(batch) if method == REFERENCE else speedups(jobs[0], cfg, *ORT_SIDES)
    return {
        RUNTIME: {
            "latency_ms": median_of([f[0] for f in figures]),
            "throughput": median_of([f[1] for f in figures]),
            "speedup": same,
            "speedup_vs_torch_fp32": speedups(jobs[0], cfg, "reference", side),
            "timing_job": first["method"],
            "version": ort["version"],
            "session_options": ort["session_options"],
            "artifact": art["artifact"],
            "quantized_ops": art["quantized_ops"],
            "kernel_attributes": art.get("kernel_attributes", {}),
            "ops": art["ops"],
            "end_to_end": (ort.get("end_to_end") or {}).get(key),
        }
    }
