"""Accuracy and macro-F1 over replicates, and paired differences with a reference.

R >= 2 replicates that differ: Student's t over replicates. One replicate, or replicates that
agree to the last bit: exact intervals (Clopper-Pearson, conditional on the discordant rows) or
a bootstrap over the test rows, pooled over replicates. See ``stats`` for the distributions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantbench.report.stats import (
    ROW_METHOD,
    Interval,
    ReportConfig,
    bootstrap_interval,
    clipped,
    clopper_pearson,
    discordant_difference,
    mcnemar,
    spread,
    t_interval,
)


def accuracy_interval(correct: Sequence[np.ndarray], confidence: float) -> Interval:
    """Mean accuracy over replicates (``correct``: one bool array of rows per replicate).

    R >= 2 with spread: t over replicates. R = 1 (or equal accuracies): Clopper-Pearson on the
    test rows pooled over replicates.
    """
    acc = [float(c.mean()) for c in correct]
    if spread(acc):
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
    if spread(values):
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
    if spread(d):
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
    if spread(d):
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
