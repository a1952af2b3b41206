"""Intervals, exact tests and the bootstrap against published values and constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from quantbench.report.order import (
    direction,
    dominates,
    interval_order,
    pareto_front,
    round_ratios,
    speedup_interval,
)
from quantbench.report.quality import (
    accuracy_difference,
    accuracy_interval,
    code_counts,
    macro_f1_confusion,
    macro_f1_difference,
    macro_f1_interval,
    row_codes,
)
from quantbench.report.stats import (
    Interval,
    ReportConfig,
    bootstrap_interval,
    clopper_pearson,
    discordant_difference,
    mcnemar,
    mcnemar_exact,
    t_interval,
)

CFG = ReportConfig(confidence=0.95, bootstrap_resamples=999, seed=7)


def correctness(b: int, c: int, both: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and candidate correctness with b, c discordant rows (a constructed 2x2 table)."""
    ref = np.array([True] * b + [False] * c + [True] * both + [False] * neither)
    cand = np.array([False] * b + [True] * c + [True] * both + [False] * neither)
    return ref, cand


# ---------------------------------------------------------------------------------------------
# Textbook values


def test_t_interval_of_students_sleep_data() -> None:
    # Cushny and Peebles' sleep gains (Student 1908), drug 2 - drug 1 per patient; the paired
    # t-test in R (t.test(extra ~ group, data = sleep, paired = TRUE)) gives mean difference
    # 1.58 with 95 % interval [0.7001142, 2.4598858].
    d = [1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4]
    iv = t_interval(d, 0.95)
    assert iv.estimate == pytest.approx(1.58)
    assert (iv.lo, iv.hi) == pytest.approx((0.7001142, 2.4598858), abs=1e-6)
    assert iv.method == "t"


def test_t_interval_needs_two_values() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        t_interval([0.9], 0.95)


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [  # tabulated exact 95 % binomial limits
        (0, 10, 0.0, 0.3085),
        (1, 10, 0.0025, 0.4450),
        (5, 10, 0.1871, 0.8129),
        (9, 10, 0.5550, 0.9975),
    ],
)
def test_clopper_pearson_matches_tables(k: int, n: int, lo: float, hi: float) -> None:
    iv = clopper_pearson(k, n, 0.95)
    assert iv.estimate == k / n
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), abs=1e-4)


def test_exact_mcnemar_on_a_constructed_table() -> None:
    # b = 1, c = 9: two-sided exact p = 2 * P(X <= 1 | Bin(10, 1/2)) = 2 * 11 / 1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == pytest.approx(22 / 1024)
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0
    ref, cand = correctness(b=1, c=9, both=80, neither=10)
    test = mcnemar([ref], [cand])
    assert (test.b, test.c) == (1, 9)
    assert test.p_value == pytest.approx(22 / 1024)


def test_mcnemar_pools_replicates() -> None:
    r1, c1 = correctness(b=1, c=4, both=90, neither=5)
    r2, c2 = correctness(b=0, c=5, both=90, neither=5)
    test = mcnemar([r1, r2], [c1, c2])
    assert (test.b, test.c) == (1, 9)
    assert test.p_value == pytest.approx(22 / 1024)


def test_discordant_interval_maps_the_exact_interval_of_p() -> None:
    # b = 1, c = 9 of n = 100 rows: p = 9/10 with exact limits [0.5550, 0.9975] (table above),
    # difference (c - b) / n = 0.08, interval (b + c) / n * (2 p - 1) = [0.0110, 0.0995]
    iv = discordant_difference(1, 9, 100, 0.95)
    assert iv.estimate == pytest.approx(0.08)
    assert (iv.lo, iv.hi) == pytest.approx((0.0110, 0.0995), abs=1e-4)
    assert discordant_difference(0, 0, 100, 0.95) == Interval(0.0, 0.0, 0.0, "identical")


# ---------------------------------------------------------------------------------------------
# Paired differences and means over replicates


def test_one_replicate_uses_the_exact_discordant_interval() -> None:
    ref, cand = correctness(b=1, c=9, both=80, neither=10)
    iv = accuracy_difference([ref], [cand], 0.95)
    assert iv.method == "exact-discordant"
    assert iv.estimate == pytest.approx(8.0)
    assert (iv.lo, iv.hi) == pytest.approx((1.10, 9.95), abs=0.01)


def test_equal_differences_pool_the_discordant_rows() -> None:
    # d_r = +2 pt in both replicates: a t-interval would have zero width
    pairs = [correctness(b=1, c=3, both=90, neither=6), correctness(b=0, c=2, both=91, neither=7)]
    iv = accuracy_difference([p[0] for p in pairs], [p[1] for p in pairs], 0.95)
    assert iv.method == "exact-discordant"
    assert iv.estimate == pytest.approx(2.0)
    expected = discordant_difference(1, 5, 200, 0.95).scaled(100)
    assert (iv.lo, iv.hi) == pytest.approx((expected.lo, expected.hi))


