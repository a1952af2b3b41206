"""The workflow end to end on the tiny config, and what reruns after each kind of change."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.workflow_helpers import append_comment, copy_workflow, job_name, planned_jobs, run_ok

pytestmark = pytest.mark.workflow

MODEL = "mlp"
TINY_METHODS = ["ptq_dynamic", "rtn_w4", "gptq_w4"]
VARIANTS = ["fp32", *TINY_METHODS]
REPS = ["seed7", "seed8"]  # tests/config_tiny.yaml: seed 7, two replicates
PLOTS = 6


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A finished run of the tiny config in a private copy of the repository."""
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    run_ok(workdir, "--cores", "2")
    return workdir


def read(workdir: Path, rel: str) -> dict:
    return json.loads((workdir / "results" / rel).read_text())


def quality(workdir: Path, rep: str, method: str) -> dict:
    return read(workdir, f"quality/{MODEL}/{rep}/{method}.json")


def jobs(rule: str, *groups: list[str]) -> dict[str, int]:
    """One job of ``rule`` per combination of the wildcard values in ``groups``."""
    combos: list[tuple[str, ...]] = [()]
    for values in groups:
        combos = [(*c, v) for c in combos for v in values]
    return {job_name(rule, *c): 1 for c in combos}


def test_every_output_exists(done):
    results = done / "results"
    assert (results / "data" / "raw.csv").stat().st_size > 0
    for rep in REPS:
        for name in ("dataset.npz", "preprocessor.joblib", "data_card.json"):
            assert (results / "data" / rep / name).stat().st_size > 0, (rep, name)
        models = results / "models" / MODEL / rep
        assert (models / "fp32.pt").is_file() and (models / "fp32.history.json").is_file()
        for m in TINY_METHODS:
            assert (models / f"{m}.pt").is_file() and (models / f"{m}.info.json").is_file()
        assert sorted(p.stem for p in (results / "quality" / MODEL / rep).iterdir()) == sorted(
            VARIANTS
        )
    assert sorted(p.stem for p in (results / "timing" / MODEL).iterdir()) == sorted(TINY_METHODS)
    assert sorted(p.stem for p in (results / "metrics" / MODEL).iterdir()) == sorted(VARIANTS)
    for name in ("summary.csv", "summary.md", "recommendation.json"):
        assert (results / name).stat().st_size > 0, name
    plots = sorted(p.name for p in (results / "plots").iterdir())
    assert len(plots) == 2 * PLOTS and all(p.endswith((".png", ".svg")) for p in plots)
    assert not list(results.rglob("*.tmp"))
    for log in ["generate_traffic", *(f"preprocess/{r}" for r in REPS), "summarize"]:
        assert (done / "logs" / f"{log}.log").is_file(), log


def test_each_replicate_has_its_own_split_and_training(done):
    seeds = [read(done, f"data/{rep}/data_card.json")["seed"] for rep in REPS]
    assert seeds == [7, 8]
    a, b = (quality(done, rep, "fp32") for rep in REPS)
    assert a["test_rows_sha256"] != b["test_rows_sha256"]  # other rows in the test split
    assert (a["seed"], b["seed"]) == (7, 8)
    raw = (done / "results" / "data" / "raw.csv").read_bytes()
    assert raw  # one raw file shared by both replicates


def test_quality_records_pair_on_the_same_test_rows(done):
    for rep in REPS:
        ref = quality(done, rep, "fp32")
        assert ref["bits"] == 32 and ref["kernels"] == ["aten::addmm"]
        for method in VARIANTS:
            q = quality(done, rep, method)
            assert (q["model"], q["replicate"], q["method"]) == (MODEL, rep, method)
            assert q["test_rows_sha256"] == ref["test_rows_sha256"]
            assert q["labels"] == ref["labels"] and len(q["predictions"]) == q["test_rows"]
            hits = sum(p == y for p, y in zip(q["predictions"], q["labels"], strict=True))
            assert hits / q["test_rows"] > 0.6, (rep, method)
            ckpt = done / "results" / "models" / MODEL / rep / f"{method}.pt"
            assert q["size_bytes"] == ckpt.stat().st_size
            assert 0 < q["payload_bytes"] < q["size_bytes"]
        assert "quantized::linear_dynamic" in quality(done, rep, "ptq_dynamic")["kernels"]
        for m in ("rtn_w4", "gptq_w4"):
            assert len(quality(done, rep, m)["info"]["layer_error"]) == 3


def test_timing_pairs_fp32_with_each_method_in_alternating_rounds(done):
    for method in TINY_METHODS:
        t = read(done, f"timing/{MODEL}/{method}.json")
        assert t["replicate"] == REPS[0]
        assert (t["reference"]["method"], t["candidate"]["method"]) == ("fp32", method)
        orders = [r["order"] for r in t["rounds"]]
        assert len(orders) == 4
        assert orders[0] != orders[1] and orders[0] == orders[2]
        for side in ("reference", "candidate"):
            assert sum(len(r[side]["latency_ms"]) for r in t["rounds"]) == 40
            assert sum(len(r[side]["pass_ms"]) for r in t["rounds"]) == 8
            assert all(v > 0 for r in t["rounds"] for v in r[side]["latency_ms"])


