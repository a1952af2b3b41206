"""The summary table, the run facts, and that every figure of summary.md is a metrics field."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantbench.report import build_metrics, render_markdown
from quantbench.report.recommend import RecommendConfig, recommendation
from quantbench.report.stats import ReportConfig
from quantbench.report.tables import how_to_read, render_csv, run_facts, summary_table
from quantbench.report.wording import number
from tests.report_facts import DEFAULT_METHODS, write_run

CFG = ReportConfig(confidence=0.95, bootstrap_resamples=999, seed=3)
GOAL = RecommendConfig(goal="size", max_accuracy_drop=0.5)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


@pytest.fixture(scope="module")
def by_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    run = write_run(tmp_path_factory.mktemp("t"), DEFAULT_METHODS, rows=1200, rounds=10)
    return build_metrics(run.quality, run.timing, CFG, run.engine)


@pytest.fixture(scope="module")
def markdown(by_model: dict[str, list[dict[str, Any]]]) -> str:
    return render_markdown(by_model, recommendation(by_model, GOAL))


def leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for v in node.values():
            yield from leaves(v)
    elif isinstance(node, list):
        for v in node:
            yield from leaves(v)
    else:
        yield node


def traces(token: str, sources: list[Any]) -> bool:
    """True when ``token`` is a numeric field printed at its places (sign aside), or a whole
    word of a string field (a CPU model number, a seed in a replicate name)."""
    places = len(token.split(".")[1]) if "." in token else 0
    bare = token.lstrip("-")
    for value in leaves(sources):
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int | float) and number(abs(value), places) == bare:
            return True
        if isinstance(value, str) and re.search(rf"(?<![\w.]){re.escape(token)}(?![\w.])", value):
            return True
    return False


def untraced(text: str, sources: list[Any]) -> list[str]:
    return [t for t in NUMBER.findall(text) if not traces(t, sources)]


def test_every_figure_of_summary_md_is_a_metrics_field(markdown: str, by_model: Any) -> None:
    records = {r["method"]: r for r in by_model["mlp"]}
    rec = recommendation(by_model, GOAL)
    criteria = [rec["max_accuracy_drop_pt"]]  # the configured bound, from recommendation.json
    checked = 0
    for line in markdown.splitlines():
        if line.startswith("| ") and line.split(" | ")[0][2:] in records:  # a table row:
            sources = [records[line.split(" | ")[0][2:]]]  # its own record only
        else:
            sources = [*records.values(), criteria]
        assert untraced(line, sources) == [], line
        checked += len(NUMBER.findall(line))
    assert checked > 150  # the table, the run facts and the recommendation were all checked


def test_the_trace_check_catches_a_figure_from_elsewhere(by_model: Any, tmp_path: Path) -> None:
    other = write_run(tmp_path, DEFAULT_METHODS, rows=1200, rounds=10, fp32_accuracy=0.85)
    others = build_metrics(other.quality, other.timing, CFG)
    foreign = render_markdown(others, recommendation(others, GOAL))
    row = next(line for line in foreign.splitlines() if line.startswith("| ptq_static |"))
    ptq = next(r for r in by_model["mlp"] if r["method"] == "ptq_static")
    assert untraced(row, [ptq]) != []


def test_columns_and_row_order(by_model: Any) -> None:
    columns, rows = summary_table(by_model)
    assert columns[:9] == [
        "method", "kind", "bits", "accuracy [CI]", "macro-F1 [CI]",
        "Δ accuracy vs FP32, pt [CI]", "Δ per replicate, pt (min … max)", "accuracy verdict",
        "size KB",
    ]  # fmt: skip
    assert "throughput samples/s (batch 512)" in columns
    assert "speed verdict (batch 512)" in columns
    assert [r[0] for r in rows] == [
        "fp32", "gptq_w4", "ptq_dynamic", "ptq_static", "qat", "rtn_w2", "rtn_w4",
    ]  # fmt: skip


def test_rows_carry_intervals_and_verdicts(by_model: Any) -> None:
    columns, rows = summary_table(by_model)
    table = {r[0]: dict(zip(columns, r, strict=True)) for r in rows}
    fp32, w2 = table["fp32"], table["rtn_w2"]
    assert fp32["accuracy verdict"] == "reference" and fp32["Δ accuracy vs FP32, pt [CI]"] == ""
    assert fp32["speed-up × (batch 1) [CI]"] == "1.00 [1.00, 1.00]"
    assert w2["accuracy verdict"].startswith("worse by")
    assert re.fullmatch(r"-\d+\.\d\d \[-\d+\.\d\d, -\d+\.\d\d\]", w2["Δ accuracy vs FP32, pt [CI]"])
    assert table["ptq_static"]["speed verdict (batch 512)"].startswith("faster 2.")
    assert table["rtn_w4"]["speed verdict (batch 512)"] == "no measurable difference"
    assert re.fullmatch(r"0\.\d{4} \[0\.\d{4}, 0\.\d{4}\]", w2["accuracy [CI]"])


def test_coverage_column_is_the_share_of_weights_quantized(by_model: Any) -> None:
    columns, rows = summary_table(by_model)
    table = {r[0]: dict(zip(columns, r, strict=True)) for r in rows}
    records = {r["method"]: r for r in by_model["mlp"]}
    assert table["fp32"]["weights quantized %"] == ""  # the reference quantizes nothing
    for method in ("ptq_static", "rtn_w4"):
        share = records[method]["coverage"]["weights_quantized"]
        assert table[method]["weights quantized %"] == f"{100 * share:.1f}"
    assert table["ptq_static"]["weights quantized %"] == "94.3"  # 5000 of 5300 (head FP32)
    assert table["rtn_w4"]["weights quantized %"] == "100.0"


def test_csv_has_the_model_column_and_every_row(by_model: Any) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(by_model))))
    assert len(rows) == 7 and {r["model"] for r in rows} == {"mlp"}
    assert rows[0]["method"] == "fp32" and rows[0]["compression ×"] == "1.00"


def test_run_facts_line(by_model: Any) -> None:
    line = run_facts(by_model["mlp"])
    assert "Example CPU 7763 @ 2.40GHz" in line and "torch 2.5.1+cpu" in line
    assert "1 thread(s)" in line and "int8 engine x86" in line
    assert "throughput at batch 512" in line and "3 replicate(s) (seeds 42, 43, 44)" in line
    assert "confidence level 0.95" in line and "10 interleaved timing rounds" in line
    assert "ISA features avx2 fma avx512f" in line
    assert (
        "int8 engine x86 (probed, throughput at 512 row(s) per call: x86 2497561/s, qnnpack "
        "846281/s, onednn failed; fastest at throughput: 2.95x faster than qnnpack)"
    ) in line


def test_run_facts_say_when_the_engine_was_named(by_model: Any) -> None:
    from quantbench.report.metrics import engine_probe
    from tests.report_facts import engine_record

    records = [{**r, "engine_probe": engine_probe(engine_record(probed=False))}
               for r in by_model["mlp"]]  # fmt: skip
    line = run_facts(records)
    assert "int8 engine x86 (set in quantization.engine, no probe: x86 set explicitly" in line


def test_memory_columns_sit_beside_size(by_model: Any) -> None:
    columns, rows = summary_table(by_model)
    i = columns.index("size KB")
    assert columns[i + 1 : i + 3] == ["resident KB", "peak RSS MB"]
    table = {r[0]: dict(zip(columns, r, strict=True)) for r in rows}
    assert table["fp32"]["peak RSS MB"] == "" and table["rtn_w4"]["peak RSS MB"] == "300.0"


def test_markdown_layout(markdown: str) -> None:
    lines = markdown.splitlines()
    assert lines[0] == "# quantbench summary"
    assert lines.index("## Recommendation") < lines.index("## Results")
    assert sum(line.startswith("| ") for line in lines) == 8  # header + 7 rows
    assert "### Model" not in markdown  # one model: no per-model sections


def test_several_models_are_grouped(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", DEFAULT_METHODS[:2], rows=600, rounds=4, model="mlp")
    b = write_run(tmp_path / "b", DEFAULT_METHODS[:1], rows=600, rounds=4, model="wide")
    by_model = build_metrics(a.quality + b.quality, a.timing + b.timing, CFG)
    md = render_markdown(by_model, recommendation(by_model, GOAL))
    assert md.index("### Model `mlp`") < md.index("### Model `wide`")
    assert "model `mlp`: **" in md and "model `wide`: **" in md
    columns, rows = summary_table(by_model)
    assert columns[0] == "model"
    assert [(r[0], r[1]) for r in rows] == [
        ("mlp", "fp32"), ("mlp", "ptq_dynamic"), ("mlp", "ptq_static"),
        ("wide", "fp32"), ("wide", "ptq_dynamic"),
    ]  # fmt: skip
    # each model against its own FP32
    for model, records in by_model.items():
        assert records[0]["method"] == "fp32" and records[0]["model"] == model
        fp32_size = records[0]["size_bytes"]
        for r in records:
            assert r["compression"] == pytest.approx(fp32_size / r["size_bytes"])


def test_reading_note_names_the_speed_noise_band(markdown: str) -> None:
    noise = CFG.speed_noise
    assert noise > 0
    assert f"timing-noise band of report.speed_noise = {noise:g}" in markdown
    assert "timing-noise band" not in how_to_read(0.0)


def test_every_replicate_verdict_traces_to_its_record(tmp_path: Path) -> None:
    from tests.report_facts import Method

    varying = Method("rtn_w2", "rtn", bits=2, broken=20, fixed=2, size_bytes=24_000, jitter=250)
    run = write_run(tmp_path, [varying], rows=3600, rounds=4)
    records = build_metrics(run.quality, run.timing, CFG)
    line = next(x for x in render_markdown(records, recommendation(records, GOAL)).splitlines()
                if x.startswith("| rtn_w2 |"))  # fmt: skip
    assert "worse in all 3 replicates (" in line
    assert untraced(line, [records["mlp"][1]]) == []
