"""The workflow end to end on the tiny config, and what reruns after each kind of change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.workflow_helpers import append_comment, copy_workflow, planned_jobs, run_ok

pytestmark = pytest.mark.workflow

TINY_METHODS = ["ptq_dynamic", "rtn_w4", "gptq_w4"]
MODELS = ["fp32", *TINY_METHODS]


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A finished run of the tiny config in a private copy of the repository."""
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    run_ok(workdir, "--cores", "2")
    return workdir


def metrics(workdir: Path, model: str) -> dict:
    return json.loads((workdir / "results" / "metrics" / f"{model}.json").read_text())


def test_every_output_exists(done):
    outputs = ["data/raw.csv", "data/dataset.npz", "data/preprocessor.joblib",
               "data/data_card.json", "models/fp32.pt", "models/fp32.history.json",
               "summary.csv", "summary.md"]  # fmt: skip
    for rel in outputs:
        assert (done / "results" / rel).stat().st_size > 0, rel
    for m in TINY_METHODS:
        assert (done / "results" / "models" / f"{m}.pt").is_file()
        assert (done / "results" / "models" / f"{m}.info.json").is_file()
    plots = sorted(p.name for p in (done / "results" / "plots").iterdir())
    assert len(plots) == 10 and all(p.endswith((".png", ".svg")) for p in plots)
    assert not list((done / "results").rglob("*.tmp"))
    for log in ["generate_traffic", "preprocess", "train_fp32", "summarize"]:
        assert (done / "logs" / f"{log}.log").is_file()


def test_metrics_are_plausible_and_measured(done):
    fp32 = metrics(done, "fp32")
    for model in MODELS:
        m = metrics(done, model)
        assert m["method"] == model
        assert 0.6 < m["accuracy"] <= 1.0
        assert abs(m["accuracy"] - fp32["accuracy"]) < 0.1
        assert m["size_bytes"] == (done / "results" / "models" / f"{model}.pt").stat().st_size
        assert 0 < m["payload_bytes"] < m["size_bytes"]
        assert 0 < m["latency_ms"]["p50"] <= m["latency_ms"]["p95"]
        assert m["throughput"]["samples_per_s"] > 0
        assert m["threads"] == 1 and m["device"] == "cpu"
        cm = m["confusion_matrix"]
        assert sum(map(sum, cm)) == sum(c["support"] for c in m["per_class"].values())
    assert fp32["kernels"] == ["aten::addmm"] and fp32["bits"] == 32
    assert "quantized::linear_dynamic" in metrics(done, "ptq_dynamic")["kernels"]
    assert metrics(done, "ptq_dynamic")["engine"] in ("x86", "fbgemm", "qnnpack", "onednn")
    assert metrics(done, "rtn_w4")["size_bytes"] < metrics(done, "ptq_dynamic")["size_bytes"]
    for m in ("rtn_w4", "gptq_w4"):
        assert len(metrics(done, m)["layer_error"]) == 3


def test_summary_has_one_row_per_model(done):
    md = (done / "results" / "summary.md").read_text()
    for model in MODELS:
        assert re.search(rf"^\|\s*{model}\s*\|", md, re.MULTILINE), model
    csv_rows = (done / "results" / "summary.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(MODELS)


def test_unchanged_rerun_does_nothing(done):
    assert planned_jobs(done) == {}


def edit_config(workdir: Path, change) -> None:
    path = workdir / "tests" / "config_tiny.yaml"
    cfg = yaml.safe_load(path.read_text())
    change(cfg)
    path.write_text(yaml.safe_dump(cfg))


@pytest.fixture
def copy_of_done(done, tmp_path) -> Path:
    """A private copy of the finished run (outputs, metadata and mtimes kept)."""
    import shutil

    dest = tmp_path / "wf"
    shutil.copytree(done, dest, symlinks=True)
    return dest


def test_changing_one_variant_reruns_only_that_variant(copy_of_done):
    edit_config(copy_of_done, lambda c: c["methods"]["rtn_w4"].update(bits=3))
    assert planned_jobs(copy_of_done) == {
        "quantize[rtn_w4]": 1,
        "evaluate[rtn_w4]": 1,
        "summarize": 1,
    }


def test_adding_a_variant_adds_only_its_jobs(copy_of_done):
    edit_config(copy_of_done, lambda c: c["methods"].update(rtn_w3={"kind": "rtn", "bits": 3}))
    jobs = planned_jobs(copy_of_done)
    assert jobs == {"quantize[rtn_w3]": 1, "evaluate[rtn_w3]": 1, "summarize": 1}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("methods/rtn.py", {"quantize[rtn_w4]", "evaluate[rtn_w4]", "summarize"}),
        ("methods/gptq.py", {"quantize[gptq_w4]", "evaluate[gptq_w4]", "summarize"}),
        ("report.py", {"summarize"}),
        ("latency.py", {*(f"evaluate[{m}]" for m in MODELS), "summarize"}),
    ],
)
def test_editing_a_library_module_reruns_exactly_its_users(copy_of_done, module, expected):
    append_comment(copy_of_done / "src" / "quantbench" / module)
    assert set(planned_jobs(copy_of_done)) == expected


