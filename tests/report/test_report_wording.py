"""Verdicts in words and the printed places of numbers and intervals."""

from __future__ import annotations

import pytest

from quantbench.report.replicates import ReplicateEvidence
from quantbench.report.stats import Interval
from quantbench.report.wording import (
    NO_CHANGE,
    NO_DIFFERENCE,
    accuracy_verdict,
    fixed,
    interval_text,
    number,
    ratio_text,
    speed_verdict,
)


def iv(estimate: float, lo: float, hi: float) -> Interval:
    return Interval(estimate, lo, hi, "t")


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (iv(-0.8, -1.1, -0.5), "worse by 0.8 pt [0.5, 1.1]"),
        (iv(0.3, 0.1, 0.5), "better by 0.3 pt [0.1, 0.5]"),
        (iv(-0.06, -0.2, 0.08), NO_CHANGE),
        (iv(-0.5, -1.0, 0.0), NO_CHANGE),  # touching zero is containing it
        (iv(0.5, 0.0, 1.0), NO_CHANGE),
        (iv(0.0, 0.0, 0.0), NO_CHANGE),  # identical predictions
        (iv(-0.02, -0.04, -0.004), "worse by 0.020 pt [0.004, 0.040]"),  # never "[0.0, ...]"
        (iv(-4.03, -4.37, -3.68), "worse by 4.0 pt [3.7, 4.4]"),
    ],
)
def test_accuracy_verdict(interval: Interval, text: str) -> None:
    assert accuracy_verdict(interval) == text


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (iv(2.43, 2.38, 2.49), "faster 2.43× [2.38, 2.49]"),
        (iv(0.5, 0.48, 0.52), "slower 0.50× [0.48, 0.52]"),
        (iv(1.02, 0.98, 1.05), NO_DIFFERENCE),
        (iv(1.02, 1.0, 1.05), NO_DIFFERENCE),  # touching 1.0 is containing it
        (iv(0.97, 0.95, 1.0), NO_DIFFERENCE),
        (iv(1.0, 1.0, 1.0), NO_DIFFERENCE),
        (iv(1.01, 1.004, 1.02), "faster 1.010× [1.004, 1.020]"),  # never "[1.00, ...]"
        (iv(0.99, 0.98, 0.9996), "slower 0.9900× [0.9800, 0.9996]"),
    ],
)
def test_speed_verdict(interval: Interval, text: str) -> None:
    assert speed_verdict(interval) == text


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (iv(1.025, 1.01, 1.04), NO_DIFFERENCE),  # excludes 1 but reaches into 1 ± 3 %
        (iv(1.05, 1.031, 1.07), "faster 1.05× [1.03, 1.07]"),
        (iv(0.975, 0.96, 0.99), NO_DIFFERENCE),
        (iv(0.95, 0.93, 0.9710), NO_DIFFERENCE),  # 1 / 1.03 = 0.97087: reaches into the band
        (iv(0.95, 0.93, 0.9705), "slower 0.95× [0.93, 0.97]"),
        (iv(2.43, 2.38, 2.49), "faster 2.43× [2.38, 2.49]"),
    ],
)
def test_speed_verdict_needs_the_interval_to_clear_the_noise_band(interval, text) -> None:
    assert speed_verdict(interval, noise=0.03) == text


def test_interval_texts_keep_measurable_bounds_off_the_null_value() -> None:
    assert interval_text(iv(0.9132, 0.911, 0.9154), 4) == "0.9132 [0.9110, 0.9154]"
    assert interval_text(iv(-0.139, -0.277, -0.001), 2, null=0.0) == "-0.139 [-0.277, -0.001]"
    assert interval_text(iv(-0.06, -0.2, 0.08), 2, null=0.0) == "-0.06 [-0.20, 0.08]"
    assert ratio_text(iv(1.0, 0.9997, 1.003)) == "1.00 [1.00, 1.00]"  # contains 1: no more places
    assert ratio_text(iv(1.01, 1.004, 1.02)) == "1.010 [1.004, 1.020]"


def test_no_negative_zero() -> None:
    assert number(-1e-17, 2) == "0.00"
    assert number(-0.004, 2) == "0.00"
    assert number(-0.006, 2) == "-0.01"
    assert interval_text(iv(-1e-17, -0.07, 0.07), 2, null=0.0) == "0.00 [-0.07, 0.07]"


