"""Choose the int8 engine by measurement: every engine this torch offers, timed on the run's model.

Which int8 engine (``x86``, ``fbgemm``, ``onednn``, ``qnnpack``) is fastest depends on the CPU
(VNNI, AMX, NEON ...) and on the model, so :func:`probe_engines` measures it:

1. each engine this torch build offers gets the run's statically quantized model, built for it
   by the caller's ``build(engine)`` with that engine set (its qconfig and its weight packing);
   an engine whose build or first run fails, or whose output is not finite, is recorded with
   the stage and the first line of the error and left out;
2. the engines that ran are timed in ``rounds`` interleaved rounds in this one process (the
   order rotates each round); in each round every engine runs a block of calls at the
   objective's batch and the block's median call time is kept. A block has ``calls`` calls, or
   fewer (at least ``min_calls``) where that would take longer than ``block_seconds`` at the
   engine's median warm-up time, so a slow engine (qnnpack on x86) cannot make the probe slow;
   ``warmup`` untimed calls per engine come first;
3. objective ``throughput`` (the default): ``batch_size`` rows per call; ``latency``: one row;
4. the pick: the engine with the lowest median round time. Engines whose per-round time ratio
   to it has a median within ``tie_margin`` are tied with it, and a tie goes to the first of
   them in the default order (``backend.select_engine("auto")`` first, then ``backend.ENGINES``), so
   equal engines (``x86`` and ``fbgemm`` run the same Linear kernels on many CPUs) do not
   alternate from run to run. An explicit engine wins over the measurement, which is still
   recorded.

The record (:func:`probe_engines`'s return value, plain JSON types) is ``engine.json``.

Engines and checkpoints: a quantized Linear's weight is packed for the engine current when the
module is built or its ``state_dict`` is loaded (the state on disk holds the unpacked int8
weight, so it loads under any engine); the activation ranges (7 bits on x86/fbgemm) are fixed
at calibration. A checkpoint therefore runs as measured only with the engine it was quantized
for set before it is rebuilt.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from quantbench.machine.cpu import cpu_facts
from quantbench.measure.engine_record import (
    RECORD_FORMAT,
    RECORD_VERSION,
    ProbeConfig,
    default_order,
)
from quantbench.quant.ao import backend, fx, qconfigs

Builder = Callable[[str], nn.Module]  # engine -> the run's int8 model built for that engine
Timer = Callable[[str, nn.Module, torch.Tensor, int], list[float]]  # -> seconds of each call


@torch.inference_mode()
def call_seconds(engine: str, module: nn.Module, x: torch.Tensor, calls: int) -> list[float]:
    """Wall seconds of each of ``calls`` forward passes of ``module`` on ``x``."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        module(x)
        times.append((time.perf_counter_ns() - t0) / 1e9)
    return times


def _use(engine: str) -> None:
    """Make ``engine`` the process's int8 engine (what packs weights from now on)."""
    torch.backends.quantized.engine = engine


def _current() -> str:
    return str(torch.backends.quantized.engine)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


@torch.inference_mode()
def _build_all(
    build: Builder, engines: list[str], x: torch.Tensor
) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]], dict[str, float]]:
    """Build and run each engine's model once: models that ran, failures, build seconds."""
    models: dict[str, nn.Module] = {}
    failed: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for engine in engines:
        stage = "build"
        t0 = time.perf_counter()
        try:
            _use(engine)
            module = build(engine)
            stage = "run"
            out = module(x)
            if not bool(torch.isfinite(out).all()):
                raise RuntimeError("output is not finite")
        except Exception as exc:  # any failure leaves this engine out, with its reason
            failed[engine] = {"status": "failed", "stage": stage, "error": _first_line(exc)}
            continue
        models[engine] = module
        seconds[engine] = time.perf_counter() - t0
    return models, failed, seconds


def _block_calls(times: list[float], cfg: ProbeConfig) -> int:
    """Calls per timed block for an engine whose warm-up calls took ``times`` seconds."""
    if not times:
        return cfg.calls
    fit = int(cfg.block_seconds / max(statistics.median(times), 1e-9))
    return max(min(cfg.calls, fit), min(cfg.min_calls, cfg.calls))


