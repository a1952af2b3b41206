"""(method, runtime) pairs: ONNX Runtime speed-ups, the table, the recommendation naming the
runtime and the artifact, from constructed facts."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from quantbench.core.files import write_json
from quantbench.report import build_metrics, summarize
from quantbench.report.stats import ReportConfig
from tests.report_facts import DEFAULT_METHODS, ORT_FP32, write_run

REPORT = {"confidence": 0.95, "bootstrap_resamples": 999, "seed": 0}
BY_NAME = {m.name: m for m in DEFAULT_METHODS}
# ptq_static's artifact: 5x torch FP32 at batch 1 (1.25x FP32's artifact); gptq's: 3x (0.75x)
METHODS = [
    replace(BY_NAME["ptq_static"], ort_1=5.0, ort_n=2.0),
    replace(BY_NAME["gptq_w4"], ort_1=3.0, ort_n=1.2),
]
REPS = ("seed42", "seed43", "seed44")


def _facts(tmp_path: Path):
    return write_run(tmp_path / "facts", METHODS, rows=900, rounds=10, onnxruntime=True)


def test_each_method_gets_speedups_in_its_runtime_and_against_torch_fp32(tmp_path: Path) -> None:
    facts = _facts(tmp_path)
    cfg = ReportConfig.from_dict(REPORT)
    records = {r["method"]: r for r in build_metrics(facts.quality, facts.timing, cfg)["mlp"]}
    ptq = records["ptq_static"]["runtimes"]["onnxruntime"]
    assert ptq["speedup"]["batch_1"]["estimate"] == pytest.approx(5.0 / ORT_FP32[0], rel=0.1)
    assert ptq["speedup_vs_torch_fp32"]["batch_1"]["estimate"] == pytest.approx(5.0, rel=0.1)
    assert ptq["speedup_vs_torch_fp32"]["batch_n"]["estimate"] == pytest.approx(2.0, rel=0.1)
    assert ptq["quantized_ops"] == {"com.microsoft:QGemm": 3}
    gptq = records["gptq_w4"]["runtimes"]["onnxruntime"]
    assert gptq["speedup"]["batch_1"]["verdict"].startswith("slower")
    fp32 = records["fp32"]["runtimes"]["onnxruntime"]
    assert fp32["speedup"]["batch_1"]["estimate"] == 1.0
    assert fp32["speedup_vs_torch_fp32"]["batch_1"]["estimate"] == pytest.approx(4.0, rel=0.1)
    # torch's own figures are untouched by the ONNX Runtime sides
    torch_ratio = records["ptq_static"]["speedup"]["batch_1"]["estimate"]
    assert torch_ratio == pytest.approx(BY_NAME["ptq_static"].speed_1, rel=0.1)


def _parity(rep: str, method: str, agreement: float) -> dict[str, Any]:
    return {
        "format": "quantbench-parity", "version": 1, "model": "mlp", "replicate": rep,
        "method": method, "kind": method, "artifact": f"results/deploy/mlp/{rep}/{method}",
        "rows": 900, "agreement": agreement, "max_abs_logit_diff": 1e-6,
        "artifact_accuracy": 0.9 if method != "fp32" else 0.91, "torch_accuracy": 0.91,
        "nonfinite_logits": 0, "fallbacks": [],
    }  # fmt: skip


def _summarize(tmp_path: Path, failing: str | None = None, goal: str = "latency") -> dict[str, Any]:
    facts = _facts(tmp_path)
    paths = []
    for rep in REPS:
        for method in ("fp32", *(m.name for m in METHODS)):
            path = tmp_path / "parity" / rep / f"{method}.json"
            write_json(path, _parity(rep, method, 0.9 if method == failing else 1.0))
            paths.append(str(path))
    out = tmp_path / "out"
    summarize(
        facts.quality, facts.timing, str(out / "metrics"), str(out / "summary.csv"),
        str(out / "summary.md"), str(out / "recommendation.json"), str(out / "plots"),
        report={**REPORT, "parity": {}}, recommend={"goal": goal, "max_accuracy_drop": 5.0},
        parity_paths=paths,
    )  # fmt: skip
    return {
        "rec": json.loads((out / "recommendation.json").read_text())["models"][0],
        "md": (out / "summary.md").read_text(),
        "csv": list(csv.DictReader(io.StringIO((out / "summary.csv").read_text()))),
    }


def test_recommendation_names_the_runtime_and_the_artifact(tmp_path: Path) -> None:
    out = _summarize(tmp_path)
    rec = out["rec"]
    assert (rec["choice"], rec["runtime"]) == ("ptq_static", "onnxruntime")
    assert rec["artifact"] == "results/deploy/mlp/seed42/ptq_static/model.onnx"
    assert "`ptq_static` in ONNX Runtime" in rec["sentence"] and "torch FP32" in rec["sentence"]
    assert "fp32@onnxruntime" in rec["qualified"]
    pairs = {(r["method"], r["runtime"]) for r in out["csv"]}
    assert pairs == {(m, rt) for m in ("fp32", "ptq_static", "gptq_w4")
                     for rt in ("torch", "onnxruntime")}  # fmt: skip
    ort_ptq = next(
        r for r in out["csv"] if (r["method"], r["runtime"]) == ("ptq_static", "onnxruntime")
    )
    assert ort_ptq["kernels"] == "com.microsoft:QGemm ×3"
    assert ort_ptq["accuracy in this runtime (test rows, mean over replicates)"] == "0.9000"
    ort_gptq = next(
        r for r in out["csv"] if (r["method"], r["runtime"]) == ("gptq_w4", "onnxruntime")
    )
    assert ort_gptq["kernels"] == "com.microsoft:MatMulNBits ×3 (accuracy_level 4, bits 4)"
    assert "| runtime |" in out["md"] and "ONNX Runtime 1.32.0" in out["md"]
    assert "model graph" in out["md"]
    # the whole artifact's own figures, in the deployable-artifacts section
    assert "| mlp | ptq_static | 0.0150 | 512 | 0.400 | 1,280,000 |" in out["md"]


def test_a_method_failing_parity_is_recommended_in_no_runtime(tmp_path: Path) -> None:
    rec = _summarize(tmp_path, failing="ptq_static")["rec"]
    assert rec["choice"] != "ptq_static"
    gone = {(o["method"], o["runtime"]) for o in rec["ruled_out"] if "parity" in o["reason"]}
    assert gone == {("ptq_static", "torch"), ("ptq_static", "onnxruntime")}
    assert (rec["choice"], rec["runtime"]) == ("fp32", "onnxruntime")
    assert rec["artifact"] == "results/deploy/mlp/seed42/fp32/model.onnx"


def test_size_goal_deploys_the_smallest_method_in_its_measurably_faster_runtime(tmp_path):
    rec = _summarize(tmp_path, goal="size")["rec"]
    assert (rec["choice"], rec["runtime"]) == ("gptq_w4", "onnxruntime")
    assert rec["artifact"] == "results/deploy/mlp/seed42/gptq_w4/model.onnx"


def test_a_timing_record_claiming_onnxruntime_without_its_sides_is_refused(tmp_path: Path):
    facts = _facts(tmp_path)
    path = Path(facts.timing[0])
    record = json.loads(path.read_text())
    for r in record["rounds"]:
        del r["ort_candidate"]
        r["order"] = r["order"][:3]
    path.write_text(json.dumps(record))
    cfg = ReportConfig.from_dict(REPORT)
    with pytest.raises(ValueError, match="runtimes disagree") as err:
        build_metrics(facts.quality, facts.timing, cfg)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
