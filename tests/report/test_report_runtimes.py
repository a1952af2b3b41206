"""(method, runtime) pairs: ONNX Runtime speed-ups, the table, the recommendation naming the
runtime and the artifact, from constructed facts."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantbench.core.files import write_json
from quantbench.report import build_metrics, summarize
from quantbench.report.stats import ReportConfig
from tests.report_facts import DEFAULT_METHODS, FP32, ORT_FP32, write_run

REPORT = {"confidence": 0.95, "bootstrap_resamples": 999, "seed": 0}
BY_NAME = {m.name: m for m in DEFAULT_METHODS}
# ptq_static's artifact: 5x torch FP32 at batch 1 (1.25x FP32's artifact); gptq's: 3x (0.75x)
METHODS = [
    replace(BY_NAME["ptq_static"], ort_1=5.0, ort_n=2.0),
    replace(BY_NAME["gptq_w4"], ort_1=3.0, ort_n=1.2),
]
REPS = ("seed42", "seed43", "seed44")


def _facts(tmp_path: Path, methods=METHODS, fp32=FP32):
    return write_run(tmp_path / "facts", methods, rows=900, rounds=10, onnxruntime=True, fp32=fp32)


def _pairs(paths: list[str]) -> list[tuple[str, dict[str, Any]]]:
    return [(p, json.loads(Path(p).read_text())) for p in paths]


def test_each_method_gets_speedups_in_its_runtime_and_against_torch_fp32(tmp_path: Path) -> None:
    facts = _facts(tmp_path)
    cfg = ReportConfig.from_dict(REPORT)
    by_model = build_metrics(facts.quality, facts.timing, cfg, parity=_pairs(facts.parity))
    records = {r["method"]: r for r in by_model["mlp"]}
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


def _summarize(
    tmp_path: Path, failing: str | None = None, goal: str = "latency", methods=METHODS,
    bound: float = 5.0, fp32=FP32, agreement: float = 0.995,
) -> dict[str, Any]:  # fmt: skip
    facts = _facts(tmp_path, methods, fp32)
    for path in facts.parity:
        record = json.loads(Path(path).read_text())
        if record["method"] == failing:
            write_json(path, {**record, "agreement": 0.9})
    out = tmp_path / "out"
    figures = [str(out / "deploy" / "mlp" / Path(p).parent.name / Path(p).stem / "figures.json")
               for p in facts.parity]  # fmt: skip
    summarize(
        facts.quality, facts.timing, str(out / "metrics"), str(out / "summary.csv"),
        str(out / "summary.md"), str(out / "recommendation.json"), str(out / "plots"),
        report={**REPORT, "parity": {"quantized_agreement": agreement}},
        recommend={"goal": goal, "max_accuracy_drop": bound},
        parity_paths=facts.parity, figures_paths=figures,
    )  # fmt: skip
    return {
        "rec": json.loads((out / "recommendation.json").read_text())["models"][0],
        "md": (out / "summary.md").read_text(),
        "csv": list(csv.DictReader(io.StringIO((out / "summary.csv").read_text()))),
        "figures": {f: json.loads(Path(f).read_text()) for f in figures},
        "metrics": {
            m: json.loads((out / "metrics" / "mlp" / f"{m}.json").read_text())
            for m in ("fp32", *(x.name for x in methods))
        },
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
    torch_ptq = next(
        r for r in out["csv"] if (r["method"], r["runtime"]) == ("ptq_static", "torch")
    )
    assert ort_ptq["kernels"] == "com.microsoft:QGemm ×3"
    assert "accuracy in this runtime (test rows, mean over replicates)" not in ort_ptq
    assert ort_ptq["Δ accuracy vs FP32 of its runtime, pt [CI]"] == _row(
        out, "ptq_static", "torch")["Δ accuracy vs FP32 of its runtime, pt [CI]"]  # fmt: skip
    ort_gptq = next(
        r for r in out["csv"] if (r["method"], r["runtime"]) == ("gptq_w4", "onnxruntime")
    )
    assert ort_gptq["kernels"] == "com.microsoft:MatMulNBits ×3 (accuracy_level 4, bits 4)"
    assert "| runtime |" in out["md"] and "ONNX Runtime 1.32.0" in out["md"]
    assert "model graph" in out["md"]
    # an ONNX Runtime row shows no resident figure (torch's module says nothing of a session);
    # the artifact's own size stands in the deployable-artifacts table
    assert ort_ptq["resident KB"] == "" and ort_ptq["size KB"] == torch_ptq["size KB"] != ""
    onnx_kb = f"{(METHODS[0].size_bytes + 3_000) / 1024:.1f}"
    assert f"| mlp | ptq_static | 100.00 % | 1e-06 | 0 | {onnx_kb} | ok |" in out["md"]
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


# ---------------------------------------------------------------------------------------------
# An ONNX Runtime row's quality is its artifact's own


def _row(out: dict[str, Any], method: str, runtime: str) -> dict[str, str]:
    return next(r for r in out["csv"] if (r["method"], r["runtime"]) == (method, runtime))


def _correct(facts_dir: Path, kind: str, rep: str, method: str) -> np.ndarray:
    """Per row: right or wrong, from a quality (torch) or parity (artifact) file."""
    quality = json.loads((facts_dir / "quality" / "mlp" / rep / f"{method}.json").read_text())
    labels = np.asarray(quality["labels"])
    if kind == "quality":
        return np.asarray(quality["predictions"]) == labels
    parity = json.loads((facts_dir / "parity" / "mlp" / rep / f"{method}.json").read_text())
    return np.asarray(parity["predictions"]) == labels


def test_an_artifact_worse_on_one_replicate_reads_worse_and_is_ruled_out_in_its_runtime(tmp_path):
    # ptq_static's artifact gets 40 of 900 rows wrong that its torch model gets right, on
    # seed43 only (within a parity threshold of 95 %): torch's row is untouched, the ONNX
    # Runtime row reads the artifact's loss
    methods = [replace(METHODS[0], ort_broken=(0, 40, 0)), METHODS[1]]
    out = _summarize(tmp_path, methods=methods, bound=1.5, agreement=0.95)
    torch_q = out["metrics"]["ptq_static"]
    ort_q = torch_q["runtimes"]["onnxruntime"]["quality"]
    reps = [(t["accuracy"], o["accuracy"]) for t, o in zip(
        torch_q["replicates"], ort_q["replicates"], strict=True)]  # fmt: skip
    assert [o for _, o in reps] == pytest.approx([reps[0][0], reps[1][0] - 40 / 900, reps[2][0]])
    seed43 = ort_q["replicates"][1]["vs_fp32"]["mcnemar"]
    assert seed43["b"] == torch_q["replicates"][1]["vs_fp32"]["mcnemar"]["b"] + 40
    assert seed43["p_holm"] < 0.05 and seed43["direction"] == -1
    assert ort_q["vs_fp32"]["replicates"]["worse"] == 1
    assert torch_q["vs_fp32"]["replicates"]["worse"] == 0
    # the table's ONNX Runtime row shows the artifact's figures, the torch row torch's
    ort_row, torch_row = _row(out, "ptq_static", "onnxruntime"), _row(out, "ptq_static", "torch")
    assert ort_row["accuracy verdict"].startswith("worse in 1 of 3 replicates")
    assert torch_row["accuracy verdict"].startswith("worse by 0.5")  # its interval's
    assert ort_row["accuracy [CI]"] != torch_row["accuracy [CI]"]
    assert float(ort_row["accuracy [CI]"].split()[0]) == pytest.approx(
        ort_q["accuracy"]["estimate"], abs=1e-4
    )
    # the recommendation judges the ONNX Runtime row on its own drop, against FP32 there
    rec = out["rec"]
    gone = {(o["method"], o["runtime"]): o["reason"] for o in rec["ruled_out"]}
    reason = gone[("ptq_static", "onnxruntime")]
    assert "against FP32 in ONNX Runtime" in reason and "beyond the 1.5 pt bound" in reason
    assert reason.startswith("accuracy worse in 1 of 3 replicates")
    assert "bound" not in gone.get(("ptq_static", "torch"), "")
    assert "ptq_static@onnxruntime" not in rec["qualified"] and "ptq_static" in rec["qualified"]
    # without it, ptq_static in ONNX Runtime is the fastest (see the test above); now FP32's
    # artifact is, quoted with its own accuracy
    assert (rec["choice"], rec["runtime"]) == ("fp32", "onnxruntime"), rec["sentence"]
    fp32_ort = out["metrics"]["fp32"]["runtimes"]["onnxruntime"]["quality"]
    assert rec["figures"]["accuracy"] == fp32_ort["accuracy"]
    assert rec["sentence"].startswith("Use FP32 in ONNX Runtime: the best batch-1 speed-up")
    assert "its artifact's own" in rec["sentence"]


def test_an_artifact_is_paired_with_fp32s_artifact_row_by_row(tmp_path: Path) -> None:
    # FP32's artifact loses 30 rows in every replicate, ptq_static's the same 30 rows of its
    # torch model's: against FP32's artifact it reads as its torch model does against torch FP32
    fp32 = replace(FP32, ort_broken=(30, 30, 30))
    methods = [replace(METHODS[0], ort_broken=(30, 30, 30)), METHODS[1]]
    out = _summarize(tmp_path, methods=methods, fp32=fp32)
    root = tmp_path / "facts"
    ort = out["metrics"]["ptq_static"]["runtimes"]["onnxruntime"]["quality"]
    for rep, entry in zip(REPS, ort["replicates"], strict=True):
        ref, cand = (
            _correct(root, "parity", rep, "fp32"),
            _correct(root, "parity", rep, "ptq_static"),
        )
        assert entry["vs_fp32"]["accuracy_diff_pt"] == pytest.approx(
            100 * (cand.mean() - ref.mean())
        )
        assert entry["vs_fp32"]["mcnemar"]["b"] == int(np.count_nonzero(ref & ~cand))
        assert entry["vs_fp32"]["mcnemar"]["c"] == int(np.count_nonzero(~ref & cand))
        assert entry["parity_record"].endswith(f"parity/mlp/{rep}/ptq_static.json")
    fp32_ort = out["metrics"]["fp32"]["runtimes"]["onnxruntime"]["quality"]
    assert fp32_ort["vs_fp32"] is None
    assert fp32_ort["accuracy"]["estimate"] == pytest.approx(
        out["metrics"]["fp32"]["accuracy"]["estimate"] - 30 / 900
    )
    torch_d = out["metrics"]["ptq_static"]["vs_fp32"]["accuracy_diff_pt"]["estimate"]
    assert ort["vs_fp32"]["accuracy_diff_pt"]["estimate"] == pytest.approx(torch_d, abs=0.12)
    assert _row(out, "fp32", "onnxruntime")["accuracy verdict"] == "reference"
    assert "paired row by row with FP32's artifact in ONNX Runtime" in out["md"]
    # figures.json's parity facts carry no per-row predictions; the metrics hold their figures
    assert "predictions" not in json.dumps(out["metrics"]["ptq_static"])
    figures = next(
        f for p, f in out["figures"].items() if p.endswith("seed43/ptq_static/figures.json")
    )
    assert "predictions" not in figures["parity"] and figures["parity"]["rows"] == 900
    assert figures["metrics"]["runtimes"]["onnxruntime"]["quality"] == ort


def test_size_goal_falls_back_to_torch_where_the_artifacts_fall_short(tmp_path: Path) -> None:
    methods = [replace(m, ort_broken=(60, 60, 60)) for m in METHODS]
    rec = _summarize(tmp_path / "a", methods=methods, bound=1.5, goal="size", agreement=0.9)["rec"]
    assert (rec["choice"], rec["runtime"]) == ("gptq_w4", "torch")
    ort_gone = {o["method"] for o in rec["ruled_out"] if o["runtime"] == "onnxruntime"}
    assert {"ptq_static", "gptq_w4"} <= ort_gone
    # nothing qualifies in either runtime: FP32, in the runtime measurably faster at batch 1
    rec = _summarize(tmp_path / "b", methods=methods, bound=0.1, goal="size", agreement=0.9)["rec"]
    assert (rec["choice"], rec["runtime"]) == ("fp32", "onnxruntime") and rec["nothing_qualifies"]
    assert rec["sentence"].startswith("Keep FP32, in ONNX Runtime (faster ")
    assert "at batch 1 against torch FP32): nothing qualifies;" in rec["sentence"]


def _refused(tmp_path: Path, edit: Any) -> ValueError:
    facts = _facts(tmp_path)
    path = next(p for p in facts.parity if p.endswith("seed43/gptq_w4.json"))
    record = json.loads(Path(path).read_text())
    write_json(path, edit(record))
    cfg = ReportConfig.from_dict(REPORT)
    with pytest.raises(ValueError) as err:
        build_metrics(facts.quality, facts.timing, cfg, parity=_pairs(facts.parity))
    assert "\n" not in str(err.value) and path in str(err.value)
    assert "rerun the workflow" in str(err.value)
    return err.value


def test_a_parity_record_without_predictions_is_refused(tmp_path: Path) -> None:
    def old(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in ("predictions", "labels_sha256")} | {
            "version": 1
        }

    assert "without the artifact's predictions" in str(_refused(tmp_path, old))


def test_a_parity_record_of_other_rows_is_refused(tmp_path: Path) -> None:
    def shorter(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "rows": 899, "predictions": record["predictions"][:-1]}

    def reordered(record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "labels_sha256": "0" * 64}

    assert "899 predictions" in str(_refused(tmp_path / "a", shorter))
    assert "labels_sha256" in str(_refused(tmp_path / "b", reordered))


def test_an_ort_row_without_its_parity_record_is_refused(tmp_path: Path) -> None:
    facts = _facts(tmp_path)
    kept = [p for p in facts.parity if not p.endswith("seed44/fp32.json")]
    cfg = ReportConfig.from_dict(REPORT)
    with pytest.raises(ValueError, match=r"no parity record for mlp/seed44/fp32: .*rerun"):
        build_metrics(facts.quality, facts.timing, cfg, parity=_pairs(kept))


def test_a_tie_between_runtimes_names_torch_too(tmp_path: Path) -> None:
    """On size, a method's torch and ONNX Runtime rows share one checkpoint: the sentence and
    the ruled-out list name both runtimes, never a bare method beside its own ONNX Runtime row."""
    out = _summarize(tmp_path, goal="size")
    rec = out["rec"]
    assert (rec["choice"], rec["runtime"]) == ("gptq_w4", "onnxruntime")
    assert rec["sentence"].startswith("Use `gptq_w4` in ONNX Runtime: the smallest checkpoint")
    assert "`gptq_w4` in ONNX Runtime or `gptq_w4` in torch serve equally." in rec["sentence"]
    assert "- `gptq_w4` in torch not chosen: not measurably different from `gptq_w4` in ONNX " \
        "Runtime on size" in out["md"]  # fmt: skip
    assert "- `ptq_static` in torch not chosen: larger checkpoint" in out["md"]
