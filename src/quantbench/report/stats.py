"""The statistics the report rests on: intervals, exact tests and the bootstrap.

Every distribution comes from ``scipy.stats``:

- mean over replicates: Student's t-interval with R - 1 degrees of freedom
  (``ttest_1samp(x).confidence_interval``);
- a proportion of test rows: the exact Clopper-Pearson interval
  (``binomtest(k, n).proportion_ci(method="exact")``);
- McNemar's exact test: of the m = b + c discordant rows (b: only the reference right, c: only
  the candidate right), c ~ Binomial(m, 1/2) when both models are equally accurate;
- the paired accuracy difference conditional on the discordant rows: with c ~ Binomial(m, p),
  the difference is (c - b) / n = m / n * (2p - 1), so the exact interval [p_lo, p_hi] of p maps
  onto m / n * (2 [p_lo, p_hi] - 1);
- anything else (macro-F1 over rows, the mean log speed-up over timing rounds): the BCa
  bootstrap (``scipy.stats.bootstrap``), seeded so that a summary is reproducible.

Built on these: ``quality`` (accuracy and macro-F1 over replicates, paired differences),
``replicates`` (what each replicate's own test says, Holm-corrected) and ``order`` (speed-ups,
measurable order, the Pareto front).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# Elements one vectorised bootstrap call may hold (resamples x rows), to bound memory.
_BATCH_ELEMENTS = 4_000_000
# Over thousands of test rows the percentile interval needs no BCa correction, and BCa's
# jackknife would evaluate the statistic once per row.
ROW_METHOD = "percentile"


def from_section(cls: Any, values: dict[str, Any], section: str) -> Any:
    """A settings dataclass from its config section; ValueError naming an unknown key."""
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{section}.{unknown[0]}: unknown key; known keys: {', '.join(known)}")
    return cls(**values)


@dataclass(frozen=True)
class ReportConfig:
    """The config's ``report`` block: interval level and bootstrap settings."""

    confidence: float = 0.95
    bootstrap_resamples: int = 9999
    seed: int = 0
    # Speed-ups within this share of 1 are noise: the spread between timing processes that run
    # the same arithmetic, which no interval from one process can see (benchmarks/timing_noise.py).
    speed_noise: float = 0.03

    def __post_init__(self) -> None:
        if not 0 <= float(self.speed_noise) < 0.5:
            raise ValueError(f"report.speed_noise must lie in [0, 0.5), got {self.speed_noise}")
        if not 0 < float(self.confidence) < 1:
            raise ValueError(f"report.confidence must lie in (0, 1), got {self.confidence}")
        if int(self.bootstrap_resamples) < 100:
            raise ValueError(
                f"report.bootstrap_resamples must be >= 100, got {self.bootstrap_resamples}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ReportConfig:
        return from_section(cls, values, "report")


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval [lo, hi] and the method that gave it."""

    estimate: float
    lo: float
    hi: float
    method: str

    def contains(self, value: float) -> bool:
        """True when ``value`` lies inside the closed interval (touching counts as inside)."""
        return self.lo <= value <= self.hi

    def scaled(self, factor: float) -> Interval:
        return Interval(self.estimate * factor, self.lo * factor, self.hi * factor, self.method)

    def to_json(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "ci": [self.lo, self.hi], "method": self.method}


def t_interval(values: Sequence[float], confidence: float) -> Interval:
    """Mean of ``values`` with Student's t-interval, df = len(values) - 1."""
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {x.size}")
    from scipy import stats

    ci = stats.ttest_1samp(x, 0.0).confidence_interval(confidence_level=confidence)
    return Interval(float(x.mean()), float(ci.low), float(ci.high), "t")


def clopper_pearson(k: int, n: int, confidence: float) -> Interval:
    """k / n with the exact (Clopper-Pearson) binomial interval."""
    from scipy import stats

    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return Interval(k / n, float(ci.low), float(ci.high), "clopper-pearson")


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value of b vs c discordant rows; 1 when there are none."""
    if b + c == 0:
        return 1.0
    from scipy import stats

    return float(stats.binomtest(int(c), int(b + c), 0.5).pvalue)


def discordant_counts(ref_correct: np.ndarray, cand_correct: np.ndarray) -> tuple[int, int]:
    """(b, c): rows only the reference got right, rows only the candidate got right."""
    b = int(np.count_nonzero(ref_correct & ~cand_correct))
    c = int(np.count_nonzero(~ref_correct & cand_correct))
    return b, c


def discordant_difference(b: int, c: int, n: int, confidence: float) -> Interval:
    """(c - b) / n with the exact interval conditional on the m = b + c discordant rows."""
    if b + c == 0:  # identical correctness on every row
        return Interval(0.0, 0.0, 0.0, "identical")
    p = clopper_pearson(c, b + c, confidence)
    share = (b + c) / n  # m / n
    return Interval((c - b) / n, share * (2 * p.lo - 1), share * (2 * p.hi - 1), "exact-discordant")


def _rng_keyword() -> str:
    """``rng`` in SciPy >= 1.15, ``random_state`` before."""
    from scipy import stats

    return "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def bootstrap_interval(
    data: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    cfg: ReportConfig,
    method: str = "BCa",
) -> tuple[float, float, str]:
    """Bootstrap interval (lo, hi, how) of ``statistic`` (vectorised over the last axis).

    ``method``: "BCa" (bias-corrected and accelerated) or "percentile"; a degenerate BCa (every
    resample equal) falls back to the percentile interval. ``how`` names the one used, as
    "bootstrap-bca" or "bootstrap-percentile". Seeded by cfg: the same data give the same
    interval.
    """
    from scipy import stats

    n = data[0].shape[-1]
    kwargs = {
        "n_resamples": int(cfg.bootstrap_resamples),
        "confidence_level": float(cfg.confidence),
        "vectorized": True,
        "axis": -1,
        "batch": max(1, _BATCH_ELEMENTS // max(n, 1)),
    }
    for how in dict.fromkeys((method, "percentile")):
        kwargs[_rng_keyword()] = np.random.default_rng(cfg.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(data, statistic, method=how, **kwargs)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi, f"bootstrap-{how.lower()}"
    raise ValueError("bootstrap interval is undefined for this sample")


# Differences of other accuracies can differ in their last bits although they count the same
# rows (100 · (1649 − 1650) / 1800 computed as a difference of two means, next to the same for
# 1659 and 1660); values closer than this share of their size are equal.
_SAME = 1e-9


def spread(values: Sequence[float]) -> bool:
    """Whether the values really differ (rounding noise is no spread for a t-interval)."""
    if len(values) < 2:
        return False
    scale = max(1.0, max(abs(float(v)) for v in values))
    return float(np.ptp(values)) > _SAME * scale


def clipped(interval: Interval, lo: float, hi: float) -> Interval:
    """The interval cut to the range the quantity can take (a share lies in [0, 1]): a t-interval
    over few replicates that vary a lot can reach past it, which no reader should see."""
    return Interval(interval.estimate, max(interval.lo, lo), min(interval.hi, hi), interval.method)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test: b rows only the reference got right, c only the candidate."""

    b: int
    c: int
    p_value: float

    def to_json(self) -> dict[str, Any]:
        return {"b": self.b, "c": self.c, "p_value": self.p_value}


def mcnemar(ref_correct: Sequence[np.ndarray], cand_correct: Sequence[np.ndarray]) -> McNemar:
    """McNemar's exact test on the discordant rows, pooled over the replicates given."""
    counts = [discordant_counts(r, c) for r, c in zip(ref_correct, cand_correct, strict=True)]
    b, c = sum(x[0] for x in counts), sum(x[1] for x in counts)
    return McNemar(b, c, mcnemar_exact(b, c))
