"""Which method to deploy, per model, for the configured goal and accuracy bound.

A method qualifies when its accuracy drop against FP32 at the upper end of its interval is
within ``max_accuracy_drop`` points, and no replicate that is significantly worse on its own
(exact McNemar, Holm-corrected; see ``replicates``) dropped by more; FP32 always qualifies and is
the fallback. With several runtimes each (method, runtime) row is judged on its own quality
against FP32 of its runtime: an ONNX Runtime row on its artifact's Δ against FP32's artifact
(the parity check holds that one to torch FP32's predictions). FP32 qualifies in every runtime;
torch FP32 is the fallback, and FP32's artifact is chosen only where the goal prefers it (it is
measurably faster). Among the qualifying ones the goal decides: ``size`` the smallest
checkpoint file, ``latency`` the best batch-1 speed-up, ``throughput`` the best full-batch
speed-up. A speed goal picks only a method whose speed-up interval lies above 1, else FP32.
When the best and the runner-up are not measurably different on the goal (equal size,
overlapping speed-up intervals) both are named. Every method not chosen is listed with the
reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quantbench.report.facts import REFERENCE
from quantbench.report.metrics import Metrics
from quantbench.report.order import interval_order
from quantbench.report.runtimes import RUNTIME_NAMES, TORCH, row_name
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


def _name(r: Metrics, rows: Sequence[Metrics]) -> str:
    """A row's name in a sentence beside ``rows``: torch's named as such when other runtimes'
    rows are among them (`` `rtn_w4` in ONNX Runtime or `rtn_w4` in torch``)."""
    return row_name(r, _several(rows))


def _several(rows: Sequence[Metrics]) -> bool:
    return any(r.get("runtime", TORCH) != TORCH for r in rows)


def _entry(r: Metrics, reason: str) -> dict[str, str]:
    """A ruled-out (method, runtime) with the reason."""
    return {"method": r["method"], "runtime": r.get("runtime", "torch"), "reason": reason}


def _versus(r: Metrics) -> str:
    """The reference of a row's Δ accuracy, named outside torch: `` against FP32 in ONNX
    Runtime``."""
    runtime = r.get("runtime", TORCH)
    return "" if runtime == TORCH else f" against FP32 in {RUNTIME_NAMES[runtime]}"


def _accuracy_text(r: Metrics) -> str:
    """``accuracy worse by 0.8 pt [0.5, 1.1]``, or the difference itself when not measurable;
    an ONNX Runtime row's names its reference, FP32's artifact."""
    if r["vs_fp32"] is None:  # FP32's artifact: the reference of its runtime
        acc = interval_text(as_interval(r["accuracy"]), 4)
        return f"the FP32 model's accuracy, its artifact's own {acc} on the test rows"
    d = r["vs_fp32"]["accuracy_diff_pt"]
    if d["verdict"] != NO_CHANGE:
        return f"accuracy {d['verdict']}{_versus(r)}"
    diff = interval_text(as_interval(d), 2, null=0.0)
    return f"Δ accuracy{_versus(r)} {diff} pt ({d['verdict']})"


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
        if r["vs_fp32"] is None:  # FP32's artifact: the reference of its runtime
            qualified.append(r)
            continue
        drop, by_replicate = accuracy_drop(r)
        if drop <= bound:
            qualified.append(r)
            continue
        reach = "reached" if by_replicate else "may reach"
        where = " in a significantly worse replicate" if by_replicate else ""
        ruled_out.append(
            _entry(
                r,
                f"{_accuracy_text(r)}: the drop {reach} {fixed(drop, 2)} pt{where}, "
                f"beyond the {bound:g} pt bound",
            )
        )
    return qualified, ruled_out


def _ties(choice: Metrics, ranked: Sequence[Metrics], same: Any) -> list[Metrics]:
    return [r for r in ranked if r is not choice and same(choice, r)]


def _fastest_runtime(choice: Metrics, ranked: Sequence[Metrics]) -> Metrics:
    """Among the runtimes of the chosen method (one checkpoint, one size), the one measurably
    faster at batch 1 than the others, else the first."""
    same = [r for r in ranked if r["method"] == choice["method"] and r["speedup"]]
    for r in same:
        others = [o for o in same if o is not r]
        if others and all(
            interval_order(as_interval(_speed(r, "latency")), as_interval(_speed(o, "latency"))) > 0
            for o in others
        ):
            return r
    return choice


def choose_size(qualified: Sequence[Metrics]) -> tuple[Metrics, list[Metrics], list[dict]]:
    """(smallest checkpoint, those of equal size, the others with the reason)."""
    ranked = sorted(qualified, key=lambda r: r["size_bytes"])  # stable: FP32, then by name
    choice = _fastest_runtime(ranked[0], ranked)
    ranked = [choice, *(r for r in ranked if r is not choice)]
    ties = _ties(choice, ranked, lambda a, b: a["size_bytes"] == b["size_bytes"])
    others = [
        _entry(
            r,
            f"not measurably different from {_name(choice, qualified)} on size: both "
            f"{_size_text(r)}"
            if r in ties
            else f"larger checkpoint: {_size_text(r)} against {_size_text(choice)}",
        )
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
        _entry(r, f"not measurably faster: {_speed_text(r, goal)}")
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
        reason = f"{why} {_name(choice, qualified)}: {versus}"
        others.append(_entry(r, reason))
    others.append(_entry(qualified[0], f"{_name(choice, qualified)} is measurably faster"))
    return choice, ties, others


def _choice_sentence(
    choice: Metrics, ties: Sequence[Metrics], cfg: RecommendConfig, rows: Sequence[Metrics]
) -> str:
    if cfg.goal == "size":
        why = f"the smallest checkpoint within the accuracy bound, {_size_text(choice)}"
    else:
        s = _speed(choice, cfg.goal)
        why = f"the best batch-{s['batch']} speed-up within the accuracy bound, {s['verdict']}"
        why += " than torch FP32" if "runtime" in choice else " than FP32"
    text = f"Use {_name(choice, rows)}: {why}; {_accuracy_text(choice)}."
    if ties:
        names = ", ".join(_name(r, rows) for r in ties)
        text += (
            f" {names} {'is' if len(ties) == 1 else 'are'} not measurably different on "
            f"{cfg.goal}: {_name(choice, rows)} or {names} serve equally."
        )
    return text


def _quantized(records: Sequence[Metrics]) -> list[Metrics]:
    """The rows of quantized methods (FP32 in any runtime left out)."""
    return [r for r in records if r["method"] != REFERENCE]


def _keep(choice: Metrics) -> str:
    """``Keep FP32``, naming the runtime when FP32's artifact is measurably the faster one."""
    if choice.get("runtime", TORCH) == TORCH:
        return "Keep FP32"
    where = RUNTIME_NAMES[choice["runtime"]]
    return f"Keep FP32, in {where} ({_speed_text(choice, 'latency')} against torch FP32)"