def test_small_values_never_print_as_zero() -> None:
    assert fixed(40 / 1024, 1) == "0.04"
    assert fixed(0.0004, 3) == "0.0004"
    assert fixed(0.0, 2) == "0.00"
    assert fixed(None, 2) == ""


def evidence(diffs: list[float], signs: list[int]) -> ReplicateEvidence:
    return ReplicateEvidence(tuple(diffs), tuple(0.5 for _ in diffs), tuple(signs), 0.05)


def test_replicates_overrule_an_interval_that_spans_zero() -> None:
    wide = iv(-11.43, -36.88, 14.01)
    per_rep = [-13.5, -0.3, -20.5]
    assert accuracy_verdict(wide, evidence=evidence(per_rep, [-1, 0, -1])) == (
        "worse in 2 of 3 replicates (-20.5 … -0.3 pt)"
    )
    assert accuracy_verdict(wide, evidence=evidence(per_rep, [-1, -1, -1])) == (
        "worse in all 3 replicates (-20.5 … -0.3 pt)"
    )
    assert accuracy_verdict(iv(2.0, -1.0, 5.0), evidence=evidence([1, 3], [1, 0])) == (
        "better in 1 of 2 replicates (1.0 … 3.0 pt)"
    )
    assert accuracy_verdict(wide, evidence=evidence(per_rep, [0, 0, 0])) == NO_CHANGE
    # a range value that rounds to zero keeps its places instead of printing 0.0
    assert accuracy_verdict(wide, evidence=evidence([-9.0, -0.03], [-1, 0])) == (
        "worse in 1 of 2 replicates (-9.0 … -0.03 pt)"
    )


def test_replicates_in_opposite_directions_are_inconsistent() -> None:
    split = evidence([-12.0, 0.1, 9.5], [-1, 0, 1])
    assert accuracy_verdict(iv(-0.8, -25.0, 23.0), evidence=split) == (
        "inconsistent across replicates: worse in 1, better in 1 of 3 (-12.0 … 9.5 pt)"
    )
    # the interval reads worse, but one replicate is significantly better on its own
    against = evidence([-10.0, -11.0, 1.5], [-1, -1, 1])
    assert accuracy_verdict(iv(-6.5, -9.0, -4.0), evidence=against).startswith(
        "inconsistent across replicates: worse in 2, better in 1 of 3"
    )
    against = evidence([-10.0, -11.0, 1.5], [0, 0, 1])
    assert accuracy_verdict(iv(-6.5, -9.0, -4.0), evidence=against) == (
        "inconsistent across replicates: the interval reads worse, 1 of 3 better (-11.0 … 1.5 pt)"
    )


def test_replicates_that_agree_keep_the_interval_wording() -> None:
    drop = iv(-0.8, -1.1, -0.5)
    for signs in ([-1, -1, -1], [0, -1, 0], [0, 0, 0]):
        assert accuracy_verdict(drop, evidence=evidence([-0.7, -0.8, -0.9], signs)) == (
            "worse by 0.8 pt [0.5, 1.1]"
        )
    # one replicate: its exact interval already is its evidence
    assert accuracy_verdict(iv(-0.3, -0.9, 0.2), evidence=evidence([-0.3], [-1])) == NO_CHANGE


def test_speed_verdict_needs_the_rounds_that_leave_the_band_on_its_side() -> None:
    fast = iv(1.2, 1.1, 1.3)
    assert speed_verdict(fast, 0.03, rounds=[1.2, 1.25, 1.1, 0.9]) == "faster 1.20× [1.10, 1.30]"
    assert speed_verdict(fast, 0.03, rounds=[1.01, 1.0, 1.01]) == "faster 1.20× [1.10, 1.30]"
    # two extreme rounds carry the mean while as many rounds are slower beyond the band
    skewed = [3.0, 2.5, 0.9, 0.95, 1.0]
    assert speed_verdict(fast, 0.03, rounds=skewed) == (
        "inconsistent across timing rounds: faster in 2, slower in 2 of 5 beyond the noise band "
        "(0.90 … 3.00×)"
    )
    slow = iv(0.8, 0.7, 0.9)
    assert speed_verdict(slow, 0.03, rounds=[0.5, 1.2]).startswith("inconsistent")
    assert speed_verdict(slow, 0.03, rounds=[0.5, 0.6, 1.2]) == "slower 0.80× [0.70, 0.90]"
