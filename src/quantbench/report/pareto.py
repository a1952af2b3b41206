"""The accuracy vs batch-1 latency Pareto front of one model, marked in its metrics records.

Accuracy order between two methods: their paired difference over the same replicates and test
rows, read as the accuracy verdict reads a difference to FP32 (interval and each replicate's own
exact test, Holm-corrected; see ``replicates``). Latency order: the two batch-1 speed-up
intervals vs FP32 do not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quantbench.report.facts import ModelFacts
from quantbench.report.order import direction, dominates, interval_order, pareto_front
from quantbench.report.quality import accuracy_difference
from quantbench.report.replicates import combined_direction, replicate_evidence
from quantbench.report.stats import Interval, ReportConfig, mcnemar

Metrics = dict[str, Any]


def _speed(record: Metrics) -> Interval:
    s = record["speedup"]["batch_1"]
    return Interval(s["estimate"], s["ci"][0], s["ci"][1], s["method"])


def accuracy_order(first: Sequence[Any], second: Sequence[Any], confidence: float) -> int:
    """+1 when the method with correctness ``first`` (one bool array per replicate) is
    measurably more accurate than the one with ``second``, -1 less, 0 neither."""
    diff = accuracy_difference(second, first, confidence)  # first - second
    tests = [mcnemar([b], [a]) for a, b in zip(first, second, strict=True)]
    diffs = [100 * (float(a.mean()) - float(b.mean())) for a, b in zip(first, second, strict=True)]
    evidence = replicate_evidence(tests, diffs, confidence)
    return combined_direction(direction(diff, 0.0), evidence)


def add_pareto(facts: ModelFacts, records: Sequence[Metrics], cfg: ReportConfig) -> None:
    """Mark the accuracy vs batch-1 latency Pareto front, with intervals (see order.dominates)."""
    if any(r["speedup"] is None for r in records):
        return  # a model without timing (FP32 alone) has no latency axis
    n = len(records)
    correct = [[s.correct for s in facts.scored(r["method"])] for r in records]
    acc = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            order = accuracy_order(correct[i], correct[j], cfg.confidence)
            acc[i][j], acc[j][i] = order, -order
    speeds = [_speed(r) for r in records]
    speed = [[interval_order(a, b) if a is not b else 0 for b in speeds] for a in speeds]
    front = set(pareto_front(acc, speed))
    for i, r in enumerate(records):
        beaten_by = [records[j]["method"] for j in range(n) if dominates(acc[j][i], speed[j][i])]
        r["pareto"] = {"on_front": i in front, "dominated_by": beaten_by}