def _fallback_sentence(
    choice: Metrics, qualified: Sequence[Metrics], records: Sequence[Metrics], cfg: RecommendConfig
) -> str:
    keep = _keep(choice)
    if not _quantized(records):
        return f"{keep}: this run has no quantized method."
    if not _quantized(qualified):
        return (
            f"{keep}: nothing qualifies; no method keeps the accuracy drop within "
            f"{cfg.max_accuracy_drop:g} pt at the upper end of its interval and in every "
            "replicate."
        )
    if cfg.goal == "size":
        return f"{keep}: no method within the accuracy bound has a smaller checkpoint."
    batch = _speed(_quantized(qualified)[0], cfg.goal)["batch"]
    return f"{keep}: no method within the accuracy bound is measurably faster at batch {batch}."


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
        **({"speedup_same_runtime": r["speedup_same_runtime"]} if "runtime" in r else {}),
    }


def _label(r: Metrics) -> str:
    """A (method, runtime) in recommendation.json's lists: the method, ``@runtime`` outside
    torch."""
    runtime = r.get("runtime", "torch")
    return r["method"] if runtime == "torch" else f"{r['method']}@{runtime}"


def recommend_model(records: Sequence[Metrics], cfg: RecommendConfig) -> dict[str, Any]:
    """The recommendation for one model (records FP32 first)."""
    qualified, ruled_out = split_by_accuracy(records, cfg.max_accuracy_drop)
    if cfg.goal == "size":
        choice, ties, others = choose_size(qualified)
    else:
        choice, ties, others = choose_speed(qualified, cfg.goal)
    if choice is records[0] or (choice["method"] == REFERENCE and cfg.goal == "size"):
        sentence = _fallback_sentence(choice, qualified, records, cfg)
    else:
        sentence = _choice_sentence(choice, ties, cfg, records)
        if choice["method"] == REFERENCE and _quantized(records) and not _quantized(qualified):
            sentence += (
                f" No quantized method keeps the accuracy drop within {cfg.max_accuracy_drop:g} "
                "pt at the upper end of its interval and in every replicate."
            )
    return {
        "model": records[0]["model"],
        "choice": choice["method"],
        "runtime": choice.get("runtime", "torch"),
        "sentence": sentence,
        "figures": _figures(choice),
        "not_measurably_different": [_label(r) for r in ties],
        "nothing_qualifies": bool(_quantized(records)) and not _quantized(qualified),
        "qualified": [_label(r) for r in qualified],
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
    several = any("@" in q for m in rec["models"] for q in m["qualified"]) or any(
        o["runtime"] != TORCH for m in rec["models"] for o in m["ruled_out"]
    )
    fallback = (
        "FP32 qualifies in every runtime, and torch FP32 is the fallback. Each (method, "
        "runtime) row is judged on its own quality against FP32 of its runtime: an ONNX Runtime "
        "row on its artifact's predictions against FP32's artifact, which the parity check holds "
        "to torch FP32's."
        if several
        else "FP32 is the fallback."
    )
    lines = [
        "## Recommendation",
        "",
        f"Goal: {rec['goal']}. A method qualifies when its accuracy drop against FP32 at the "
        f"upper end of its interval is at most {rec['max_accuracy_drop_pt']:g} pt, and so is "
        f"the drop of every replicate significantly worse on its own; {fallback}",
        "",
    ]
    multi = len(rec["models"]) > 1
    for m in rec["models"]:
        where = f"model `{m['model']}`: " if multi else ""
        lines.append(f"- {where}**{m['sentence']}**")
        lines += [f"  - {row_name(o, several)} not chosen: {o['reason']}." for o in m["ruled_out"]]
    return lines
