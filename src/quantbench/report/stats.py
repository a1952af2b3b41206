"""Intervals, paired tests and comparisons: how sure the report is of every figure it states.

All distributions come from ``scipy.stats``:

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


# ---------------------------------------------------------------------------------------------
# Quality over replicates


# Differences of other accuracies can differ in their last bits although they count the same
# rows (100 · (1649 − 1650) / 1800 computed as a difference of two means, next to the same for
# 1659 and 1660); values closer than this share of their size are equal.
_SAME = 1e-9


def _spread(values: Sequence[float]) -> bool:
    """Whether the values really differ (rounding noise is no spread for a t-interval)."""
    if len(values) < 2:
        return False
    scale = max(1.0, max(abs(float(v)) for v in values))
    return float(np.ptp(values)) > _SAME * scale


def clipped(interval: Interval, lo: float, hi: float) -> Interval:
    """The interval cut to the range the quantity can take (a share lies in [0, 1]): a t-interval
    over few replicates that vary a lot can reach past it, which no reader should see."""
    return Interval(interval.estimate, max(interval.lo, lo), min(interval.hi, hi), interval.method)


def accuracy_interval(correct: Sequence[np.ndarray], confidence: float) -> Interval:
    """Mean accuracy over replicates (``correct``: one bool array of rows per replicate).

    R >= 2 with spread: t over replicates. R = 1 (or equal accuracies): Clopper-Pearson on the
    test rows pooled over replicates.
    """
    acc = [float(c.mean()) for c in correct]
    if _spread(acc):
        return clipped(t_interval(acc, confidence), 0.0, 1.0)
    k = sum(int(c.sum()) for c in correct)
    n = sum(int(c.size) for c in correct)
    cp = clopper_pearson(k, n, confidence)
    return Interval(float(np.mean(acc)), cp.lo, cp.hi, cp.method)


def row_codes(labels: np.ndarray, *predictions: np.ndarray, k: int) -> np.ndarray:
    """One integer per test row for (label, prediction, ...): label * k**m + ... in [0, k**(m+1)).

    A row's code carries everything a confusion matrix needs, so resampling codes resamples the
    rows with their labels and predictions together (a paired bootstrap)."""
    codes = labels.astype(np.int64)
    for p in predictions:
        codes = codes * k + p
    span = k ** (len(predictions) + 1)
    # The smallest type that holds every code: the bootstrap copies the rows 10^4 times.
    small = np.uint8 if span <= 2**8 else np.uint16 if span <= 2**16 else np.int64
    return codes.astype(small)


def code_counts(codes: np.ndarray, m: int) -> np.ndarray:
    """How often each code 0..m-1 occurs along the last axis: (..., n) -> (..., m)."""
    flat = codes.reshape(-1, codes.shape[-1])
    offsets = (np.arange(flat.shape[0], dtype=np.int64) * m)[:, None]  # one bin range per row
    counts = np.bincount((flat + offsets).ravel(), minlength=flat.shape[0] * m)
    return counts.reshape(*codes.shape[:-1], m)


def macro_f1_confusion(confusion: np.ndarray) -> Any:
    """Macro-F1 of (..., K, K) confusion counts (rows true, columns predicted): the mean over
    classes of 2 TP / (T + P), 0 for a class neither true nor predicted (scikit-learn's
    ``zero_division=0``)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1)  # (..., K)
    denom = confusion.sum(axis=-1) + confusion.sum(axis=-2)  # true + predicted per class
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0).mean(axis=-1)


def macro_f1_interval(
    values: Sequence[float],
    labels: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    k: int,
    cfg: ReportConfig,
) -> Interval:
    """Mean macro-F1 (``values``, one per replicate) with its interval.

    R >= 2 with spread: t over replicates. Otherwise: bootstrap over the test rows (labels and
    predictions resampled together), pooled over replicates.
    """
    if _spread(values):
        return clipped(t_interval(values, cfg.confidence), 0.0, 1.0)
    codes = row_codes(np.concatenate(labels), np.concatenate(predictions), k=k)

    def statistic(c: np.ndarray, axis: int = -1) -> Any:
        counts = code_counts(c, k * k)
        return macro_f1_confusion(counts.reshape(*counts.shape[:-1], k, k))

    return Interval(
        float(np.mean(values)), *bootstrap_interval((codes,), statistic, cfg, ROW_METHOD)
    )


