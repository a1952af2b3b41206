"""Which method to deploy, per model, for the configured goal and accuracy bound.

A method qualifies when its accuracy drop against FP32 at the upper end of its interval is
within ``max_accuracy_drop`` points, and no replicate that is significantly worse on its own
(exact McNemar, Holm-corrected; see ``replicates``) dropped by more; FP32 always qualifies and is
the fallback. Among the
qualifying ones the goal decides: ``size`` the smallest checkpoint file, ``latency`` the best
batch-1 speed-up, ``throughput`` the best full-batch speed-up. A speed goal picks only a method
whose speed-up interval lies above 1, else FP32. When the best and the runner-up are not
measurably different on the goal (equal size, overlapping speed-up intervals) both are named.
Every method not chosen is listed with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quantbench.report.facts import REFERENCE
from quantbench.report.metrics import Metrics
from quantbench.report.order import interval_order
from quantbench.report.stats import from_section
from quantbench.report.tables import as_interval
from quantbench.report.wording import NO_CHANGE, NO_DIFFERENCE, fixed, interval_text, ratio_text

GOALS = ("size", "latency", "throughput")
_SPEED_KEY = {"latency": "batch_1", "throughput": "batch_n"}


@dataclass(frozen=True)
class RecommendConfig:
    """The config's ``recommend`` block."""

    goal: str = "size"
    max_accuracy_drop: float = 0.5

    def __post_init__(self) -> None:
        if self.goal not in GOALS:
            raise ValueError(f"recommend.goal must be one of {', '.join(GOALS)}, got {self.goal!r}")
        if not float(self.max_accuracy_drop) >= 0:
            raise ValueError(
                f"recommend.max_accuracy_drop must be >= 0 points, got {self.max_accuracy_drop}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RecommendConfig:
        return from_section(cls, values, "recommend")


def _name(r: Metrics) -> str:
    return "FP32" if r["method"] == REFERENCE else f"`{r['method']}`"


def _accuracy_text(r: Metrics) -> str:
    """``accuracy worse by 0.8 pt [0.5, 1.1]``, or the difference itself when not measurable."""
    d = r["vs_fp32"]["accuracy_diff_pt"]
    if d["verdict"] != NO_CHANGE:
        return f"accuracy {d['verdict']}"
    return f"Δ accuracy {interval_text(as_interval(d), 2, null=0.0)} pt ({d['verdict']})"


def _speed(r: Metrics, goal: str) -> dict[str, Any]:
    return r["speedup"][_SPEED_KEY[goal]]


def _speed_text(r: Metrics, goal: str) -> str:
    """``faster 2.43× [2.38, 2.49] at batch 512``, or the ratio itself when not measurable."""
    s = _speed(r, goal)
    if s["verdict"] != NO_DIFFERENCE:
        return f"{s['verdict']} at batch {s['batch']}"
    return f"{ratio_text(as_interval(s))}× at batch {s['batch']} ({s['verdict']})"


def _size_text(r: Metrics) -> str:
    return f"{fixed(r['size_kb'], 1)} KB (compression {fixed(r['compression'], 2)}×)"


def accuracy_drop(r: Metrics) -> tuple[float, bool]:
    """(the drop the bound is held against, whether a replicate set it): the upper end of the
    interval's drop, or the largest drop of a significantly worse replicate where that is more."""
    vs = r["vs_fp32"]
    upper, worst = vs["accuracy_drop_upper_pt"], vs["replicates"]["largest_significant_drop_pt"]
    if worst is not None and worst > upper:
        return worst, True
    return upper, False


def split_by_accuracy(
    records: Sequence[Metrics], bound: float
) -> tuple[list[Metrics], list[dict[str, str]]]:
    """(qualifying records, FP32 first; ruled-out methods with the reason)."""
    qualified, ruled_out = [records[0]], []
    for r in records[1:]:
        drop, by_replicate = accuracy_drop(r)
        if drop <= bound:
            qualified.append(r)
            continue
        reach = "reached" if by_replicate else "may reach"
        where = " in a significantly worse replicate" if by_replicate else ""
        ruled_out.append(
            {
                "method": r["method"],
                "reason": f"{_accuracy_text(r)}: the drop {reach} {fixed(drop, 2)} pt{where}, "
                f"beyond the {bound:g} pt bound",
            }
        )
    return qualified, ruled_out


def _ties(choice: Metrics, ranked: Sequence[Metrics], same: Any) -> list[Metrics]:
    return [r for r in ranked if r is not choice and same(choice, r)]


def choose_size(qualified: Sequence[Metrics]) -> tuple[Metrics, list[Metrics], list[dict]]:
    """(smallest checkpoint, those of equal size, the others with the reason)."""
    ranked = sorted(qualified, key=lambda r: r["size_bytes"])  # stable: FP32, then by name
    choice = ranked[0]
    ties = _ties(choice, ranked, lambda a, b: a["size_bytes"] == b["size_bytes"])
    others = [
        {
            "method": r["method"],
            "reason": f"not measurably different from {_name(choice)} on size: both {_size_text(r)}"
            if r in ties
            else f"larger checkpoint: {_size_text(r)} against {_size_text(choice)}",
        }
        for r in ranked[1:]
    ]
    return choice, ties, others


def choose_speed(
    qualified: Sequence[Metrics], goal: str
) -> tuple[Metrics, list[Metrics], list[dict]]:
    """(fastest measurably faster method or FP32, those not measurably different from it,
    the others with the reason)."""
    faster = [r for r in qualified[1:] if _speed(r, goal)["verdict"].startswith("faster")]
    others = [
        {"method": r["method"], "reason": f"not measurably faster: {_speed_text(r, goal)}"}
        for r in qualified[1:]
        if r not in faster
    ]
    if not faster:
        return qualified[0], [], others
    ranked = sorted(faster, key=lambda r: -_speed(r, goal)["estimate"])
    choice = ranked[0]

    def same(a: Metrics, b: Metrics) -> bool:
        return interval_order(as_interval(_speed(a, goal)), as_interval(_speed(b, goal))) == 0

    ties = _ties(choice, ranked, same)
    for r in ranked[1:]:
        why = "not measurably different from" if r in ties else "less speed-up than"
        versus = f"{_speed_text(r, goal)} against {_speed_text(choice, goal)}"
        reason = f"{why} {_name(choice)}: {versus}"
        others.append({"method": r["method"], "reason": reason})
    others.append({"method": REFERENCE, "reason": f"{_name(choice)} is measurably faster"})
    return choice, ties, others


def _choice_sentence(choice: Metrics, ties: Sequence[Metrics], cfg: RecommendConfig) -> str:
    if cfg.goal == "size":
        why = f"the smallest checkpoint within the accuracy bound, {_size_text(choice)}"
    else:
        s = _speed(choice, cfg.goal)
        why = f"the best batch-{s['batch']} speed-up within the accuracy bound, {s['verdict']}"
        why += " than FP32"
    text = f"Use {_name(choice)}: {why}; {_accuracy_text(choice)}."
    if ties:
        names = ", ".join(_name(r) for r in ties)
        text += (
            f" {names} {'is' if len(ties) == 1 else 'are'} not measurably different on "
            f"{cfg.goal}: {_name(choice)} or {names} serve equally."
        )
    return text


def _fallback_sentence(
    qualified: Sequence[Metrics], records: Sequence[Metrics], cfg: RecommendConfig
) -> str:
    if len(records) == 1:
        return "Keep FP32: this run has no quantized method."
    if len(qualified) == 1:
        return (
            f"Keep FP32: nothing qualifies; no method keeps the accuracy drop within "
            f"{cfg.max_accuracy_drop:g} pt at the upper end of its interval and in every "
            "replicate."
        )
    if cfg.goal == "size":
        return "Keep FP32: no method within the accuracy bound has a smaller checkpoint."
    batch = _speed(qualified[1], cfg.goal)["batch"]
    return f"Keep FP32: no method within the accuracy bound is measurably faster at batch {batch}."


def _figures(r: Metrics) -> dict[str, Any]:
    vs = r["vs_fp32"]
    return {
        "size_bytes": r["size_bytes"],
        "size_kb": r["size_kb"],
        "compression": r["compression"],
        "accuracy": r["accuracy"],
        "accuracy_diff_pt": vs["accuracy_diff_pt"] if vs else None,
        "accuracy_drop_upper_pt": vs["accuracy_drop_upper_pt"] if vs else None,
        "speedup": r["speedup"],
    }


def recommend_model(records: Sequence[Metrics], cfg: RecommendConfig) -> dict[str, Any]:
    """The recommendation for one model (records FP32 first)."""
    qualified, ruled_out = split_by_accuracy(records, cfg.max_accuracy_drop)
    if cfg.goal == "size":
        choice, ties, others = choose_size(qualified)
    else:
        choice, ties, others = choose_speed(qualified, cfg.goal)
    if choice["method"] == REFERENCE:
        sentence = _fallback_sentence(qualified, records, cfg)
    else:
        sentence = _choice_sentence(choice, ties, cfg)
    return {
        "model": records[0]["model"],
        "choice": choice["method"],
        "sentence": sentence,
        "figures": _figures(choice),
        "not_measurably_different": [r["method"] for r in ties],
        "nothing_qualifies": len(records) > 1 and len(qualified) == 1,
        "qualified": [r["method"] for r in qualified],
        "ruled_out": ruled_out + others,
    }


def recommendation(by_model: dict[str, list[Metrics]], cfg: RecommendConfig) -> dict[str, Any]:
    """recommendation.json: the criteria and one recommendation per model."""
    return {
        "format": "quantbench-recommendation",
        "version": 1,
        "goal": cfg.goal,
        "max_accuracy_drop_pt": cfg.max_accuracy_drop,
        "confidence": next(iter(by_model.values()))[0]["confidence"],
        "models": [recommend_model(rs, cfg) for rs in by_model.values()],
    }


def render_recommendation(rec: dict[str, Any]) -> list[str]:
    """The Markdown section at the top of summary.md."""
    lines = [
        "## Recommendation",
        "",
        f"Goal: {rec['goal']}. A method qualifies when its accuracy drop against FP32 at the "
        f"upper end of its interval is at most {rec['max_accuracy_drop_pt']:g} pt, and so is "
        "the drop of every replicate significantly worse on its own; FP32 is the fallback.",
        "",
    ]
    multi = len(rec["models"]) > 1
    for m in rec["models"]:
        where = f"model `{m['model']}`: " if multi else ""
        lines.append(f"- {where}**{m['sentence']}**")
        lines += [f"  - {_md_name(o['method'])} not chosen: {o['reason']}." for o in m["ruled_out"]]
    return lines


def _md_name(method: str) -> str:
    return "FP32" if method == REFERENCE else f"`{method}`"
