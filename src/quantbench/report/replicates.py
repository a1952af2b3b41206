"""What each replicate says on its own: exact McNemar per replicate, Holm-corrected.

The t-interval of the mean over a handful of replicates cannot bound an effect whose size varies
from seed to seed: losses of 13.5, 0.3 and 20.5 points give an interval from -37 to +14 points
although no replicate gained anything. Each replicate's own exact McNemar test on its test rows
can tell: a replicate is significantly worse (or better) when its test rejects after Holm's
correction over the R replicates, which keeps the chance of calling any replicate worse or
better by mistake at most 1 - confidence (the family-wise error rate).

Holm's step-down: sort the p-values p(1) <= ... <= p(R); the adjusted p-value of the i-th is
max over j <= i of min(1, (R - j + 1) p(j)). A replicate is significant when its adjusted
p-value is at most alpha = 1 - confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quantbench.report.stats import McNemar


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given (monotone in the sorted order, at most 1)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class ReplicateEvidence:
    """Per-replicate paired differences (points) and their Holm-corrected directions.

    ``signs[r]`` is -1 when replicate r is significantly worse than the reference, +1 when
    significantly better, 0 when its test does not reject after the correction.
    """

    diffs_pt: tuple[float, ...]
    p_holm: tuple[float, ...]
    signs: tuple[int, ...]
    alpha: float

    @property
    def of(self) -> int:
        return len(self.signs)

    @property
    def worse(self) -> int:
        return sum(1 for s in self.signs if s < 0)

    @property
    def better(self) -> int:
        return sum(1 for s in self.signs if s > 0)

    @property
    def diff_range(self) -> tuple[float, float]:
        return min(self.diffs_pt), max(self.diffs_pt)

    @property
    def largest_significant_drop(self) -> float | None:
        """The largest drop (points, positive) among significantly worse replicates."""
        drops = [-d for d, s in zip(self.diffs_pt, self.signs, strict=True) if s < 0]
        return max(drops) if drops else None

    def to_json(self) -> dict[str, Any]:
        return {
            "of": self.of,
            "worse": self.worse,
            "better": self.better,
            "diff_pt_range": list(self.diff_range),
            "largest_significant_drop_pt": self.largest_significant_drop,
            "alpha": self.alpha,
            "correction": "holm",
        }


def replicate_evidence(
    tests: Sequence[McNemar], diffs_pt: Sequence[float], confidence: float
) -> ReplicateEvidence:
    """Each replicate's exact McNemar test (``tests``, one per replicate, paired with the
    replicate's difference in ``diffs_pt``), Holm-corrected at alpha = 1 - confidence."""
    if len(tests) != len(diffs_pt) or not tests:
        raise ValueError(f"{len(tests)} tests for {len(diffs_pt)} differences; one per replicate")
    alpha = round(1 - confidence, 12)  # 0.05, not 0.050000000000000044
    adjusted = holm([t.p_value for t in tests])
    signs = tuple(
        ((t.c > t.b) - (t.c < t.b)) if p <= alpha else 0
        for t, p in zip(tests, adjusted, strict=True)
    )
    return ReplicateEvidence(tuple(map(float, diffs_pt)), tuple(adjusted), signs, alpha)


def combined_direction(side: int, evidence: ReplicateEvidence) -> int:
    """The direction the interval (``side``: -1, 0, +1) and the replicates establish together,
    as the accuracy verdict reads it: replicates significant in opposite directions, or one
    against the interval, establish none (0); with the interval containing 0, replicates
    significant in one direction only establish it. One replicate: the interval alone."""
    if evidence.of < 2:
        return side
    if evidence.worse and evidence.better:
        return 0
    if side != 0:
        return 0 if (evidence.better if side < 0 else evidence.worse) else side
    return -1 if evidence.worse else 1 if evidence.better else 0
