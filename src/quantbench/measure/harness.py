"""One timing harness for every model: paired, interleaved rounds on the same inputs (the time
step, :mod:`quantbench.measure.timing`, runs it on two checkpoints).

A method's model (``candidate``) is timed against FP32 (``reference``) in one process, so that
machine drift (clock speed, a busy neighbour core, the host of a virtual machine) hits both
alike. After an untimed warm-up of both, ``rounds`` rounds follow; the order alternates (round 0:
reference first, round 1: candidate first, ...). In each round each side runs a block of batch-1
calls (its share of ``latency_samples``, on the same test rows for both sides), then a block of
full-batch passes (its share of ``throughput_repeats``, on the same ``batch_size`` rows); the
two batch-1 blocks run back to back, then the two blocks of passes, so that each pair of blocks
being compared lies a few milliseconds apart. Every call and pass is a wall-clock measurement
(``perf_counter_ns``) of the module's forward under ``torch.inference_mode``; nothing is
estimated and nothing is summarised here (the report derives the figures and intervals).

Speed states of a shared CPU change within milliseconds, so many short rounds pair better than
a few long ones. Where a module's tensors lie in memory also shifts its speed a little for the
life of the process; each side therefore rotates through several deep copies placed at
different addresses, one per round, so that layout enters the round-to-round spread (and the
interval) instead of biasing one side.

Each batch size has copies of its own: a copy that runs batch-1 calls never runs a full batch,
and the other way round, as in a deployment that serves one batch size. Some int8 kernels set
themselves up for the first input shape they see and run every other shape on a slower path
(the ``onednn`` engine's quantized Linear keeps one primitive, built at its first call); timing
both sizes on one module would time one of them on that slower path.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from quantbench.core.config import rounds_problem

# Untimed batch-1 calls (passes) of each side before each of its blocks in a round.
ROUND_WARMUP = 1
# Deep copies of each model the rounds rotate through (different memory layouts), per block.
LAYOUTS = 8
# The two kinds of timed block; each has its own copies of each model (module docstring).
BLOCKS = ("calls", "passes")


SIDES = ("reference", "candidate")

# A module factory: called with a block kind (one of BLOCKS) once per round and block, it returns
# the module that block times; it must never hand a module of one kind to the other.
Factory = Callable[[str], nn.Module]


@dataclass(frozen=True)
class TimingConfig:
    """``latency_samples`` and ``throughput_repeats``: totals per side, spread over ``rounds``."""

    threads: int = 1
    batch_size: int = 512
    warmup: int = 100
    rounds: int = 100
    latency_samples: int = 2000
    throughput_repeats: int = 400

    def __post_init__(self) -> None:
        for name in ("threads", "batch_size", "latency_samples", "throughput_repeats"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"evaluate.{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"evaluate.warmup must be >= 0, got {self.warmup}")
        if self.rounds < 2:
            raise ValueError(
                f"evaluate.rounds must be >= 2 (an interval needs two rounds), got {self.rounds}"
            )
        problem = rounds_problem(self.settings())
        if problem:
            raise ValueError(problem)

    def settings(self) -> dict[str, int]:
        return {k: int(v) for k, v in asdict(self).items()}


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    # Inter-op threads can be set once per process; intra-op threads are what matter here.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n)


def batch_of(x: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows of ``x``, tiled when it has fewer (the same data for every model)."""
    reps = -(-n // x.shape[0])
    return x.repeat(reps, 1)[:n].contiguous() if reps > 1 else x[:n].contiguous()


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` block sizes that differ by at most one, larger blocks first."""
    q, r = divmod(total, parts)
    return [q + (i < r) for i in range(parts)]


def round_order(r: int, sides: tuple[str, ...] = SIDES) -> tuple[str, ...]:
    """The order of round ``r``, rows of a Williams design: with two sides, round 0 times the
    reference first, round 1 the candidate first, and so on; with n (even), every n rounds each
    side takes each place once and follows each other side once, so that neither a place in the
    round nor what ran just before (caches, branch predictors, clock) favours one side. An odd
    n needs 2n rounds: the rows alternate with their reverses."""
    n = len(sides)
    base = [0]
    for i in range(1, n):  # 0, 1, n-1, 2, n-2, ...
        base.append((i + 1) // 2 if i % 2 else n - i // 2)
    shift = r % n if n % 2 == 0 else (r // 2) % n
    row = [sides[(b + shift) % n] for b in base]
    return tuple(reversed(row)) if n % 2 and r % 2 else tuple(row)


def rows_at(source: Any, index: np.ndarray) -> Any:
    """Rows ``index`` of ``source``: a tensor (rows, features) or anything indexed like one by
    an index array (the artifact's raw inputs, :class:`quantbench.measure.ort.RowFeeds`)."""
    if isinstance(source, torch.Tensor):
        return source[torch.from_numpy(index)].contiguous()
    return source[index]


@contextlib.contextmanager
def _timing_conditions(threads: int) -> Iterator[None]:
    """``threads`` intra-op threads and no garbage-collection pauses (as ``timeit`` does)."""
    was_enabled, previous = gc.isenabled(), torch.get_num_threads()
    torch.set_num_threads(threads)
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        torch.set_num_threads(previous)


@torch.inference_mode()
def call_ms(module: nn.Module, rows: torch.Tensor) -> list[float]:
    """Milliseconds of one batch-1 call per row of ``rows`` (n, features), in row order."""
    times = []
    for i in range(rows.shape[0]):
        row = rows[i : i + 1]  # (1, features)
        t0 = time.perf_counter_ns()
        module(row)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


@torch.inference_mode()
def pass_ms(module: nn.Module, batch: torch.Tensor, n: int) -> list[float]:
    """Milliseconds of ``n`` forward passes over the whole ``batch`` (batch_size, features)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        module(batch)
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


@torch.inference_mode()
def warm_calls(module: nn.Module, rows: torch.Tensor, n: int) -> None:
    """``n`` untimed batch-1 calls, cycling over ``rows`` (m, features)."""
    for i in range(n):
        j = i % rows.shape[0]
        module(rows[j : j + 1])


@torch.inference_mode()
def warm_passes(module: nn.Module, batch: torch.Tensor, n: int) -> None:
    """``n`` untimed passes over ``batch``."""
    for _ in range(n):
        module(batch)


def paired_rounds(
    make: Mapping[str, Factory],
    x: torch.Tensor,
    cfg: TimingConfig,
    round_warmup: int = ROUND_WARMUP,
    inputs: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Time the modules of ``make["reference"]`` against those of ``make["candidate"]`` (and of
    any further sides ``make`` names, in its order) in interleaved rounds, with ``cfg.threads``
    torch threads.

    Every side runs the same rows: ``x``'s, or, for a side named in ``inputs``, the same rows
    of that side's own source (e.g. the raw feature rows an ONNX artifact takes, row for row
    those of ``x``). Its callables are called with those rows as the source slices them.

    The warm-up (``cfg.warmup`` untimed calls and passes per side) and every block of every
    round ask the side's factory for the module of that block's kind (``"calls"`` for
    batch-1 calls, ``"passes"`` for full batches). Returns the ``rounds`` list of the timing
    JSON: per round its ``order`` and, per side, ``latency_ms`` (one entry per batch-1 call)
    and ``pass_ms`` (one per pass).
    """
    sides = tuple(make)
    n = x.shape[0]
    sources = {side: (inputs or {}).get(side, x) for side in sides}
    row_index = np.arange(cfg.latency_samples) % n  # every side the same rows (batch_of's)
    rows = {s: rows_at(src, row_index) for s, src in sources.items()}
    batch = {s: rows_at(src, np.arange(cfg.batch_size) % n) for s, src in sources.items()}
    calls = split_evenly(cfg.latency_samples, cfg.rounds)
    passes = split_evenly(cfg.throughput_repeats, cfg.rounds)
    rounds = []
    with _timing_conditions(cfg.threads):
        for side in sides:
            for i in range(cfg.warmup):  # a new module each time: every copy gets its share
                warm_calls(make[side]("calls"), rows[side][i % cfg.latency_samples :], 1)
                warm_passes(make[side]("passes"), batch[side], 1)
        start = 0
        for r in range(cfg.rounds):
            # this round's rows, the same for every side
            block = {s: rows[s][start : start + calls[r]] for s in sides}
            start += calls[r]
            order = round_order(r, sides)
            rounds.append(_time_round(make, order, block, batch, passes[r], round_warmup))
    return rounds


def solo_figures(
    module: Any, rows: Any, batch: Any, calls: int, passes: int, cfg: TimingConfig
) -> dict[str, Any]:
    """Median milliseconds of one callable on its own, not paired with anything: ``calls``
    batch-1 calls over ``rows`` and ``passes`` passes over ``batch``, after ``cfg.warmup`` of
    each, with ``cfg.threads`` threads. For absolute figures that no ratio is taken of."""
    with _timing_conditions(cfg.threads):
        warm_calls(module, rows, cfg.warmup)
        warm_passes(module, batch, cfg.warmup)
        latency = call_ms(module, rows[:calls])
        times = pass_ms(module, batch, passes)
    return {
        "latency_ms_p50": float(np.median(latency)),
        "pass_ms_p50": float(np.median(times)),
        "calls": len(latency),
        "passes": passes,
        "batch_size": len(batch),
    }


def _time_round(
    make: Mapping[str, Factory],
    order: tuple[str, ...],
    rows: Mapping[str, Any],
    batch: Mapping[str, Any],
    passes: int,
    warmup: int,
) -> dict[str, Any]:
    """One round: the batch-1 blocks of every side in ``order``, then their blocks of passes,
    each block after ``warmup`` untimed calls (passes) of its own."""
    result: dict[str, Any] = {"order": list(order), **{side: {} for side in make}}
    callers = {side: make[side]("calls") for side in order}
    for side in order:
        warm_calls(callers[side], rows[side], warmup)
        result[side]["latency_ms"] = call_ms(callers[side], rows[side])
    passers = {side: make[side]("passes") for side in order}
    for side in order:
        warm_passes(passers[side], batch[side], warmup)
        result[side]["pass_ms"] = pass_ms(passers[side], batch[side], passes)
    return result


class RotatingCopies:
    """A factory that hands out, per block kind, ``copies`` deep copies of ``module`` in turn.

    Each kind in ``blocks`` has a pool of its own, so a copy only ever runs one batch size. All
    copies live at once, each behind a spacer of random size, so they lie at different
    addresses (a copy made after freeing the last would get its addresses back). A deep copy
    starts with none of the state a kernel kept from ``module``'s earlier calls (``onednn``'s
    primitive is rebuilt with the packed weight).
    """

    def __init__(
        self,
        module: nn.Module,
        copies: int = LAYOUTS,
        seed: int = 0,
        blocks: tuple[str, ...] = BLOCKS,
    ) -> None:
        rng = np.random.default_rng(seed)
        self._spacers: list[torch.Tensor] = []
        self.pools: dict[str, list[nn.Module]] = {block: [] for block in blocks}
        for _ in range(copies):
            for pool in self.pools.values():
                spacer = int(rng.integers(1, 4096)) * 64
                self._spacers.append(torch.empty(spacer, dtype=torch.uint8))
                pool.append(copy.deepcopy(module))
        self._turns = {block: itertools.count() for block in blocks}

    def __call__(self, block: str) -> nn.Module:
        if block not in self.pools:
            raise KeyError(f"no copies for block kind {block!r}; kinds: {', '.join(self.pools)}")
        pool = self.pools[block]
        return pool[next(self._turns[block]) % len(pool)]

    @property
    def count(self) -> int:
        """Copies held, all block kinds together."""
        return sum(len(pool) for pool in self.pools.values())


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