# ---------------------------------------------------------------------------------------------
# Paired comparisons with a reference (same replicate, same test rows)


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


def every_replicate_direction(tests: Sequence[McNemar], confidence: float) -> int:
    """-1 when the exact McNemar test of every replicate rejects at level 1 - confidence with the
    candidate worse (b > c), +1 when every one rejects with it better, 0 otherwise.

    An intersection-union test: "worse in every replicate" is established at level
    1 - confidence when each replicate's own test rejects at that level, with no correction. It
    answers what the t-interval over a handful of replicates cannot when the size of a real
    effect varies from seed to seed (a loss of 16, 0.6 and 18 points gives a t-interval that
    spans zero although each replicate is worse beyond doubt). With one replicate it is that
    replicate's test, which the exact interval already expresses: 0.
    """
    if len(tests) < 2:
        return 0
    alpha = 1 - confidence
    if not all(t.p_value <= alpha for t in tests):
        return 0
    signs = {(t.c > t.b) - (t.c < t.b) for t in tests}
    return signs.pop() if len(signs) == 1 else 0


def accuracy_difference(
    ref_correct: Sequence[np.ndarray], cand_correct: Sequence[np.ndarray], confidence: float
) -> Interval:
    """Paired accuracy difference candidate - reference in points, with its interval.

    R >= 2 with spread: t over the per-replicate differences d_r. R = 1, or every d_r equal
    (a t-interval of zero width): exact interval conditional on the discordant rows pooled over
    replicates.
    """
    pairs = list(zip(ref_correct, cand_correct, strict=True))
    d = [100 * (float(c.mean()) - float(r.mean())) for r, c in pairs]
    if _spread(d):
        return clipped(t_interval(d, confidence), -100.0, 100.0)
    test = mcnemar(ref_correct, cand_correct)
    n = sum(int(r.size) for r, _ in pairs)
    return discordant_difference(test.b, test.c, n, confidence).scaled(100)


def macro_f1_difference(
    d: Sequence[float],
    labels: Sequence[np.ndarray],
    ref_pred: Sequence[np.ndarray],
    cand_pred: Sequence[np.ndarray],
    k: int,
    cfg: ReportConfig,
) -> Interval:
    """Paired macro-F1 difference in points (``d``: one per replicate) with its interval.

    R >= 2 with spread: t over replicates. Otherwise: paired bootstrap over the test rows pooled
    over replicates (labels and both models' predictions resampled together); identical
    predictions give [0, 0].
    """
    if _spread(d):
        return t_interval(d, cfg.confidence)
    if all(np.array_equal(r, c) for r, c in zip(ref_pred, cand_pred, strict=True)):
        return Interval(0.0, 0.0, 0.0, "identical")
    y, pr, pc = (np.concatenate(a) for a in (labels, ref_pred, cand_pred))
    codes = row_codes(y, pr, pc, k=k)  # label, reference's and candidate's prediction

    def statistic(c: np.ndarray, axis: int = -1) -> Any:
        counts = code_counts(c, k**3)
        counts = counts.reshape(*counts.shape[:-1], k, k, k)  # (..., true, ref, cand)
        ref, cand = counts.sum(axis=-1), counts.sum(axis=-2)
        return 100 * (macro_f1_confusion(cand) - macro_f1_confusion(ref))

    return Interval(float(np.mean(d)), *bootstrap_interval((codes,), statistic, cfg, ROW_METHOD))


# ---------------------------------------------------------------------------------------------
# Speed-up over interleaved timing rounds


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


# ---------------------------------------------------------------------------------------------
# Measurable order and the Pareto front


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
