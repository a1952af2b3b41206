"""The engine record (``engine/{model}.json``): its format, the probe's settings, the engines'
tie-break order, and the record of a run that names its engine.

A named engine (``quantization.engine: x86`` ...) wins without a probe: the probe_engine job then
runs :func:`run_named_engine`, which only checks that this torch offers the engine and records
``probed: false``. It builds and times no model, so it imports none of the FX code the probe
(:mod:`quantbench.measure.probe`) runs, and an edit to that code reruns none of its jobs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from quantbench.core.files import write_json
from quantbench.machine.cpu import cpu_facts
from quantbench.quant.ao import backend

log = logging.getLogger("quantbench.probe")

OBJECTIVES = ("throughput", "latency")
RECORD_FORMAT = "quantbench-engine"
RECORD_VERSION = 1


@dataclass(frozen=True)
class ProbeConfig:
    """How the engines are timed (see the module docstring)."""

    objective: str = "throughput"
    batch_size: int = 512
    rounds: int = 10
    calls: int = 20
    min_calls: int = 3
    block_seconds: float = 0.01
    warmup: int = 10
    threads: int = 1
    tie_margin: float = 0.03

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"
            )
        for name in ("batch_size", "rounds", "calls", "min_calls", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not self.block_seconds > 0:
            raise ValueError(f"block_seconds must be > 0, got {self.block_seconds!r}")
        if not 0 <= self.tie_margin < 1:
            raise ValueError(f"tie_margin must be in [0, 1), got {self.tie_margin!r}")

    @property
    def rows(self) -> int:
        """Rows per timed call at this objective."""
        return self.batch_size if self.objective == "throughput" else 1


def default_order(engines: Sequence[str]) -> list[str]:
    """``engines`` in tie-break order: this machine's ``auto`` engine first, then ``ENGINES``."""
    try:
        first = [backend.select_engine("auto")]
    except ValueError:
        first = []
    order = first + [e for e in backend.ENGINES if e not in first]
    return [e for e in order if e in engines] + [e for e in engines if e not in order]


def explicit_record(requested: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The record of a run that names its engine: no probe ran (ValueError if not offered)."""
    engine = backend.select_engine(requested)
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "engine": engine,
        "reason": f"{engine} set explicitly in quantization.engine; no probe ran",
        "requested": requested,
        "probed": False,
        "fastest": None,
        "tied": [],
        "default": default_order(backend.supported_engines())[0],
        "settings": settings,
        "engines": {},
        "round_orders": [],
        "probe_seconds": 0.0,
        "torch_version": str(torch.__version__),
        "cpu": cpu_facts(),
    }


def run_named_engine(
    model: str, requested: str, objective: str, batch_size: int, threads: int, engine_out: str
) -> None:
    """The probe_engine step of a run that names its engine: the record, with no probe."""
    cfg = ProbeConfig(objective=objective, batch_size=batch_size, threads=threads)
    record = explicit_record(requested, asdict(cfg))
    log.info("int8 engine: %s (%s)", record["engine"], record["reason"])
    write_json(engine_out, {"model": model, **record})
