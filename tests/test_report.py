"""The summarize step: table values and order, Markdown sentences, plots, schema checks."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from quantbench.files import write_json
from quantbench.report import (
    PLOT_FORMATS,
    PLOT_NAMES,
    fixed,
    load_metrics,
    not_faster_sentences,
    pareto_front,
    summarize,
)

CLASSES = ["web", "video", "voip"]
BATCH = 512
LAYERS = ["net.0", "net.3", "net.6"]


def make_metrics(
    method: str,
    kind: str,
    *,
    bits: int,
    accuracy: float,
    size_bytes: int,
    p50: float,
    throughput: float,
    kernels: tuple[str, ...] = ("aten::addmm",),
    execution: str = "fp32",
    layer_error: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A metrics record of the schema's shape with fixed, plausible figures."""
    matrix = [[1150, 60, 40], [70, 1110, 70], [30, 50, 1170]]
    record: dict[str, Any] = {
        "method": method, "kind": kind, "params": {}, "bits": bits, "seed": 42,
        "accuracy": accuracy, "macro_f1": accuracy - 0.004, "class_names": CLASSES,
        "per_class": {
            c: {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 1250} for c in CLASSES
        },
        "confusion_matrix": matrix, "size_bytes": size_bytes, "payload_bytes": size_bytes - 3000,
        "latency_ms": {"batch": 1, "p50": p50, "p95": p50 * 1.4, "mean": p50 * 1.1, "samples": 500},
        "throughput": {"batch": BATCH, "samples_per_s": throughput, "repeats": 30},
        "kernels": list(kernels), "execution": execution,
        "engine": "x86" if kind.startswith(("ptq", "qat")) else None, "threads": 1,
        "device": "cpu", "torch_version": "2.5.1+cpu", "cpu": "Example CPU @ 2.40GHz",
    }  # fmt: skip
    if layer_error is not None:
        record["layer_error"] = layer_error
    return record


def layer_errors(scale: float) -> list[dict[str, Any]]:
    return [
        {"layer": name, "calib": scale * f * 0.8, "heldout": scale * f}
        for name, f in zip(LAYERS, (2e-4, 5e-3, 1e-2), strict=True)
    ]


DEQUANT = "dequantized to fp32 at load (group-wise codes)"
# method, kind, bits, accuracy, size_bytes, p50 ms, samples/s, kernel, execution, layer error scale
RUN = [
    ("rtn_w4", "rtn", 4, 0.9021, 41_000, 0.050, 140_000, "aten::addmm", DEQUANT, 3.0),
    ("ptq_static", "ptq_static", 8, 0.9105, 76_800, 0.070, 230_000, "quantized::linear",
     "int8 static kernels", None),
    ("fp32", "fp32", 32, 0.9132, 289_000, 0.045, 150_000, "aten::addmm", "fp32", None),
    ("gptq_w4", "gptq", 4, 0.9098, 41_200, 0.044, 160_000, "aten::addmm", DEQUANT, 1.0),
    ("ptq_dynamic", "ptq_dynamic", 8, 0.9120, 75_500, 0.060, 210_000,
     "quantized::linear_dynamic", "int8 dynamic kernels", None),
    ("qat", "qat", 8, 0.9125, 76_900, 0.071, 228_000, "quantized::linear",
     "int8 static kernels", None),
]  # fmt: skip


def fake_run() -> list[dict[str, Any]]:
    """Six methods in no particular order; gptq_w4 is the only one faster than FP32 at both."""
    return [
        make_metrics(
            method,
            kind,
            bits=bits,
            accuracy=acc,
            size_bytes=size,
            p50=p50,
            throughput=tput,
            kernels=(kernel,),
            execution=execution,
            layer_error=None if scale is None else layer_errors(scale),
        )
        for method, kind, bits, acc, size, p50, tput, kernel, execution, scale in RUN
    ]


def write_run(tmp_path: Path, records: list[dict[str, Any]]) -> list[str]:
    paths = []
    for r in records:
        path = tmp_path / "metrics" / f"{r['method']}.json"
        write_json(path, r)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("summary")
    paths = write_run(tmp, fake_run())
    summarize(paths, str(tmp / "summary.csv"), str(tmp / "summary.md"), str(tmp / "plots"))
    return tmp


def read_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "summary.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_csv_columns_and_order(run_dir: Path) -> None:
    rows = read_rows(run_dir)
    assert list(rows[0]) == [
        "method", "kind", "bits", "accuracy", "macro-F1", "size KB", "compression ×",
        "latency p50 ms (batch 1)", "latency p95 ms (batch 1)",
        f"throughput samples/s (batch {BATCH})", "speed-up ×", "kernels", "execution",
    ]  # fmt: skip
    assert [r["method"] for r in rows] == [
        "fp32", "gptq_w4", "ptq_dynamic", "ptq_static", "qat", "rtn_w4",
    ]  # fmt: skip


