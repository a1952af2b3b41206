"""The metrics record: figures from scikit-learn, paired counts, speed-ups, schema coverage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from quantbench.report import build_metrics
from quantbench.report.facts import SCHEMA_DIR, load_facts
from quantbench.report.metrics import side_figures
from quantbench.report.stats import ReportConfig, t_interval
from tests.report_facts import Method, write_run

CFG = ReportConfig(confidence=0.95, bootstrap_resamples=999, seed=1)
ROWS = 600
METHODS = [
    Method("ptq_static", "ptq_static", broken=6, fixed=2, size_bytes=76_800, speed_1=0.7,
           speed_n=2.0, jitter=2),
    Method("rtn_w4", "rtn", bits=4, broken=3, fixed=3, size_bytes=41_000, layer_error=True),
]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_run(tmp_path_factory.mktemp("m"), METHODS, seeds=(42, 43, 44), rows=ROWS,
                     rounds=8)  # fmt: skip


@pytest.fixture(scope="module")
def records(run: Any) -> dict[str, dict[str, Any]]:
    by_model = build_metrics(run.quality, run.timing, CFG)
    return {r["method"]: r for r in by_model["mlp"]}


def facts_of(run: Any, method: str) -> list[dict[str, Any]]:
    paths = sorted(p for p in run.quality if p.endswith(f"/{method}.json"))
    return [json.loads(Path(p).read_text(encoding="utf-8")) for p in paths]


def test_order_and_identity(records: dict[str, dict[str, Any]]) -> None:
    assert list(records) == ["fp32", "ptq_static", "rtn_w4"]
    r = records["ptq_static"]
    assert (r["format"], r["version"], r["model"], r["kind"], r["bits"]) == (
        "quantbench-metrics", 5, "mlp", "ptq_static", 8
    )  # fmt: skip
    assert r["seeds"] == [42, 43, 44] and r["confidence"] == 0.95


def test_quality_figures_come_from_scikit_learn(run: Any, records: dict[str, Any]) -> None:
    r = records["ptq_static"]
    facts = facts_of(run, "ptq_static")
    acc = [accuracy_score(f["labels"], f["predictions"]) for f in facts]
    f1 = [f1_score(f["labels"], f["predictions"], average="macro") for f in facts]
    assert [e["accuracy"] for e in r["replicates"]] == pytest.approx(acc)
    assert [e["macro_f1"] for e in r["replicates"]] == pytest.approx(f1)
    t = t_interval(acc, 0.95)
    assert r["accuracy"]["method"] == "t"
    assert r["accuracy"]["estimate"] == pytest.approx(t.estimate)
    assert r["accuracy"]["ci"] == pytest.approx([t.lo, t.hi])
    summed = sum(np.array(confusion_matrix(f["labels"], f["predictions"])) for f in facts)
    assert r["confusion_matrix"] == summed.tolist()
    assert r["per_class"]["web"]["support"] == sum(f["labels"].count(2) for f in facts)


def test_paired_counts_are_the_constructed_ones(records: dict[str, Any]) -> None:
    r = records["ptq_static"]
    per_rep = [e["vs_fp32"]["mcnemar"] for e in r["replicates"]]
    assert [(m["b"], m["c"]) for m in per_rep] == [(6, 2), (8, 2), (10, 2)]  # jitter 2 per rep
    assert (r["vs_fp32"]["mcnemar"]["b"], r["vs_fp32"]["mcnemar"]["c"]) == (24, 6)
    d = [100 * (2 - b) / ROWS for b in (6, 8, 10)]
    assert [e["vs_fp32"]["accuracy_diff_pt"] for e in r["replicates"]] == pytest.approx(d)
    diff = r["vs_fp32"]["accuracy_diff_pt"]
    assert diff["method"] == "t" and diff["estimate"] == pytest.approx(np.mean(d))
    assert r["vs_fp32"]["accuracy_drop_upper_pt"] == pytest.approx(-diff["ci"][0])
    assert records["fp32"]["vs_fp32"] is None
    assert all(e["vs_fp32"] is None for e in records["fp32"]["replicates"])


def test_equal_differences_use_the_exact_interval(records: dict[str, Any]) -> None:
    diff = records["rtn_w4"]["vs_fp32"]["accuracy_diff_pt"]  # 3 broken, 3 fixed every replicate
    assert diff["method"] == "exact-discordant"
    assert diff["estimate"] == pytest.approx(0.0)
    assert diff["verdict"] == "no measurable change"


def test_speedups_recover_the_true_ratio(records: dict[str, Any]) -> None:
    s = records["ptq_static"]["speedup"]
    assert s["batch_n"]["estimate"] == pytest.approx(2.0, rel=0.05)
    assert s["batch_n"]["ci"][0] > 1 and s["batch_n"]["verdict"].startswith("faster 2.0")
    assert s["batch_1"]["estimate"] == pytest.approx(0.7, rel=0.05)
    assert s["batch_1"]["verdict"].startswith("slower 0.7")
    assert len(s["batch_1"]["round_ratios"]) == 8 and s["batch_n"]["batch"] == 512
    rtn = records["rtn_w4"]["speedup"]["batch_n"]
    assert rtn["estimate"] == pytest.approx(1.0, abs=0.05)
    assert rtn["ci"][1] - rtn["ci"][0] < 0.1


def test_fp32_is_the_reference_with_the_median_of_every_job(run: Any, records: Any) -> None:
    fp32 = records["fp32"]
    assert fp32["speedup"]["batch_1"]["estimate"] == 1.0
    assert fp32["speedup"]["batch_1"]["verdict"] == "reference"
    facts = {f.model: f for f in load_facts(run.quality, run.timing)}["mlp"]
    sides = [side_figures(t, "reference") for t in facts.timing.values()]
    assert fp32["latency_ms"]["p50"] == pytest.approx(np.median([s[0]["p50"] for s in sides]))
    tput = np.median([s[1]["samples_per_s"] for s in sides])
    assert fp32["throughput"]["samples_per_s"] == pytest.approx(tput)
    assert fp32["timing"]["jobs"] == 2 and records["rtn_w4"]["timing"]["jobs"] == 1


def test_absolute_figures_of_a_method(run: Any, records: Any) -> None:
    timing = json.loads(Path(run.timing[0]).read_text(encoding="utf-8"))
    calls = np.concatenate([r["candidate"]["latency_ms"] for r in timing["rounds"]])
    passes = np.concatenate([r["candidate"]["pass_ms"] for r in timing["rounds"]])
    r = records["ptq_static"]
    assert r["latency_ms"]["p95"] == pytest.approx(np.percentile(calls, 95))
    assert r["latency_ms"]["samples"] == calls.size
    assert r["throughput"]["samples_per_s"] == pytest.approx(512 / np.median(passes) * 1000)
    ref_calls = np.concatenate([r["reference"]["latency_ms"] for r in timing["rounds"]])
    fp32_here = records["ptq_static"]["timing"]["reference"]
    assert fp32_here["latency_ms"]["p50"] == pytest.approx(np.median(ref_calls))
    assert records["fp32"]["timing"]["reference"] is None


def test_size_compression_and_layer_error(records: dict[str, Any]) -> None:
    r = records["rtn_w4"]
    assert r["size_kb"] == pytest.approx(41_000 / 1024)
    assert r["compression"] == pytest.approx(290_000 / 41_000)
    assert records["fp32"]["compression"] == 1.0
    first = r["layer_error"][0]
    assert first["layer"] == "net.0" and first["replicates"] == 3
    heldout = [e["layer_error"][0]["heldout"] for e in r["replicates"]]
    assert first["heldout"] == pytest.approx(np.mean(heldout))
    assert (first["heldout_min"], first["heldout_max"]) == (min(heldout), max(heldout))
    assert "layer_error" not in records["ptq_static"]


def test_pareto_marks(records: dict[str, Any]) -> None:
    # ptq_static is slower at batch 1 and measurably less accurate than FP32 and rtn_w4 (which
    # are as fast as each other and not measurably different in accuracy): both dominate it
    pareto = {m: r["pareto"] for m, r in records.items()}
    assert pareto["ptq_static"] == {"on_front": False, "dominated_by": ["fp32", "rtn_w4"]}
    assert pareto["fp32"] == pareto["rtn_w4"] == {"on_front": True, "dominated_by": []}


def test_one_replicate_uses_row_level_intervals(tmp_path: Path) -> None:
    run = write_run(tmp_path, METHODS, seeds=(42,), rows=ROWS, rounds=4)
    r = {x["method"]: x for x in build_metrics(run.quality, run.timing, CFG)["mlp"]}
    assert r["ptq_static"]["accuracy"]["method"] == "clopper-pearson"
    assert r["ptq_static"]["macro_f1"]["method"] == "bootstrap-percentile"
    assert r["ptq_static"]["vs_fp32"]["accuracy_diff_pt"]["method"] == "exact-discordant"
    assert r["ptq_static"]["vs_fp32"]["macro_f1_diff_pt"]["method"] == "bootstrap-percentile"


def test_only_fp32_has_no_timing(tmp_path: Path) -> None:
    run = write_run(tmp_path, [], seeds=(42, 43), rows=ROWS)
    (fp32,) = build_metrics(run.quality, [], CFG)["mlp"]
    assert fp32["speedup"] is None and fp32["latency_ms"] is None and fp32["pareto"] is None


def _undocumented(node: Any, path: str) -> list[str]:
    """Paths of property schemas without a description (``$ref`` ones are described there)."""
    missing = []
    if isinstance(node, dict):
        for name, sub in node.get("properties", {}).items():
            if isinstance(sub, dict) and not sub.get("description") and "$ref" not in sub:
                missing.append(f"{path}.{name}")
        for key, sub in node.items():
            missing += _undocumented(sub, f"{path}.{key}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            missing += _undocumented(sub, f"{path}[{i}]")
    return missing


@pytest.mark.parametrize("name", ["quality", "timing", "metrics"])
def test_every_schema_field_is_described(name: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert schema["description"]
    assert _undocumented(schema, name) == []


def test_every_record_field_is_in_the_schema(records: dict[str, Any]) -> None:
    schema = json.loads((SCHEMA_DIR / "metrics.schema.json").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    for r in records.values():
        assert set(r) <= set(schema["properties"])
        assert set(schema["required"]) <= set(r)


def test_a_loss_that_varies_between_seeds_reads_worse_in_every_replicate(tmp_path: Path) -> None:
    """16-fold spread of a real loss: the t-interval over 3 replicates spans zero, but each
    replicate's exact test rejects after Holm's correction, so the verdict says worse in all 3
    and not 'no change'."""
    varying = Method("rtn_w2", "rtn", bits=2, broken=20, fixed=2, size_bytes=24_000, jitter=250)
    run = write_run(tmp_path, [varying], seeds=(42, 43, 44), rows=3600, rounds=4)
    rec = build_metrics(run.quality, run.timing, CFG)["mlp"][1]
    vs = rec["vs_fp32"]
    diffs = [r["vs_fp32"]["accuracy_diff_pt"] for r in rec["replicates"]]
    assert vs["accuracy_diff_pt"]["ci"][0] < 0 < vs["accuracy_diff_pt"]["ci"][1]
    tests = [r["vs_fp32"]["mcnemar"] for r in rec["replicates"]]
    assert all(t["p_holm"] < 0.05 and t["direction"] == -1 for t in tests)
    assert all(t["p_holm"] >= t["p_value"] for t in tests)
    assert vs["replicates"] | {"diff_pt_range": None} == {
        "of": 3, "worse": 3, "better": 0, "diff_pt_range": None,
        "largest_significant_drop_pt": pytest.approx(-min(diffs)), "alpha": 0.05,
        "correction": "holm",
    }  # fmt: skip
    assert vs["replicates"]["diff_pt_range"] == [min(diffs), max(diffs)]
    assert vs["accuracy_diff_pt"]["verdict"] == (
        f"worse in all 3 replicates ({min(diffs):.1f} … {max(diffs):.1f} pt)"
    )
    assert vs["accuracy_drop_upper_pt"] > 10  # the recommendation still sees the whole interval
