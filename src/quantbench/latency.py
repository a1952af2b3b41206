"""One timing harness for every model: same inputs, same threads, warm-up, repeats.

Batch-1 latency cycles over the first test rows one call at a time; throughput runs full batches
of ``batch_size`` rows. Every figure is a wall-clock measurement of the module's forward pass
under ``torch.inference_mode``; nothing is estimated.
"""

from __future__ import annotations

import contextlib
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Operators that do a layer's matrix work; the profiler reports which of them really ran.
_LINEAR_OPS = ("aten::addmm", "aten::mm", "aten::bmm")
# Dispatchers that only call one of the above; named only when nothing below them shows up.
_WRAPPER_OPS = ("aten::linear", "aten::matmul")


@dataclass(frozen=True)
class TimingConfig:
    threads: int = 1
    batch_size: int = 512
    warmup: int = 100
    latency_samples: int = 2000
    throughput_repeats: int = 200

    def __post_init__(self) -> None:
        for name in ("threads", "batch_size", "latency_samples", "throughput_repeats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"evaluate.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"evaluate.warmup must be >= 0, got {self.warmup}")


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    # Inter-op threads can be set once per process; intra-op threads are what matter here.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n)


def batch_of(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of ``x``, tiled when it has fewer (the same data for every model)."""
    reps = -(-n // x.shape[0])
    return x.repeat(reps, 1)[:n].contiguous() if reps > 1 else x[:n].contiguous()


@torch.inference_mode()
def measure_latency(module: nn.Module, x: torch.Tensor, cfg: TimingConfig) -> dict[str, Any]:
    """p50/p95/mean milliseconds of single-row calls over ``cfg.latency_samples`` rows."""
    rows = batch_of(x, cfg.latency_samples)
    for i in range(cfg.warmup):
        module(rows[i % rows.shape[0]].unsqueeze(0))
    times = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        row = rows[i].unsqueeze(0)
        t0 = time.perf_counter_ns()
        module(row)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    return {
        "batch": 1,
        "p50": float(np.percentile(times, 50)),
        "p95": float(np.percentile(times, 95)),
        "mean": float(times.mean()),
        "samples": int(rows.shape[0]),
    }


@torch.inference_mode()
def measure_throughput(module: nn.Module, x: torch.Tensor, cfg: TimingConfig) -> dict[str, Any]:
    """Rows per second over ``throughput_repeats`` full batches (median pass time)."""
    batch = batch_of(x, cfg.batch_size)
    for _ in range(max(1, cfg.warmup)):
        module(batch)
    times = np.empty(cfg.throughput_repeats)
    for i in range(cfg.throughput_repeats):
        t0 = time.perf_counter_ns()
        module(batch)
        times[i] = (time.perf_counter_ns() - t0) / 1e9
    return {
        "batch": cfg.batch_size,
        "samples_per_s": float(cfg.batch_size / np.median(times)),
        "repeats": cfg.throughput_repeats,
    }


def _op_names(module: nn.Module, x: torch.Tensor) -> list[str]:
    """Operator names of one forward pass, in the order they ran.

    The autograd profiler without Kineto costs milliseconds; starting Kineto (torch.profiler)
    costs about a second per process, so it is only the fallback where the former is gone.
    """
    try:
        with torch.autograd.profiler.profile(use_kineto=False) as prof:
            module(x)
        return [e.name for e in prof.function_events]
    except (TypeError, RuntimeError, AttributeError):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            module(x)
        return [e.name for e in prof.events()]


@torch.inference_mode()
def kernels_that_ran(module: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the quantized and linear-algebra operators one forward pass really executed."""
    ops = _op_names(module, x[:8])
    names = [n for n in dict.fromkeys(ops) if n.startswith("quantized::") or n in _LINEAR_OPS]
    return names or [n for n in dict.fromkeys(ops) if n in _WRAPPER_OPS]


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
