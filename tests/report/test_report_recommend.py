"""The recommendation: qualifying, ruled out, nothing qualifies, not measurably different."""

from __future__ import annotations

from typing import Any

import pytest

from quantbench.report.recommend import (
    RecommendConfig,
    recommend_model,
    recommendation,
    render_recommendation,
)
from quantbench.report.stats import Interval
from quantbench.report.wording import accuracy_verdict, speed_verdict

Span = tuple[float, float, float]


def speed(span: Span, batch: int) -> dict[str, Any]:
    iv = Interval(*span, "bootstrap-bca")
    return {**iv.to_json(), "batch": batch, "round_ratios": [], "verdict": speed_verdict(iv)}


def record(
    method: str, size: int, diff: Span | None = None, s1: Span = (1.0, 0.98, 1.02),
    sn: Span = (1.0, 0.98, 1.02), worst_replicate_drop: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The fields of a metrics record that the recommendation reads."""
    vs = None
    if diff is not None:
        iv = Interval(*diff, "t")
        vs = {
            "accuracy_diff_pt": {**iv.to_json(), "verdict": accuracy_verdict(iv)},
            "accuracy_drop_upper_pt": -iv.lo,
            "replicates": {"largest_significant_drop_pt": worst_replicate_drop},
        }
    return {
        "model": "mlp", "method": method, "kind": method, "confidence": 0.95,
        "size_bytes": size, "size_kb": size / 1024, "compression": 290_000 / size,
        "accuracy": {"estimate": 0.91, "ci": [0.90, 0.92], "method": "t"}, "vs_fp32": vs,
        "speedup": {"batch_1": speed(s1, 1), "batch_n": speed(sn, 512)},
    }  # fmt: skip


FP32 = record("fp32", 290_000, s1=(1.0, 1.0, 1.0), sn=(1.0, 1.0, 1.0))
SIZE = RecommendConfig(goal="size", max_accuracy_drop=0.5)


def reasons(result: dict[str, Any]) -> dict[str, str]:
    return {o["method"]: o["reason"] for o in result["ruled_out"]}


def test_a_replicate_that_dropped_beyond_the_bound_rules_a_method_out() -> None:
    records = [
        FP32,
        record("rtn_w4", 41_000, diff=(-0.2, -0.4, -0.05), worst_replicate_drop=0.8),
        record("gptq_w4", 41_200, diff=(-0.2, -0.4, -0.05), worst_replicate_drop=0.45),
    ]
    result = recommend_model(records, SIZE)
    assert result["choice"] == "gptq_w4" and result["qualified"] == ["fp32", "gptq_w4"]
    assert reasons(result)["rtn_w4"] == (
        "accuracy worse by 0.2 pt [0.1, 0.4]: the drop reached 0.80 pt in a significantly "
        "worse replicate, beyond the 0.5 pt bound"
    )


def test_smallest_qualifying_method_for_size() -> None:
    records = [
        FP32,
        record("ptq_static", 76_800, diff=(-0.1, -0.3, 0.1)),
        record("rtn_w4", 41_000, diff=(-0.2, -0.4, -0.05)),  # worse, but within 0.5 at worst
        record("rtn_w2", 24_000, diff=(-3.1, -3.6, -2.6)),
    ]
    result = recommend_model(records, SIZE)
    assert result["choice"] == "rtn_w4" and not result["nothing_qualifies"]
    assert result["qualified"] == ["fp32", "ptq_static", "rtn_w4"]
    assert result["figures"]["size_bytes"] == 41_000
    why = reasons(result)
    assert set(why) == {"fp32", "ptq_static", "rtn_w2"}  # every other method, with a reason
    assert "may reach 3.60 pt, beyond the 0.5 pt bound" in why["rtn_w2"]
    assert why["ptq_static"].startswith("larger checkpoint: 75.0 KB")
    assert result["sentence"].startswith("Use `rtn_w4`: the smallest checkpoint")
    assert result["sentence"].endswith("; accuracy worse by 0.2 pt [0.1, 0.4].")


def test_the_bound_is_judged_at_the_upper_end_of_the_drop() -> None:
    # estimate 0.3 pt drop is inside the bound, but the interval reaches 0.7 pt
    records = [FP32, record("qat", 76_900, diff=(-0.3, -0.7, 0.1))]
    result = recommend_model(records, SIZE)
    assert result["choice"] == "fp32" and result["nothing_qualifies"]
    assert "nothing qualifies" in result["sentence"]
    assert "may reach 0.70 pt" in reasons(result)["qat"]


def test_a_drop_exactly_at_the_bound_qualifies() -> None:
    result = recommend_model([FP32, record("qat", 76_900, diff=(-0.2, -0.5, 0.1))], SIZE)
    assert result["choice"] == "qat"


def test_equal_sizes_are_named_together() -> None:
    records = [
        FP32,
        record("gptq_w4", 41_000, diff=(0.0, -0.1, 0.1)),
        record("rtn_w4", 41_000, diff=(-0.1, -0.2, 0.0)),
    ]
    result = recommend_model(records, SIZE)
    assert result["choice"] == "gptq_w4" and result["not_measurably_different"] == ["rtn_w4"]
    assert "`rtn_w4` is not measurably different on size" in result["sentence"]
    assert reasons(result)["rtn_w4"].startswith("not measurably different from `gptq_w4`")


def test_speed_goal_picks_only_a_measurably_faster_method() -> None:
    goal = RecommendConfig(goal="throughput", max_accuracy_drop=0.5)
    records = [
        FP32,
        record("gptq_w4", 41_200, diff=(0.0, -0.1, 0.1), sn=(1.03, 0.99, 1.07)),
        record("ptq_static", 76_800, diff=(-0.1, -0.3, 0.1), sn=(2.43, 2.38, 2.49)),
        record("ptq_dynamic", 75_500, diff=(-0.1, -0.3, 0.1), sn=(1.40, 1.35, 1.45)),
    ]
    result = recommend_model(records, goal)
    assert result["choice"] == "ptq_static" and result["not_measurably_different"] == []
    assert "faster 2.43× [2.38, 2.49]" in result["sentence"]
    why = reasons(result)
    assert why["gptq_w4"].startswith("not measurably faster: 1.03 [0.99, 1.07]×")
    assert why["ptq_dynamic"].startswith("less speed-up than `ptq_static`")
    assert why["fp32"] == "`ptq_static` is measurably faster"


def test_speed_goal_falls_back_to_fp32() -> None:
    goal = RecommendConfig(goal="latency", max_accuracy_drop=0.5)
    records = [FP32, record("gptq_w4", 41_200, diff=(0.0, -0.1, 0.1), s1=(1.02, 1.0, 1.04))]
    result = recommend_model(records, goal)  # an interval touching 1.0 is not faster
    assert result["choice"] == "fp32" and not result["nothing_qualifies"]
    assert result["sentence"] == (
        "Keep FP32: no method within the accuracy bound is measurably faster at batch 1."
    )
    assert "no measurable difference" in reasons(result)["gptq_w4"]


def test_overlapping_speed_ups_are_not_measurably_different() -> None:
    goal = RecommendConfig(goal="throughput", max_accuracy_drop=0.5)
    records = [
        FP32,
        record("ptq_static", 76_800, diff=(-0.1, -0.3, 0.1), sn=(2.43, 2.38, 2.49)),
        record("qat", 76_900, diff=(0.0, -0.2, 0.2), sn=(2.40, 2.33, 2.45)),
    ]
    result = recommend_model(records, goal)
    assert result["choice"] == "ptq_static" and result["not_measurably_different"] == ["qat"]
    assert "`qat` is not measurably different on throughput" in result["sentence"]
    assert "`ptq_static` or `qat` serve equally" in result["sentence"]


def test_a_run_with_fp32_alone() -> None:
    result = recommend_model([FP32], SIZE)
    assert result["choice"] == "fp32" and result["ruled_out"] == []
    assert result["sentence"] == "Keep FP32: this run has no quantized method."


def test_recommendation_json_and_markdown() -> None:
    records = [FP32, record("rtn_w2", 24_000, diff=(-3.1, -3.6, -2.6))]
    rec = recommendation({"mlp": records}, SIZE)
    assert (rec["format"], rec["goal"], rec["max_accuracy_drop_pt"]) == (
        "quantbench-recommendation", "size", 0.5
    )  # fmt: skip
    lines = render_recommendation(rec)
    assert lines[0] == "## Recommendation"
    assert lines[4].startswith("- **Keep FP32: nothing qualifies")
    assert lines[5] == (
        "  - `rtn_w2` not chosen: accuracy worse by 3.1 pt [2.6, 3.6]: the drop may reach "
        "3.60 pt, beyond the 0.5 pt bound."
    )


def test_recommend_config_is_checked() -> None:
    assert RecommendConfig.from_dict({"goal": "latency"}).max_accuracy_drop == 0.5
    with pytest.raises(ValueError, match=r"recommend\.goal must be one of size, latency"):
        RecommendConfig(goal="speed")
    with pytest.raises(ValueError, match=r"recommend\.max_accuracy_drop must be >= 0"):
        RecommendConfig(max_accuracy_drop=-1)
    with pytest.raises(ValueError, match=r"recommend\.bound: unknown key"):
        RecommendConfig.from_dict({"bound": 1})