def test_equal_differences_that_differ_in_rounding_pool_the_discordant_rows() -> None:
    # 1650 vs 1649 and 1660 vs 1659 correct of 1800: both -1/18 pt, unequal in the last bits
    pairs = [correctness(7, 6, 1643, 144), correctness(7, 6, 1653, 134)]
    d = [100 * (float(c.mean()) - float(r.mean())) for r, c in pairs]
    assert d[0] != d[1]
    iv = accuracy_difference([p[0] for p in pairs], [p[1] for p in pairs], 0.95)
    assert iv.method == "exact-discordant"
    assert iv.lo < 0 < iv.hi  # 14 vs 12 discordant rows: no measurable change


def test_differences_that_vary_use_t_over_replicates() -> None:
    pairs = [correctness(1, 3, 90, 6), correctness(2, 2, 90, 6), correctness(0, 5, 90, 5)]
    iv = accuracy_difference([p[0] for p in pairs], [p[1] for p in pairs], 0.95)
    d = [2.0, 0.0, 5.0]
    assert iv.method == "t"
    assert (iv.estimate, iv.lo, iv.hi) == pytest.approx(
        (t_interval(d, 0.95).estimate, t_interval(d, 0.95).lo, t_interval(d, 0.95).hi)
    )


def test_identical_predictions_give_zero_with_zero_width() -> None:
    ref = np.array([True, False, True, True])
    assert accuracy_difference([ref], [ref.copy()], 0.95) == Interval(0.0, 0.0, 0.0, "identical")


def test_accuracy_interval_t_over_replicates_or_exact_on_rows() -> None:
    rng = np.random.default_rng(0)
    reps = [rng.random(1000) < p for p in (0.90, 0.91, 0.92)]
    iv = accuracy_interval(reps, 0.95)
    assert iv.method == "t"
    assert iv.estimate == pytest.approx(np.mean([r.mean() for r in reps]))
    single = accuracy_interval(reps[:1], 0.95)
    cp = clopper_pearson(int(reps[0].sum()), 1000, 0.95)
    assert single.method == "clopper-pearson"
    assert (single.lo, single.hi) == (cp.lo, cp.hi)


# ---------------------------------------------------------------------------------------------
# The bootstrap


def test_bootstrap_on_a_fixed_sample_is_seeded_and_brackets_the_mean() -> None:
    x = np.array([2.1, 3.4, 1.9, 5.6, 4.2, 3.3, 2.8, 4.9, 3.7, 3.0])

    def mean(s: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(s, axis=axis)

    first = bootstrap_interval((x,), mean, CFG)
    assert first == bootstrap_interval((x,), mean, CFG)  # same seed, same interval
    other = bootstrap_interval((x,), mean, ReportConfig(bootstrap_resamples=999, seed=8))
    assert other != first
    lo, hi, how = first
    assert how == "bootstrap-bca"
    assert x.min() < lo < x.mean() < hi < x.max()
    # the t-interval of the same sample is of the same width within a third
    t = t_interval(x, 0.95)
    assert (hi - lo) == pytest.approx(t.hi - t.lo, rel=0.35)


def test_row_codes_count_like_a_confusion_matrix() -> None:
    rng = np.random.default_rng(3)
    y, p = rng.integers(0, 4, 500), rng.integers(0, 4, 500)
    codes = row_codes(y, p, k=4)
    assert codes.dtype == np.uint8
    confusion = code_counts(codes, 16).reshape(4, 4)
    expected = np.zeros((4, 4), dtype=int)
    np.add.at(expected, (y, p), 1)
    np.testing.assert_array_equal(confusion, expected)
    stacked = code_counts(np.stack([codes, codes[::-1]]), 16)
    np.testing.assert_array_equal(stacked[0], stacked[1])


@pytest.mark.parametrize("k", [2, 3, 5])
def test_vectorised_macro_f1_equals_scikit_learn(k: int) -> None:
    rng = np.random.default_rng(k)
    y = rng.integers(0, k, 300)
    p = np.where(rng.random(300) < 0.7, y, rng.integers(0, k, 300))
    p[p == k - 1] = 0  # one class never predicted: F1 0 for it, as scikit-learn's zero_division
    confusion = code_counts(row_codes(y, p, k=k), k * k).reshape(k, k)
    ours = float(macro_f1_confusion(confusion))
    assert ours == pytest.approx(
        f1_score(y, p, labels=list(range(k)), average="macro", zero_division=0)
    )


def test_macro_f1_interval_on_one_replicate_is_a_row_bootstrap() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 2000)
    p = np.where(rng.random(2000) < 0.9, y, (y + 1) % 3)
    value = f1_score(y, p, average="macro")
    iv = macro_f1_interval([value], [y], [p], 3, CFG)
    assert iv.method == "bootstrap-percentile"
    assert iv.lo < value < iv.hi
    assert iv == macro_f1_interval([value], [y], [p], 3, CFG)
    assert 0.01 < iv.hi - iv.lo < 0.05


