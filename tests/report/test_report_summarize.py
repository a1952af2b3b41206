"""The summarize entry: every output written, atomically, reproducibly, or none at all."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from quantbench.report import PLOT_FORMATS, PLOT_NAMES, summarize
from quantbench.report.facts import SCHEMA_DIR
from tests.report_facts import DEFAULT_METHODS, write_run

REPORT = {"confidence": 0.95, "bootstrap_resamples": 999, "seed": 0}
RECOMMEND = {"goal": "size", "max_accuracy_drop": 0.5}
METHODS = [m for m in DEFAULT_METHODS if m.name in ("ptq_static", "gptq_w4", "rtn_w2")]


def run_summarize(root: Path, facts: Any, **overrides: Any) -> dict[str, Path]:
    out = {
        "metrics": root / "metrics",
        "csv": root / "summary.csv",
        "md": root / "summary.md",
        "recommendation": root / "recommendation.json",
        "plots": root / "plots",
    }
    kwargs = {"report": REPORT, "recommend": RECOMMEND, **overrides}
    summarize(facts.quality, facts.timing, str(out["metrics"]), str(out["csv"]), str(out["md"]),
              str(out["recommendation"]), str(out["plots"]), **kwargs)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return write_run(tmp_path_factory.mktemp("facts"), METHODS, rows=900, rounds=6)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory, facts: Any) -> dict[str, Path]:
    return run_summarize(tmp_path_factory.mktemp("out"), facts)


def test_plot_names() -> None:
    assert PLOT_NAMES == (
        "accuracy_vs_size", "accuracy_vs_latency", "metrics_bars", "confusion_matrices",
        "layer_error", "accuracy_diff",
    )  # fmt: skip


def test_every_output_is_written(outputs: dict[str, Path]) -> None:
    names = sorted(p.name for p in (outputs["metrics"] / "mlp").iterdir())
    assert names == ["fp32.json", "gptq_w4.json", "ptq_static.json", "rtn_w2.json"]
    schema = json.loads((SCHEMA_DIR / "metrics.schema.json").read_text(encoding="utf-8"))
    for path in (outputs["metrics"] / "mlp").iterdir():
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), schema)
    assert outputs["csv"].read_text(encoding="utf-8").startswith("model,method,kind,bits,")
    assert outputs["md"].read_text(encoding="utf-8").startswith("# quantbench summary\n")
    rec = json.loads(outputs["recommendation"].read_text(encoding="utf-8"))
    assert rec["models"][0]["model"] == "mlp" and rec["goal"] == "size"
    for name in PLOT_NAMES:
        for ext in PLOT_FORMATS:
            assert (outputs["plots"] / f"{name}.{ext}").stat().st_size > 1000
    assert (outputs["plots"] / "metrics_bars.png").read_bytes().startswith(b"\x89PNG")
    root = outputs["md"].parent
    leftovers = [p.name for p in root.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]
    assert leftovers == []


def test_same_facts_give_the_same_bytes(outputs: dict[str, Path], facts: Any, tmp_path: Path):
    again = run_summarize(tmp_path, facts)
    for key in ("csv", "md", "recommendation"):
        assert again[key].read_bytes() == outputs[key].read_bytes()
    for path in (outputs["metrics"] / "mlp").iterdir():
        assert (again["metrics"] / "mlp" / path.name).read_bytes() == path.read_bytes()
    for name in PLOT_NAMES:
        svg = f"{name}.svg"
        assert (again["plots"] / svg).read_bytes() == (outputs["plots"] / svg).read_bytes()


def test_the_recommendation_tops_summary_md(outputs: dict[str, Path]) -> None:
    md = outputs["md"].read_text(encoding="utf-8")
    rec = json.loads(outputs["recommendation"].read_text(encoding="utf-8"))
    assert md.index(rec["models"][0]["sentence"]) < md.index("## Results")
    assert "`rtn_w2` not chosen: accuracy worse by" in md  # 160 rows broken: beyond the bound


def test_a_failed_summary_writes_nothing(tmp_path: Path) -> None:
    facts = write_run(tmp_path / "facts", METHODS[:1], rows=300, rounds=4)
    bad = Path(facts.quality[-1])
    bad.write_text(bad.read_text(encoding="utf-8").replace('"device": "cpu"', '"device": "gpu"'))
    with pytest.raises(ValueError, match=r"quality field 'device'"):
        run_summarize(tmp_path / "out", facts)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"report": {"confidence": 95}}, r"report\.confidence must lie in \(0, 1\), got 95"),
        ({"recommend": {"goal": "speed"}}, r"recommend\.goal must be one of"),
        ({"recommend": {"goal": "size", "max_drop": 1}}, r"recommend\.max_drop: unknown key"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, facts: Any, overrides: Any, message: str):
    with pytest.raises(ValueError, match=message):
        run_summarize(tmp_path, facts, **overrides)
    assert list(tmp_path.iterdir()) == []


def test_importing_the_report_loads_no_plotting_or_statistics_library() -> None:
    code = (
        "import sys, quantbench.report; "
        "print(sorted(m for m in ('matplotlib', 'scipy', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[2] / "src",
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_mixed_batch_sizes_are_refused(tmp_path: Path) -> None:
    facts = write_run(tmp_path / "facts", METHODS[:2], rows=300, rounds=4)
    path = Path(facts.timing[1])
    record = json.loads(path.read_text(encoding="utf-8"))
    record["settings"]["batch_size"] = 256
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"batch_size' differs .*mlp/gptq_w4: 256, mlp/ptq_static: 512"
    ):
        run_summarize(tmp_path / "out", facts)
    assert not (tmp_path / "out").exists()