def test_csv_values(run_dir: Path) -> None:
    rows = {r["method"]: r for r in read_rows(run_dir)}
    fp32, dyn = rows["fp32"], rows["ptq_dynamic"]
    assert fp32["compression ×"] == "1.00" and fp32["speed-up ×"] == "1.00"
    assert dyn["size KB"] == f"{75_500 / 1024:.1f}"
    assert float(dyn["compression ×"]) == pytest.approx(289_000 / 75_500, abs=0.005)
    assert float(dyn["speed-up ×"]) == pytest.approx(210_000 / 150_000, abs=0.005)
    assert float(rows["rtn_w4"]["speed-up ×"]) == pytest.approx(140_000 / 150_000, abs=0.005)
    assert dyn["latency p50 ms (batch 1)"] == "0.060"
    assert dyn["kernels"] == "quantized::linear_dynamic"
    assert dyn["bits"] == "8" and rows["gptq_w4"]["bits"] == "4"


def test_small_values_never_print_as_zero() -> None:
    assert fixed(40 / 1024, 1) == "0.04"
    assert fixed(0.0004, 3) == "0.0004"
    assert fixed(0.0, 2) == "0.00"
    assert fixed(None, 2) == ""


def test_markdown_table_and_sentences(run_dir: Path) -> None:
    text = (run_dir / "summary.md").read_text(encoding="utf-8")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(fake_run())
    assert "Example CPU @ 2.40GHz" in text and "torch 2.5.1+cpu" in text
    assert "1 thread(s)" in text and "int8 engine x86" in text
    sentences = [line for line in text.splitlines() if "is not faster than FP32" in line]
    slower = {"ptq_dynamic", "ptq_static", "qat", "rtn_w4"}  # gptq_w4 is faster at both
    assert {s.split("`")[1] for s in sentences} == slower
    assert any("`ptq_dynamic`" in s and "at batch 1 (0.75×)" in s for s in sentences)
    assert not any("`ptq_dynamic`" in s and f"batch {BATCH}" in s for s in sentences)
    rtn = next(s for s in sentences if "`rtn_w4`" in s)
    assert "at batch 1 (0.90×)" in rtn and f"at batch {BATCH} (0.93×)" in rtn


def test_no_fp32_leaves_ratios_blank(tmp_path: Path) -> None:
    records = [r for r in fake_run() if r["kind"] != "fp32"]
    paths = write_run(tmp_path, records)
    out_csv, out_md = tmp_path / "s.csv", tmp_path / "s.md"
    summarize(paths, str(out_csv), str(out_md), str(tmp_path / "plots"))
    rows = read_rows_from(out_csv)
    assert all(r["compression ×"] == "" and r["speed-up ×"] == "" for r in rows)
    assert "No fp32 metrics" in out_md.read_text(encoding="utf-8")
    assert not_faster_sentences(records) == []


def read_rows_from(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_every_plot_written_and_no_temp_files(run_dir: Path) -> None:
    for name in PLOT_NAMES:
        for ext in PLOT_FORMATS:
            assert (run_dir / "plots" / f"{name}.{ext}").stat().st_size > 0
    leftovers = [p.name for p in run_dir.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    assert leftovers == []
    png = (run_dir / "plots" / "metrics_bars.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_layer_error_plot_exists_without_gptq_or_rtn(tmp_path: Path) -> None:
    records = [r for r in fake_run() if r["kind"] not in ("gptq", "rtn")]
    paths = write_run(tmp_path, records)
    summarize(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.md"), str(tmp_path / "plots"))
    for ext in PLOT_FORMATS:
        assert (tmp_path / "plots" / f"layer_error.{ext}").stat().st_size > 0


def test_pareto_front() -> None:
    points = [
        (0.05, 0.90),  # 0: front (fastest)
        (0.06, 0.92),  # 1: front
        (0.07, 0.91),  # 2: beaten by 1
        (0.06, 0.89),  # 3: beaten by 1 (same latency, lower accuracy)
        (0.09, 0.93),  # 4: front
        (0.10, 0.93),  # 5: beaten by 4 (same accuracy, slower)
        (0.09, 0.93),  # 6: identical to 4, kept
    ]
    assert pareto_front(points) == [0, 1, 4, 6]
    assert pareto_front([]) == []


def test_schema_rejects_missing_accuracy(tmp_path: Path) -> None:
    record = fake_run()[0]
    del record["accuracy"]
    path = tmp_path / "rtn_w4.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ValueError, match=r"rtn_w4\.json.*'accuracy'"):
        load_metrics([str(path)])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r["latency_ms"].pop("p50"), "latency_ms.p50"),
        (lambda r: r.update(accuracy=1.5), "accuracy"),
        (lambda r: r.update(surprise=1), "surprise"),
        (lambda r: r["confusion_matrix"].pop(), "confusion_matrix"),
    ],
)
def test_schema_names_the_field(tmp_path: Path, mutate: Any, field: str) -> None:
    record = copy.deepcopy(fake_run()[2])
    mutate(record)
    path = tmp_path / "fp32.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ValueError, match=rf"fp32\.json: metrics field '{field}'"):
        load_metrics([str(path)])


def test_failed_summary_leaves_no_outputs(tmp_path: Path) -> None:
    records = fake_run()
    records[1]["throughput"]["batch"] = 256
    paths = write_run(tmp_path, records)
    with pytest.raises(ValueError, match=r"throughput\.batch"):
        summarize(paths, str(tmp_path / "s.csv"), str(tmp_path / "s.md"), str(tmp_path / "p"))
    assert not (tmp_path / "s.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["metrics"]
