"""Speed-ups over interleaved timing rounds, measurable order and the Pareto front."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from quantbench.report.stats import Interval, ReportConfig, bootstrap_interval


def round_ratios(
    reference: Sequence[Sequence[float]], candidate: Sequence[Sequence[float]]
) -> np.ndarray:
    """Per-round speed-up: median reference time / median candidate time of the round."""
    return np.array(
        [
            float(np.median(r)) / float(np.median(c))
            for r, c in zip(reference, candidate, strict=True)
        ]
    )


def speedup_interval(ratios: np.ndarray, cfg: ReportConfig) -> Interval:
    """Geometric mean of the per-round ratios; bootstrap interval of the mean log ratio over
    rounds, exponentiated."""
    logs = np.log(np.asarray(ratios, dtype=float))  # (rounds,)
    if logs.size < 2:
        raise ValueError(f"a speed-up interval needs at least 2 timing rounds, got {logs.size}")
    estimate = math.exp(float(logs.mean()))
    if float(np.ptp(logs)) == 0:
        return Interval(estimate, estimate, estimate, "constant")

    def statistic(x: np.ndarray, axis: int = -1) -> Any:
        return np.mean(x, axis=axis)

    lo, hi, how = bootstrap_interval((logs,), statistic, cfg)
    return Interval(estimate, math.exp(lo), math.exp(hi), how)


def direction(interval: Interval, null: float) -> int:
    """+1 when the whole interval lies above ``null``, -1 below, 0 when it contains it."""
    if interval.lo > null:
        return 1
    if interval.hi < null:
        return -1
    return 0


def speed_direction(ratio: Interval, noise: float) -> int:
    """+1 when the whole speed-up interval lies above the noise band [1/(1+noise), 1+noise],
    -1 below it, 0 when it reaches into the band (no measurable difference)."""
    if ratio.lo > 1 + noise:
        return 1
    if ratio.hi < 1 / (1 + noise):
        return -1
    return 0


def rounds_beyond(ratios: Sequence[float], noise: float) -> tuple[int, int]:
    """(rounds above the noise band, rounds below it) of per-round speed-ups."""
    up = sum(1 for r in ratios if r > 1 + noise)
    down = sum(1 for r in ratios if r < 1 / (1 + noise))
    return up, down


def interval_order(a: Interval, b: Interval) -> int:
    """+1 when ``a`` lies entirely above ``b``, -1 entirely below, 0 when they overlap."""
    if a.lo > b.hi:
        return 1
    if a.hi < b.lo:
        return -1
    return 0


def dominates(accuracy: int, speed: int) -> bool:
    """Measurably better on one axis and not measurably worse on the other."""
    return (accuracy > 0 and speed >= 0) or (speed > 0 and accuracy >= 0)


def pareto_front(accuracy: Sequence[Sequence[int]], speed: Sequence[Sequence[int]]) -> list[int]:
    """Indices that no other point dominates.

    ``accuracy[i][j]`` is +1 when i is measurably more accurate than j, -1 when measurably less,
    0 when neither; ``speed[i][j]`` likewise for speed.
    """
    n = len(accuracy)
    return [
        i
        for i in range(n)
        if not any(dominates(accuracy[j][i], speed[j][i]) for j in range(n) if j != i)
    ]
