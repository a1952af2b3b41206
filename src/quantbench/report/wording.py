"""Numbers and verdicts in words, the same in tables, plots, metrics JSON and recommendation.

A difference whose interval contains the null value (0 points for accuracy, 1.0 for a speed
ratio; touching counts as containing) is never called better, worse, faster or slower. Bounds are
printed with as many places as it takes to keep a measurable bound off the null value, so a
"faster" interval never reads [1.00, ...] and a "worse" one never [0.0, ...].
"""

from __future__ import annotations

from collections.abc import Sequence

from quantbench.report.order import rounds_beyond, speed_direction
from quantbench.report.replicates import ReplicateEvidence
from quantbench.report.stats import Interval

NO_CHANGE = "no measurable change"
NO_DIFFERENCE = "no measurable difference"
REFERENCE = "reference"
INCONSISTENT = "inconsistent across replicates"
_FROM_REPLICATES = ("worse in ", "better in ", INCONSISTENT)
_MAX_PLACES = 12


def number(value: float, places: int) -> str:
    """``value`` with ``places`` decimals; never "-0.00" for a value that rounds to zero."""
    text = f"{value:.{places}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fixed(value: float | None, decimals: int) -> str:
    """``value`` with ``decimals`` places, more where that would print a non-zero value as 0."""
    if value is None:
        return ""
    places = decimals
    while value != 0 and round(abs(value), places) == 0 and places < _MAX_PLACES:
        places += 1
    return number(value, places)


def places_off(value: float, null: float, decimals: int) -> int:
    """Places (at least ``decimals``) at which ``value`` does not print as ``null``."""
    places = decimals
    while value != null and round(value, places) == null and places < _MAX_PLACES:
        places += 1
    return places


def interval_text(interval: Interval, decimals: int, null: float | None = None) -> str:
    """``estimate [lo, hi]``, e.g. ``0.9132 [0.9110, 0.9154]``; when the interval excludes
    ``null``, with enough places that neither bound prints as ``null``."""
    places = decimals
    if null is not None and not interval.contains(null):
        places = max(places_off(v, null, decimals) for v in (interval.lo, interval.hi))
    e, lo, hi = (number(v, places) for v in (interval.estimate, interval.lo, interval.hi))
    return f"{e} [{lo}, {hi}]"


def _range_text(lo: float, hi: float, decimals: int, suffix: str) -> str:
    """``(-20.5 … -0.3 pt)``: a range of per-replicate (or per-round) figures."""
    return f"({fixed(lo, decimals)} … {fixed(hi, decimals)}{suffix})"


def _replicate_verdict(side: int, ev: ReplicateEvidence, decimals: int) -> str | None:
    """The verdict the replicates force, or None where they agree with the interval's ``side``.

    Replicates significant in both directions, or one significant against the interval's
    direction, are inconsistent; with the interval containing 0, significant replicates of one
    direction are counted ("worse in 2 of 3 replicates"). With one replicate its exact interval
    already is its evidence.
    """
    if ev.of < 2:
        return None
    span = _range_text(*ev.diff_range, decimals, " pt")
    if ev.worse and ev.better:
        counts = f"worse in {ev.worse}, better in {ev.better} of {ev.of}"
        return f"{INCONSISTENT}: {counts} {span}"
    against = ev.better if side < 0 else ev.worse if side > 0 else 0
    if against:
        said, found = ("worse", "better") if side < 0 else ("better", "worse")
        return f"{INCONSISTENT}: the interval reads {said}, {against} of {ev.of} {found} {span}"
    if side != 0 or not (ev.worse or ev.better):
        return None
    word, k = ("worse", ev.worse) if ev.worse else ("better", ev.better)
    count = f"all {ev.of}" if k == ev.of else f"{k} of {ev.of}"
    return f"{word} in {count} replicates {span}"


def from_replicates(verdict: str) -> bool:
    """Whether an accuracy verdict is the replicates' own (they overruled the interval)."""
    return verdict.startswith(_FROM_REPLICATES)


def accuracy_verdict(
    diff_pt: Interval, decimals: int = 1, evidence: ReplicateEvidence | None = None
) -> str:
    """``no measurable change``, ``worse by 0.8 pt [0.5, 1.1]`` or ``better by 0.3 pt [0.1, 0.5]``.

    ``diff_pt`` is candidate - reference in points; "worse by" states the drop and its interval.
    ``evidence`` (see ``replicates``) can overrule the interval of the mean, never the other way:
    when it contains 0 but replicates are significantly worse (or better) on their own, the
    verdict counts them, ``worse in 2 of 3 replicates (-20.5 … -0.3 pt)`` with the range of every
    replicate's difference; when replicates are significant in opposite directions, or against
    the interval, it reads ``inconsistent across replicates: ...``.
    """
    side = 0 if diff_pt.contains(0.0) else (-1 if diff_pt.hi < 0 else 1)
    forced = None if evidence is None else _replicate_verdict(side, evidence, decimals)
    if forced is not None:
        return forced
    if side == 0:
        return NO_CHANGE
    if side < 0:
        word, est, lo, hi = "worse", -diff_pt.estimate, -diff_pt.hi, -diff_pt.lo
    else:
        word, est, lo, hi = "better", diff_pt.estimate, diff_pt.lo, diff_pt.hi
    p = places_off(lo, 0.0, decimals)  # lo is the bound nearest 0
    return f"{word} by {number(est, p)} pt [{number(lo, p)}, {number(hi, p)}]"


def speed_verdict(
    ratio: Interval, noise: float = 0.0, decimals: int = 2, rounds: Sequence[float] = ()
) -> str:
    """``no measurable difference``, ``faster 2.43× [2.38, 2.49]`` or ``slower 0.50× [0.48, 0.52]``.

    A ratio is faster or slower only when its whole interval clears the noise band
    [1/(1+noise), 1+noise] (see ``ReportConfig.speed_noise``), and when the timing rounds that
    leave the band (``rounds``: the per-round ratios) mostly leave it on that side; otherwise a
    few extreme rounds carry the mean and the verdict reads ``inconsistent across timing
    rounds``. Bounds get more places where two would print a bound that excludes 1.0 as 1.00.
    """
    side = speed_direction(ratio, noise)
    if side == 0:
        return NO_DIFFERENCE
    up, down = rounds_beyond(rounds, noise)
    same, against = (up, down) if side > 0 else (down, up)
    if against and against >= same:
        span = _range_text(min(rounds), max(rounds), decimals, "×")
        return (
            f"inconsistent across timing rounds: faster in {up}, slower in {down} of "
            f"{len(rounds)} beyond the noise band {span}"
        )
    word, near = ("faster", ratio.lo) if side > 0 else ("slower", ratio.hi)
    p = places_off(near, 1.0, decimals)
    est, lo, hi = (number(v, p) for v in (ratio.estimate, ratio.lo, ratio.hi))
    return f"{word} {est}× [{lo}, {hi}]"


def ratio_text(ratio: Interval, decimals: int = 2) -> str:
    """``2.43 [2.38, 2.49]``: a ratio with its interval, bounds kept off 1.0 when it excludes it."""
    return interval_text(ratio, decimals, null=1.0)