def test_changing_model_settings_reruns_training_and_everything_after(copy_of_done):
    edit_config(copy_of_done, lambda c: c["model"].update(hidden=[16, 16]))
    jobs = planned_jobs(copy_of_done)
    assert set(jobs) == {
        "train_fp32",
        *(f"quantize[{m}]" for m in TINY_METHODS),
        *(f"evaluate[{m}]" for m in MODELS),
        "summarize",
    }


def test_changing_data_settings_reruns_everything(copy_of_done):
    edit_config(copy_of_done, lambda c: c["data"]["synthetic"].update(n_flows=1600))
    jobs = planned_jobs(copy_of_done)
    assert {"generate_traffic", "preprocess", "train_fp32", "summarize"} <= set(jobs)
    assert len(jobs) == 4 + len(TINY_METHODS) + len(MODELS)


def test_dag_and_rulegraph_are_valid_dot(done):
    import pydot

    all_jobs = 5 + len(TINY_METHODS) + len(MODELS)  # data, train, summarize, all + per model
    for flag, count in (("--dag", all_jobs), ("--rulegraph", 7)):
        proc = run_ok(done, flag)
        (graph,) = pydot.graph_from_dot_data(proc.stdout)
        nodes = [n for n in graph.get_nodes() if n.get_name().isdigit()]
        assert len(nodes) == count, flag
        labels = " ".join(n.get("label") for n in nodes)
        for rule in ("generate_traffic", "preprocess", "train_fp32", "quantize", "evaluate"):
            assert rule in labels, (flag, rule)
        assert len(graph.get_edges()) >= count - 1


def test_report_is_self_contained_html_with_every_item(done):
    run_ok(done, "--report", "report.html")
    html = (done / "report.html").read_text()
    assert "<html" in html.lower()
    for item in ("summary.csv", "summary.md", "accuracy_vs_size", "layer_error", "Pareto"):
        assert item in html, item


def declared_library_inputs(workdir: Path) -> dict[str, set[str]]:
    """Job log path -> library files the job declares as inputs (from a forced dry run)."""
    proc = run_ok(workdir, "--dry-run", "--forceall", "--cores", "2")
    declared = {}
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout):
        inputs = re.search(r"^    input: (.*)$", block, re.MULTILINE)
        log = re.search(r"^    log: (.*)$", block, re.MULTILINE)
        if inputs and log:
            files = [f.strip() for f in inputs.group(1).split(",")]
            prefix = "src/quantbench/"
            declared[log.group(1).strip()] = {
                f[len(prefix) :] for f in files if f.startswith(prefix)
            }
    return declared


def test_every_job_declares_exactly_the_library_modules_it_ran(done):
    declared = declared_library_inputs(done)
    assert len(declared) == 4 + 2 * len(TINY_METHODS) + 1
    for log, files in declared.items():
        text = (done / log).read_text()
        used = re.search(r"library modules used: (.*)$", text, re.MULTILINE)
        assert used, f"{log} has no record of the modules it used"
        assert set(used.group(1).split()) == files, log


def test_reordering_config_keys_reruns_nothing(copy_of_done):
    def reorder(cfg):
        for section in ("data", "model", "train", "evaluate"):
            cfg[section] = dict(reversed(list(cfg[section].items())))
        cfg["methods"] = {k: dict(reversed(list(v.items()))) for k, v in cfg["methods"].items()}

    edit_config(copy_of_done, reorder)
    assert planned_jobs(copy_of_done) == {}
