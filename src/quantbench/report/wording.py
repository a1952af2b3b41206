"""Numbers and verdicts in words, the same in tables, plots, metrics JSON and recommendation.

A difference whose interval contains the null value (0 points for accuracy, 1.0 for a speed
ratio; touching counts as containing) is never called better, worse, faster or slower. Bounds are
printed with as many places as it takes to keep a measurable bound off the null value, so a
"faster" interval never reads [1.00, ...] and a "worse" one never [0.0, ...].
"""

from __future__ import annotations

from collections.abc import Sequence

from quantbench.report.stats import Interval, speed_direction

NO_CHANGE = "no measurable change"
NO_DIFFERENCE = "no measurable difference"
REFERENCE = "reference"
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


def accuracy_verdict(
    diff_pt: Interval,
    decimals: int = 1,
    every_replicate: int = 0,
    per_replicate_pt: Sequence[float] = (),
) -> str:
    """``no measurable change``, ``worse by 0.8 pt [0.5, 1.1]`` or ``better by 0.3 pt [0.1, 0.5]``.

    ``diff_pt`` is candidate - reference in points; "worse by" states the drop and its interval.
    When the interval contains 0 but every replicate's own exact test found the same direction
    (``every_replicate``, see ``stats.every_replicate_direction``), the verdict says so with the
    range of the per-replicate differences: ``worse in all 3 replicates, by 0.56 to 17.81 pt``.
    """
    if diff_pt.contains(0.0):
        if every_replicate == 0 or not per_replicate_pt:
            return NO_CHANGE
        word = "worse" if every_replicate < 0 else "better"
        sizes = sorted(abs(v) for v in per_replicate_pt)
        p = places_off(sizes[0], 0.0, decimals + 1)
        return (
            f"{word} in all {len(sizes)} replicates, by {number(sizes[0], p)} to "
            f"{number(sizes[-1], p)} pt (an exact McNemar test in each)"
        )
    if diff_pt.hi < 0:
        word, est, lo, hi = "worse", -diff_pt.estimate, -diff_pt.hi, -diff_pt.lo
    else:
        word, est, lo, hi = "better", diff_pt.estimate, diff_pt.lo, diff_pt.hi
    p = places_off(lo, 0.0, decimals)  # lo is the bound nearest 0
    return f"{word} by {number(est, p)} pt [{number(lo, p)}, {number(hi, p)}]"


def speed_verdict(ratio: Interval, noise: float = 0.0, decimals: int = 2) -> str:
    """``no measurable difference``, ``faster 2.43× [2.38, 2.49]`` or ``slower 0.50× [0.48, 0.52]``.

    A ratio is faster or slower only when its whole interval clears the noise band
    [1/(1+noise), 1+noise] (see ``ReportConfig.speed_noise``). Bounds get more places where two
    would print a bound that excludes 1.0 as 1.00.
    """
    side = speed_direction(ratio, noise)
    if side == 0:
        return NO_DIFFERENCE
    word, near = ("faster", ratio.lo) if side > 0 else ("slower", ratio.hi)
    p = places_off(near, 1.0, decimals)
    est, lo, hi = (number(v, p) for v in (ratio.estimate, ratio.lo, ratio.hi))
    return f"{word} {est}× [{lo}, {hi}]"


def ratio_text(ratio: Interval, decimals: int = 2) -> str:
    """``2.43 [2.38, 2.49]``: a ratio with its interval, bounds kept off 1.0 when it excludes it."""
    return interval_text(ratio, decimals, null=1.0)