def test_macro_f1_difference_paired_bootstrap_and_identical() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 2000)
    ref = np.where(rng.random(2000) < 0.9, y, (y + 1) % 3)
    worse = ref.copy()
    hit = np.flatnonzero(ref == y)[:100]
    worse[hit] = (y[hit] + 2) % 3  # 100 rows broken: about 5 points of macro-F1
    d = 100 * (f1_score(y, worse, average="macro") - f1_score(y, ref, average="macro"))
    iv = macro_f1_difference([d], [y], [ref], [worse], 3, CFG)
    assert iv.method == "bootstrap-percentile"
    assert iv.lo < d < iv.hi < 0
    same = macro_f1_difference([0.0], [y], [ref], [ref.copy()], 3, CFG)
    assert same == Interval(0.0, 0.0, 0.0, "identical")


# ---------------------------------------------------------------------------------------------
# Speed-up


def test_round_ratios_are_ratios_of_round_medians() -> None:
    ratios = round_ratios([[2.0, 4.0, 3.0], [1.0, 1.0, 5.0]], [[1.0, 1.5, 2.0], [2.0, 2.0, 2.0]])
    np.testing.assert_allclose(ratios, [3.0 / 1.5, 1.0 / 2.0])


def test_speedup_is_the_geometric_mean_with_a_seeded_interval() -> None:
    rng = np.random.default_rng(5)
    ratios = 2.4 * rng.lognormal(0, 0.02, 20)
    iv = speedup_interval(ratios, CFG)
    assert iv.estimate == pytest.approx(math.exp(np.mean(np.log(ratios))))
    assert iv.lo < iv.estimate < iv.hi and iv.lo > 1
    assert iv == speedup_interval(ratios, CFG)
    assert speedup_interval(np.full(5, 1.5), CFG) == Interval(1.5, 1.5, 1.5, "constant")
    with pytest.raises(ValueError, match="at least 2 timing rounds"):
        speedup_interval(np.array([1.2]), CFG)


# ---------------------------------------------------------------------------------------------
# Measurable order and Pareto


def test_direction_counts_a_touching_bound_as_containing() -> None:
    assert direction(Interval(0.5, 0.0, 1.0, "t"), 0.0) == 0
    assert direction(Interval(-0.5, -1.0, 0.0, "t"), 0.0) == 0
    assert direction(Interval(0.5, 0.1, 1.0, "t"), 0.0) == 1
    assert direction(Interval(0.9, 0.8, 0.95, "t"), 1.0) == -1


def test_interval_order_needs_disjoint_intervals() -> None:
    a, b = Interval(2.4, 2.3, 2.5, "x"), Interval(2.6, 2.5, 2.7, "x")  # touching at 2.5
    assert interval_order(a, b) == 0
    assert interval_order(Interval(2.8, 2.71, 2.9, "x"), b) == 1
    assert interval_order(a, Interval(3.0, 2.9, 3.1, "x")) == -1


def test_dominance_needs_a_measurable_gain_and_no_measurable_loss() -> None:
    assert dominates(1, 0) and dominates(0, 1) and dominates(1, 1)
    assert not dominates(0, 0)
    assert not dominates(1, -1) and not dominates(-1, 1)


def test_pareto_front_with_intervals() -> None:
    speed = {  # batch-1 speed-up intervals against FP32
        "fp32": Interval(1.0, 1.0, 1.0, "reference"),
        "fast": Interval(2.4, 2.3, 2.5, "x"),  # measurably faster, accuracy as FP32
        "noisy": Interval(1.0, 0.98, 1.03, "x"),  # as fast as FP32, measurably less accurate
        "close": Interval(2.5, 2.35, 2.6, "x"),  # overlaps "fast", measurably less accurate
        "fastest": Interval(3.1, 3.0, 3.2, "x"),  # faster than all, less accurate than "fast"
    }
    names = list(speed)
    better = {("fp32", "noisy"), ("fast", "noisy"), ("fast", "close"), ("fast", "fastest")}
    acc = [[1 if (a, b) in better else -1 if (b, a) in better else 0 for b in names] for a in names]
    order = [[interval_order(speed[a], speed[b]) for b in names] for a in names]
    front = [names[i] for i in pareto_front(acc, order)]
    assert front == ["fast", "fastest"]
    # without intervals the noisy point would count as faster than FP32; with them it is not
    assert interval_order(speed["noisy"], speed["fp32"]) == 0


def test_report_config_is_checked() -> None:
    assert ReportConfig.from_dict({"confidence": 0.9}).confidence == 0.9
    with pytest.raises(ValueError, match=r"report\.confidence"):
        ReportConfig(confidence=1.5)
    with pytest.raises(ValueError, match=r"report\.bootstrap_resamples"):
        ReportConfig(bootstrap_resamples=10)
    with pytest.raises(ValueError, match=r"report\.level: unknown key"):
        ReportConfig.from_dict({"level": 0.9})


def test_accuracy_interval_stays_within_zero_and_one() -> None:
    rng = np.random.default_rng(0)
    # replicates at 0.99, 0.75 and 0.98: the raw t-interval reaches past 1
    correct = [rng.random(2000) < p for p in (0.99, 0.75, 0.98)]
    raw = t_interval([float(c.mean()) for c in correct], 0.95)
    assert raw.hi > 1
    iv = accuracy_interval(correct, 0.95)
    assert iv.hi == 1.0 and iv.lo == pytest.approx(raw.lo) and iv.method == "t"
