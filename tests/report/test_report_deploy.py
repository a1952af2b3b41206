"""Parity records in the summary: flagged artifacts, never recommended, the artifact path."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from quantbench.core.files import write_json
from quantbench.report import summarize
from quantbench.report.deploy import ParityConfig, problems
from tests.report_facts import DEFAULT_METHODS, write_run

REPORT = {"confidence": 0.95, "bootstrap_resamples": 999, "seed": 0}
RECOMMEND = {"goal": "size", "max_accuracy_drop": 0.5}
METHODS = [m for m in DEFAULT_METHODS if m.name in ("ptq_static", "gptq_w4")]
REPS = ("seed42", "seed43", "seed44")


def parity(model: str, rep: str, method: str, kind: str, agreement: float, diff: float) -> dict:
    return {
        "format": "quantbench-parity", "version": 1, "model": model, "replicate": rep,
        "method": method, "kind": kind, "artifact": f"results/deploy/{model}/{rep}/{method}",
        "rows": 1000, "agreement": agreement, "max_abs_logit_diff": diff,
        "artifact_accuracy": 0.9, "torch_accuracy": 0.9, "nonfinite_logits": 0, "fallbacks": [],
    }  # fmt: skip


def run(tmp_path: Path, agreements: dict[str, float]) -> dict[str, Any]:
    facts = write_run(tmp_path / "facts", METHODS, rows=900, rounds=6)
    kinds = {"fp32": "fp32", **{m.name: m.kind for m in METHODS}}
    paths, figures = [], []
    for rep in REPS:
        for method, kind in kinds.items():
            path = tmp_path / "parity" / "mlp" / rep / f"{method}.json"
            write_json(path, parity("mlp", rep, method, kind, agreements.get(method, 1.0), 1e-6))
            paths.append(str(path))
            figures.append(str(tmp_path / "deploy" / "mlp" / rep / method / "figures.json"))
    out = tmp_path / "out"
    summarize(
        facts.quality, facts.timing, str(out / "metrics"), str(out / "summary.csv"),
        str(out / "summary.md"), str(out / "recommendation.json"), str(out / "plots"),
        report={**REPORT, "parity": {"quantized_agreement": 0.995}}, recommend=RECOMMEND,
        parity_paths=paths, figures_paths=figures,
    )  # fmt: skip
    return {
        "rec": json.loads((out / "recommendation.json").read_text()),
        "md": (out / "summary.md").read_text(),
        "csv": list(csv.DictReader(io.StringIO((out / "summary.csv").read_text()))),
        "figures": figures,
    }


def test_passing_artifacts_are_recommended_with_their_path(tmp_path: Path) -> None:
    out = run(tmp_path, {})
    model = out["rec"]["models"][0]
    assert model["choice"] == "gptq_w4"  # smallest checkpoint within the bound
    assert model["artifact"] == "results/deploy/mlp/seed42/gptq_w4/model.onnx"
    assert model["parity"]["ok"] is True
    assert "deploy `results/deploy/mlp/seed42/gptq_w4/model.onnx`" in out["md"]
    assert {r["parity"] for r in out["csv"]} == {"ok"}
    figures = json.loads(Path(out["figures"][2]).read_text())  # seed42, gptq_w4
    assert figures["method"] == "gptq_w4" and figures["replicate"] == "seed42"
    assert figures["metrics"]["method"] == "gptq_w4" and figures["parity"]["agreement"] == 1.0


def test_an_artifact_below_threshold_is_flagged_and_never_recommended(tmp_path: Path) -> None:
    out = run(tmp_path, {"gptq_w4": 0.99})
    model = out["rec"]["models"][0]
    assert model["choice"] != "gptq_w4"
    reasons = {o["method"]: o["reason"] for o in model["ruled_out"]}
    assert (
        "fails parity with torch" in reasons["gptq_w4"] and "99.00 % < 99.5 %" in reasons["gptq_w4"]
    )
    assert "**BELOW THRESHOLD**" in out["md"]
    flags = {r["method"]: r["parity"] for r in out["csv"]}
    assert flags["gptq_w4"] == "below threshold" and flags["ptq_static"] == "ok"
    figures = json.loads(Path(out["figures"][2]).read_text())
    assert figures["parity_ok"] is False and figures["recommendable"] is False


@pytest.mark.parametrize(
    ("kind", "agreement", "diff", "n"),
    [("fp32", 1.0, 5e-5, 0), ("fp32", 1.0, 2e-4, 1), ("fp32", 0.999, 1e-6, 1),
     ("ptq_static", 0.995, 0.3, 0), ("ptq_static", 0.994, 0.0, 1)],
)  # fmt: skip
def test_thresholds(kind: str, agreement: float, diff: float, n: int) -> None:
    record = parity("mlp", "seed42", kind, kind, agreement, diff)
    assert len(problems(record, ParityConfig())) == n