def test_summary_has_one_row_per_variant(done):
    md = (done / "results" / "summary.md").read_text()
    for variant in VARIANTS:
        assert re.search(rf"^\|\s*{variant}\s*\|", md, re.MULTILINE), variant
    csv_rows = (done / "results" / "summary.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(VARIANTS)


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
    dest = tmp_path / "wf"
    shutil.copytree(done, dest, symlinks=True)
    return dest


def method_jobs(method: str, reps: list[str] = REPS) -> dict[str, int]:
    """What one method variant's change reruns: its quantize and score jobs in every
    replicate, its timing job and the summary."""
    return {
        **jobs("quantize", [MODEL], reps, [method]),
        **jobs("score", [MODEL], reps, [method]),
        **jobs("time", [MODEL], [method]),
        "summarize": 1,
    }


def test_changing_one_variant_reruns_it_in_every_replicate_and_nothing_else(copy_of_done):
    edit_config(copy_of_done, lambda c: c["methods"]["rtn_w4"].update(bits=3))
    assert planned_jobs(copy_of_done) == method_jobs("rtn_w4")


def test_adding_a_variant_adds_only_its_jobs(copy_of_done):
    edit_config(copy_of_done, lambda c: c["methods"].update(rtn_w3={"kind": "rtn", "bits": 3}))
    assert planned_jobs(copy_of_done) == method_jobs("rtn_w3")


def test_adding_a_replicate_reruns_only_its_jobs(copy_of_done):
    edit_config(copy_of_done, lambda c: c.update(replicates=3))
    assert planned_jobs(copy_of_done) == {
        **jobs("preprocess", ["seed9"]),
        **jobs("train_fp32", [MODEL], ["seed9"]),
        **jobs("quantize", [MODEL], ["seed9"], TINY_METHODS),
        **jobs("score", [MODEL], ["seed9"], VARIANTS),
        "summarize": 1,
    }


def test_replicates_given_as_seeds_reuse_the_same_results(copy_of_done):
    edit_config(copy_of_done, lambda c: c.update(replicates=[7, 8]))
    assert planned_jobs(copy_of_done) == {}


def test_dropping_a_replicate_only_resummarizes(copy_of_done):
    edit_config(copy_of_done, lambda c: c.update(replicates=1))
    assert planned_jobs(copy_of_done) == {"summarize": 1}


def test_changing_the_statistics_reruns_only_the_summary(copy_of_done):
    edit_config(copy_of_done, lambda c: c.update(report={"confidence": 0.9}))
    assert planned_jobs(copy_of_done) == {"summarize": 1}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("methods/rtn.py", method_jobs("rtn_w4")),
        ("methods/gptq.py", method_jobs("gptq_w4")),
        ("report/stats.py", {"summarize": 1}),
        ("evaluate.py", {**jobs("score", [MODEL], REPS, VARIANTS), "summarize": 1}),
        ("latency.py", {**jobs("time", [MODEL], TINY_METHODS), "summarize": 1}),
        (
            "kernels.py",
            {
                **jobs("score", [MODEL], REPS, VARIANTS),
                **jobs("time", [MODEL], TINY_METHODS),
                "summarize": 1,
            },
        ),
    ],
)
def test_editing_a_library_module_reruns_exactly_its_users(copy_of_done, module, expected):
    append_comment(copy_of_done / "src" / "quantbench" / module)
    assert planned_jobs(copy_of_done) == expected


def test_changing_model_settings_reruns_training_and_everything_after(copy_of_done):
    edit_config(copy_of_done, lambda c: c["model"].update(hidden=[16, 16]))
    assert planned_jobs(copy_of_done) == {
        **jobs("train_fp32", [MODEL], REPS),
        **jobs("quantize", [MODEL], REPS, TINY_METHODS),
        **jobs("score", [MODEL], REPS, VARIANTS),
        **jobs("time", [MODEL], TINY_METHODS),
        "summarize": 1,
    }


def test_changing_data_settings_reruns_everything(copy_of_done):
    edit_config(copy_of_done, lambda c: c["data"]["synthetic"].update(n_flows=1600))
    planned = planned_jobs(copy_of_done)
    assert {"generate_traffic", "summarize"} <= set(planned)
    per_rep = 2 + len(TINY_METHODS) + len(VARIANTS)  # preprocess, train, quantize, score
    assert sum(planned.values()) == 2 + len(REPS) * per_rep + len(TINY_METHODS)


def test_dag_and_rulegraph_are_valid_dot(done):
    import pydot

    per_rep = 2 + len(TINY_METHODS) + len(VARIANTS)
    all_jobs = 3 + len(REPS) * per_rep + len(TINY_METHODS)  # generate, summarize, all
    for flag, count in (("--dag", all_jobs), ("--rulegraph", 8)):
        proc = run_ok(done, flag)
        (graph,) = pydot.graph_from_dot_data(proc.stdout)
        nodes = [n for n in graph.get_nodes() if n.get_name().isdigit()]
        assert len(nodes) == count, flag
        labels = " ".join(n.get("label") for n in nodes)
        for rule in ("generate_traffic", "preprocess", "train_fp32", "quantize", "score", "time"):
            assert rule in labels, (flag, rule)
        assert len(graph.get_edges()) >= count - 1


def test_report_is_self_contained_html_with_every_item(done):
    run_ok(done, "--report", "report.html")
    html = (done / "report.html").read_text()
    assert "<html" in html.lower()
    for item in ("summary.csv", "summary.md", "accuracy_vs_size", "layer_error", "accuracy_diff"):
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
    per_rep = 2 + len(TINY_METHODS) + len(VARIANTS)
    assert len(declared) == 2 + len(REPS) * per_rep + len(TINY_METHODS)
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
