"""Per-replicate evidence: Holm's correction and the verdicts it forces, on constructed rows.

Each replicate is a constructed 2x2 table of FP32 and a method on the same test rows, so the
paired counts (b: only FP32 right, c: only the method right) and every p-value follow exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from quantbench.report.quality import accuracy_difference
from quantbench.report.recommend import RecommendConfig, recommendation
from quantbench.report.replicates import (
    ReplicateEvidence,
    combined_direction,
    holm,
    replicate_evidence,
)
from quantbench.report.stats import Interval, mcnemar, mcnemar_exact
from quantbench.report.wording import NO_CHANGE, accuracy_verdict
from tests.report.test_report_summarize import run_summarize
from tests.report_facts import Method, write_run

ROWS = 3000
CONFIDENCE = 0.95


def replicate(b: int, c: int, rows: int = ROWS) -> tuple[np.ndarray, np.ndarray]:
    """FP32's and the method's correctness: b rows only FP32 right, c only the method right,
    the rest (85 % of the rows right for both, the remainder wrong for both) shared."""
    both = int(0.85 * rows) - b
    neither = rows - b - c - both
    assert both >= 0 and neither >= 0, "a 2x2 table needs b + c <= 15 % of the rows here"
    ref = np.array([True] * b + [False] * c + [True] * both + [False] * neither)
    cand = np.array([False] * b + [True] * c + [True] * both + [False] * neither)
    return ref, cand


def verdict_of(tables: list[tuple[int, int]]) -> tuple[str, object]:
    """The verdict of replicates with the given (b, c), as the report computes it."""
    pairs = [replicate(b, c) for b, c in tables]
    refs, cands = [p[0] for p in pairs], [p[1] for p in pairs]
    tests = [mcnemar([r], [c]) for r, c in pairs]
    diffs = [100 * (c.mean() - r.mean()) for r, c in pairs]
    ev = replicate_evidence(tests, diffs, CONFIDENCE)
    interval = accuracy_difference(refs, cands, CONFIDENCE)
    return accuracy_verdict(interval, evidence=ev), (ev, interval, tests)


def test_holm_steps_down_and_stays_monotone() -> None:
    # sorted 0.01, 0.02, 0.04: times 3, 2, 1 -> 0.03, 0.04, 0.04 (monotone), in the given order
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.3]) == [0.3]  # one test: no correction
    # Holm is stricter than each test alone: 0.03 twice rejects alone, not after correction
    assert holm([0.03, 0.03]) == pytest.approx([0.06, 0.06])


def test_one_collapsing_replicate_never_reads_no_measurable_change() -> None:
    # -13.5, -0.3 and -20.5 points on 3000 rows, as in a 2-bit grid that collapses twice
    verdict, (ev, interval, tests) = verdict_of([(420, 15), (40, 31), (630, 15)])
    assert [round(d, 1) for d in ev.diffs_pt] == [-13.5, -0.3, -20.5]
    assert tests[0].p_value < 1e-80 and tests[2].p_value < 1e-150
    assert 0.2 < tests[1].p_value < 0.5  # the middle replicate alone shows nothing
    assert interval.lo < 0 < interval.hi  # the t-interval over three replicates spans zero
    assert ev.signs == (-1, 0, -1)
    assert verdict == "worse in 2 of 3 replicates (-20.5 … -0.3 pt)"
    assert verdict != NO_CHANGE
    assert ev.largest_significant_drop == pytest.approx(20.5)


def test_consistent_small_drops_keep_the_interval_wording() -> None:
    # about -0.3 pt each: no replicate is significant after Holm, the interval of the mean is
    verdict, (ev, interval, _) = verdict_of([(14, 6), (15, 6), (16, 6)])
    assert ev.worse == ev.better == 0
    assert interval.hi < 0
    assert verdict.startswith("worse by 0.30 pt [") or verdict.startswith("worse by 0.3 pt [")
    assert ev.largest_significant_drop is None


def test_consistent_gains_read_better() -> None:
    verdict, (ev, interval, _) = verdict_of([(5, 40), (5, 45), (5, 50)])
    assert ev.better == 3 and interval.lo > 0
    assert verdict.startswith("better by 1.3 pt [")
    # gains whose size varies so much that the t-interval spans zero: counted per replicate
    verdict, (ev, interval, _) = verdict_of([(5, 30), (5, 200), (5, 400)])
    assert interval.lo < 0 < interval.hi and ev.better == 3
    assert verdict == "better in all 3 replicates (0.8 … 13.2 pt)"


def test_one_replicate_is_judged_by_its_exact_interval() -> None:
    verdict, (_, interval, _) = verdict_of([(30, 10)])
    assert interval.method == "exact-discordant" and interval.hi < 0
    assert verdict == "worse by 0.7 pt [0.2, 1.0]"
    verdict, (ev, interval, _) = verdict_of([(12, 8)])
    assert ev.of == 1 and verdict == NO_CHANGE


def test_replicates_significant_in_opposite_directions_are_inconsistent() -> None:
    verdict, (ev, _, _) = verdict_of([(200, 10), (10, 200), (20, 20)])
    assert (ev.worse, ev.better) == (1, 1)
    assert verdict == "inconsistent across replicates: worse in 1, better in 1 of 3 (-6.3 … 6.3 pt)"


def test_holm_decides_which_replicates_count() -> None:
    # p = 0.036 in each of three replicates: each rejects alone, none after Holm's correction;
    # the same replicate with p = 0.00009 survives it
    assert mcnemar_exact(20, 8) < 0.05
    _, (ev, _, _) = verdict_of([(20, 8), (20, 8), (40, 8)])
    assert ev.signs == (0, 0, -1)


def test_a_collapsed_method_reads_worse_in_k_of_3_replicates(tmp_path: Path) -> None:
    """summarize end to end: an rtn_w2-like method that loses 0.03, 7.0 and 13.9 points in its three
    replicates reads "worse in 2 of 3 replicates" everywhere, and is not recommended."""
    collapsed = Method("rtn_w2", "rtn", bits=2, broken=3, fixed=2, size_bytes=24_000, jitter=250)
    kept = Method("ptq_static", "ptq_static", broken=6, fixed=5, size_bytes=76_800, speed_n=2.0)
    out = run_summarize(tmp_path / "out", write_run(tmp_path / "facts", [kept, collapsed]))
    record = json.loads((out["metrics"] / "mlp" / "rtn_w2.json").read_text(encoding="utf-8"))
    vs = record["vs_fp32"]
    assert vs["accuracy_diff_pt"]["ci"][0] < 0 < vs["accuracy_diff_pt"]["ci"][1]
    verdict = vs["accuracy_diff_pt"]["verdict"]
    assert verdict.startswith("worse in 2 of 3 replicates (-13.") and verdict.endswith("pt)")
    assert (vs["replicates"]["worse"], vs["replicates"]["of"]) == (2, 3)
    assert [r["vs_fp32"]["mcnemar"]["direction"] for r in record["replicates"]] == [0, -1, -1]
    md = out["md"].read_text(encoding="utf-8")
    row = next(line for line in md.splitlines() if line.startswith("| rtn_w2 |"))
    assert verdict in row and "-13.92 … -0.03" in row
    rec = json.loads(out["recommendation"].read_text(encoding="utf-8"))["models"][0]
    assert rec["choice"] == "ptq_static" and "rtn_w2" not in rec["qualified"]
    why = next(o["reason"] for o in rec["ruled_out"] if o["method"] == "rtn_w2")
    assert why.startswith("accuracy worse in 2 of 3 replicates")


def test_a_significantly_worse_replicate_beyond_the_bound_is_not_recommended(
    tmp_path: Path,
) -> None:
    """Over ten replicates the interval of the mean can sit within the bound while the worst
    replicate, significantly worse on its own, dropped beyond it: the method does not qualify."""
    from quantbench.report import build_metrics
    from quantbench.report.stats import ReportConfig

    drifting = Method("rtn_w4", "rtn", bits=4, size_bytes=41_000, jitter=6)  # 0 ... 4.5 pt
    run = write_run(tmp_path, [drifting], seeds=tuple(range(42, 52)), rows=1200, rounds=4)
    by_model = build_metrics(run.quality, run.timing, ReportConfig(bootstrap_resamples=999))
    vs = by_model["mlp"][1]["vs_fp32"]
    worst = vs["replicates"]["largest_significant_drop_pt"]
    assert worst == pytest.approx(4.5) and vs["accuracy_drop_upper_pt"] < 4.0
    rec = recommendation(by_model, RecommendConfig(max_accuracy_drop=4.0))["models"][0]
    assert rec["choice"] == "fp32" and rec["qualified"] == ["fp32"]
    assert rec["ruled_out"][0]["reason"].endswith(
        "the drop reached 4.50 pt in a significantly worse replicate, beyond the 4 pt bound"
    )
    loose = recommendation(by_model, RecommendConfig(max_accuracy_drop=5.0))["models"][0]
    assert loose["choice"] == "rtn_w4"


@pytest.mark.parametrize(
    ("side", "signs", "expected"),
    [
        (0, (-1, 0, -1), -1),  # the interval spans zero, two replicates worse: worse
        (0, (1, 1, 0), 1),
        (0, (0, 0, 0), 0),
        (-1, (0, 0, 0), -1),  # the interval decides where no replicate disagrees
        (-1, (-1, 0, 1), 0),  # replicates in opposite directions: nothing established
        (-1, (0, 0, 1), 0),  # a replicate against the interval: nothing established
        (1, (0, -1, 0), 0),
        (1, (-1,), 1),  # one replicate: the interval alone
    ],
)
def test_the_pareto_order_reads_replicates_as_the_verdict_does(
    side: int, signs: tuple[int, ...], expected: int
) -> None:
    diffs = tuple(float(s) for s in signs)
    ev = ReplicateEvidence(diffs, tuple(0.5 for _ in signs), signs, 0.05)
    assert combined_direction(side, ev) == expected
    interval = {-1: (-2.0, -3.0, -1.0), 0: (-1.0, -3.0, 1.0), 1: (2.0, 1.0, 3.0)}[side]
    verdict = accuracy_verdict(Interval(*interval, "t"), evidence=ev)
    read = -1 if verdict.startswith("worse") else 1 if verdict.startswith("better") else 0
    assert read == expected, verdict