def _time_rounds(
    models: dict[str, nn.Module], x: torch.Tensor, cfg: ProbeConfig, timer: Timer
) -> tuple[dict[str, list[float]], list[list[str]], dict[str, int]]:
    """Median seconds per call of each engine in each round, each round's order, block sizes."""
    names = list(models)
    calls = {}
    for name in names:
        _use(name)
        calls[name] = _block_calls(timer(name, models[name], x, cfg.warmup), cfg)
    per_round: dict[str, list[float]] = {n: [] for n in names}
    orders = []
    for r in range(cfg.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            _use(name)
            per_round[name].append(statistics.median(timer(name, models[name], x, calls[name])))
        orders.append(order)
    return per_round, orders, calls


def _figures(seconds: list[float], best: list[float], cfg: ProbeConfig) -> dict[str, Any]:
    """One engine's entry: its round medians and medians, and its paired ratio to the best."""
    median_s = statistics.median(seconds)
    ratio = statistics.median(s / b for s, b in zip(seconds, best, strict=True))
    entry: dict[str, Any] = {
        "status": "ok",
        "round_ms": [1e3 * s for s in seconds],
        "median_ms": 1e3 * median_s,
        "time_vs_fastest": ratio,
    }
    if cfg.objective == "throughput":
        entry["samples_per_s"] = cfg.rows / median_s
    return entry


def _pick(
    entries: dict[str, dict[str, Any]], fastest: str, requested: str, cfg: ProbeConfig
) -> tuple[str, str, list[str]]:
    """(engine, why, engines tied with the fastest) under the selection rule."""
    ok = [e for e, v in entries.items() if v["status"] == "ok"]
    tied = [e for e in default_order(ok) if entries[e]["time_vs_fastest"] <= 1 + cfg.tie_margin]
    if requested != "auto":
        return requested, f"{requested} set explicitly (fastest measured: {fastest})", tied
    if len(tied) > 1:
        why = (
            f"{', '.join(tied)} within {100 * cfg.tie_margin:.0f} % of each other at "
            f"{cfg.objective}; {tied[0]} is first in the default order"
        )
        return tied[0], why, tied
    others = sorted((entries[e]["time_vs_fastest"], e) for e in ok if e != fastest)
    if not others:
        return fastest, f"the only engine that ran ({cfg.objective} measured)", tied
    ratio, runner_up = others[0]
    return fastest, f"fastest at {cfg.objective}: {ratio:.2f}x faster than {runner_up}", tied


def probe_engines(
    build: Builder,
    x: torch.Tensor,
    cfg: ProbeConfig | None = None,
    requested: str = "auto",
    engines: Sequence[str] | None = None,
    timer: Timer = call_seconds,
) -> dict[str, Any]:
    """Time every engine on the model ``build`` makes and choose one (module docstring).

    ``x``: input rows (tiled or cut to the objective's batch). ``requested``: ``auto`` or an
    engine name, which wins (ValueError before any work if this torch does not offer it).
    ``engines``: the candidates, default every engine this torch build offers. The
    process-wide engine is restored afterwards. RuntimeError (one line) if none ran, or if the
    requested engine did not.
    """
    cfg = cfg or ProbeConfig()
    backend.check_engine_name(requested)
    if requested != "auto":
        backend.select_engine(requested)
    t0 = time.perf_counter()
    candidates = list(engines) if engines is not None else backend.supported_engines()
    reps = math.ceil(cfg.rows / x.shape[0])
    batch = x.repeat(reps, *([1] * (x.dim() - 1)))[: cfg.rows].contiguous()
    previous, previous_threads = _current(), torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        models, failed, build_seconds = _build_all(build, candidates, batch)
        _require_ran(models, failed, requested)
        per_round, orders, calls = _time_rounds(models, batch, cfg, timer)
    finally:
        _use(previous)
        torch.set_num_threads(previous_threads)
    fastest = min(per_round, key=lambda e: statistics.median(per_round[e]))
    entries = {e: _figures(s, per_round[fastest], cfg) for e, s in per_round.items()}
    for e in entries:
        entries[e] |= {"calls_per_round": calls[e], "build_seconds": build_seconds[e]}
    entries |= failed
    engine, why, tied = _pick(entries, fastest, requested, cfg)
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "engine": engine,
        "reason": why,
        "requested": requested,
        "fastest": fastest,
        "tied": tied,
        "default": default_order(candidates)[0] if candidates else None,
        "settings": asdict(cfg),
        "engines": {e: entries[e] for e in candidates},
        "round_orders": orders,
        "probe_seconds": time.perf_counter() - t0,
        "torch_version": str(torch.__version__),
        "cpu": cpu_facts(),
    }


def _require_ran(
    models: dict[str, nn.Module], failed: dict[str, dict[str, Any]], requested: str
) -> None:
    """One-line RuntimeError when no engine ran, or when the requested one did not."""
    reasons = "; ".join(f"{e} ({v['stage']}: {v['error']})" for e, v in failed.items())
    if not models:
        raise RuntimeError(
            f"no int8 engine ran this model here: {reasons or 'this torch offers none'}; "
            "remove the int8 methods from config.yaml or use a torch build with an int8 engine"
        )
    if requested != "auto" and requested not in models:
        raise RuntimeError(
            f"quantization.engine {requested} failed here ({failed[requested]['stage']}: "
            f"{failed[requested]['error']}); set it to auto or one of {', '.join(models)}"
        )


def static_builder(model: nn.Module, rows: torch.Tensor, per_channel: bool = True) -> Builder:
    """``build(engine)``: ``model`` statically quantized for ``engine`` (fused Linear+ReLU).

    Calibrated with min/max observers on ``rows``: the kernels' speed does not depend on the
    ranges, and min/max costs least. ``model`` is not modified.
    """

    def build(engine: str) -> nn.Module:
        qconfig = qconfigs.static_qconfig(engine, "minmax", per_channel)
        prepared = fx.prepare_static(model, qconfig, int(rows.shape[1]))
        fx.observe(prepared, rows)
        return fx.convert(prepared)

    return build
