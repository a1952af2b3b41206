"""The workflow end to end on the tiny config, and what reruns after each kind of change."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from quantbench.machine.kernels import INT4_OP
from quantbench.quant.ao import backend
from quantbench.quant.weightonly.params import EXEC_INT4
from quantbench.training.checkpoint import read_checkpoint
from tests.workflow_helpers import (
    TINY,
    append_comment,
    copy_workflow,
    job_name,
    pin_engine,
    planned_jobs,
    run_ok,
    snakemake,
)

pytestmark = pytest.mark.workflow

MODEL = "mlp"
TINY_METHODS = ["ptq_dynamic", "rtn_w4", "gptq_w4"]
VARIANTS = ["fp32", *TINY_METHODS]
REPS = ["seed7", "seed8"]  # tests/config_tiny.yaml: seed 7, two replicates
PLOTS = 6
PROBE = {job_name("probe_engine", MODEL): 1}  # the int8 engine, measured on seed7's FP32 model


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
        for name in ("dataset.npz", "preprocessor.joblib", "data_card.json", "encoding.json"):
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
    for rep in REPS:
        assert (results / "data" / rep / "test_raw.npz").stat().st_size > 0
        for m in VARIANTS:
            folder = results / "deploy" / MODEL / rep / m
            names = ("model.onnx", "manifest.json", "figures.json")
            assert sorted(p.name for p in folder.iterdir()) == sorted(names), folder
            assert (results / "parity" / MODEL / rep / f"{m}.json").is_file()


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


ALL_SIDES = ("reference", "candidate", "ort_reference", "ort_candidate")


def test_timing_pairs_fp32_with_each_method_in_rotating_rounds_in_both_runtimes(done):
    for method in TINY_METHODS:
        t = read(done, f"timing/{MODEL}/{method}.json")
        assert t["replicate"] == REPS[0]
        assert (t["reference"]["method"], t["candidate"]["method"]) == ("fp32", method)
        assert t["runtimes"] == ["torch", "onnxruntime"]
        orders = [r["order"] for r in t["rounds"]]
        assert len(orders) == 4
        assert [o[0] for o in orders] == list(ALL_SIDES)  # each side first once
        ort = t["onnxruntime"]
        assert ort["session_options"]["intra_op_num_threads"] == 1
        assert ort["reference"]["artifact"] == f"results/deploy/{MODEL}/{REPS[0]}/fp32/model.onnx"
        assert ort["reference"]["quantized_ops"] == {}
        if method == "ptq_dynamic":
            assert ort["candidate"]["quantized_ops"]  # its int8 kernels
        else:  # the dequantized path: codes in the file, FP32 products once the session opens
            assert ort["candidate"]["quantized_ops"] == {}
            assert not {"BitShift", "BitwiseAnd", "Cast"} & set(ort["candidate"]["ops"])
        for side in ALL_SIDES:
            assert sum(len(r[side]["latency_ms"]) for r in t["rounds"]) == 40
            assert sum(len(r[side]["pass_ms"]) for r in t["rounds"]) == 8
            assert all(v > 0 for r in t["rounds"] for v in r[side]["latency_ms"])


def test_summary_has_one_row_per_variant_and_runtime(done):
    md = (done / "results" / "summary.md").read_text()
    for variant in VARIANTS:
        for runtime in ("torch", "onnxruntime"):
            pattern = rf"^\|\s*{variant}\s*\|\s*{runtime}\s*\|"
            assert re.search(pattern, md, re.MULTILINE), (variant, runtime)
    csv_rows = (done / "results" / "summary.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 2 * len(VARIANTS)


def test_every_artifact_holds_parity_and_the_recommendation_names_one(done, tmp_path):
    import csv

    from quantbench.deploy.cli import main
    from quantbench.deploy.manifest import read_manifest, sha256_file

    for rep in REPS:
        for method in VARIANTS:
            manifest = read_manifest(done / "results" / "deploy" / MODEL / rep / method)
            ckpt = done / "results" / "models" / MODEL / rep / f"{method}.pt"
            assert manifest.raw["checkpoint_sha256"] == sha256_file(ckpt)
            assert manifest.raw["method"]["name"] == method
            parity = read(done, f"parity/{MODEL}/{rep}/{method}.json")
            assert parity["rows"] == quality(done, rep, method)["test_rows"]
            if method == "fp32":
                assert parity["agreement"] == 1.0 and parity["max_abs_logit_diff"] <= 1e-4
            else:
                assert parity["agreement"] >= 0.995, (rep, method)
            figures = read(done, f"deploy/{MODEL}/{rep}/{method}/figures.json")
            assert figures["metrics"] == read(done, f"metrics/{MODEL}/{method}.json")
            facts = {k: v for k, v in parity.items() if k != "predictions"}  # per row: not here
            assert len(parity["predictions"]) == parity["rows"]
            assert figures["parity"] == facts and figures["parity_ok"] is True
    rec = read(done, "recommendation.json")["models"][0]
    artifact = done / rec["artifact"]
    assert rec["artifact"] == f"results/deploy/{MODEL}/{REPS[0]}/{rec['choice']}/model.onnx"
    rows = list(csv.DictReader((done / "results" / "summary.csv").open()))
    assert {r["parity"] for r in rows} == {"ok"}
    assert "## Deployable ONNX artifacts" in (done / "results" / "summary.md").read_text()
    out = tmp_path / "predicted.csv"
    assert main(["predict", str(artifact), str(done / "results/data/raw.csv"), "-o", str(out)]) == 0
    predicted = list(csv.DictReader(out.open()))
    assert len(predicted) == 1500 and set(predicted[0]) >= {"label", "predicted"}


def test_a_configured_csv_is_predicted_with_the_recommended_artifact(copy_of_done):
    import csv

    edit_config(copy_of_done, lambda c: c.update(deploy={"predict": "results/data/raw.csv"}))
    assert planned_jobs(copy_of_done) == {job_name("predict_rows", MODEL): 1}
    run_ok(copy_of_done, "--cores", "2")
    rows = list(csv.DictReader((copy_of_done / "results/predictions" / f"{MODEL}.csv").open()))
    raw = list(csv.DictReader((copy_of_done / "results/data/raw.csv").open()))
    assert len(rows) == len(raw) and [r["label"] for r in rows] == [r["label"] for r in raw]
    hits = sum(r["predicted"] == r["label"] for r in rows)
    assert hits / len(rows) > 0.6


def score_blocks(workdir: Path) -> list[str]:
    """The score jobs of a dry run, as Snakemake prints them (input, output, ...)."""
    proc = run_ok(workdir, "--dry-run", "--cores", "2")
    return [b for b in re.split(r"\n(?=rule \w+:)", proc.stdout) if b.startswith("rule score:")]


def test_export_off_writes_no_artifacts_and_reads_no_deploy_code(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    blocks = score_blocks(workdir)
    assert len(blocks) == len(REPS) * len(VARIANTS)
    for block in blocks:  # by default the score job exports and checks its variant
        assert "/model.onnx" in block and "results/parity/" in block
        assert "src/quantbench/deploy/score_export.py" in block
    edit_config(workdir, lambda c: c.update(deploy={"export": False}))
    proc = snakemake(workdir, "--dry-run")  # ONNX Runtime is timed by default: no artifacts
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "config error" in line]
    assert proc.returncode != 0 and len(lines) == 1 and "runtimes: [torch]" in lines[0]
    edit_config(workdir, lambda c: c.update(runtimes=["torch"]))
    blocks = score_blocks(workdir)
    assert len(blocks) == len(REPS) * len(VARIANTS)
    for block in blocks:
        assert "results/deploy/" not in block and "results/parity/" not in block
        assert "src/quantbench/deploy/" not in block and "test_raw.npz" not in block
    assert planned_jobs(workdir)["summarize"] == 1


def test_unchanged_rerun_does_nothing(done):
    assert planned_jobs(done) == {}


def test_timing_torch_alone_reruns_the_time_jobs_without_the_artifacts(copy_of_done):
    edit_config(copy_of_done, lambda c: c.update(runtimes=["torch"]))
    assert planned_jobs(copy_of_done) == {**jobs("time", [MODEL], TINY_METHODS), "summarize": 1}
    run_ok(copy_of_done, "--cores", "2")
    t = read(copy_of_done, f"timing/{MODEL}/ptq_dynamic.json")
    assert t["runtimes"] == ["torch"] and "onnxruntime" not in t
    assert all(set(r) == {"order", "reference", "candidate"} for r in t["rounds"])
    summary = (copy_of_done / "results" / "summary.csv").read_text()
    assert "onnxruntime" not in summary


def edit_config(workdir: Path, change, configfile: str = TINY) -> None:
    path = workdir / configfile
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
    """What one method variant's change reruns: its quantize and score jobs (the score job
    re-exports and re-checks its artifact) in every replicate, its timing job and the summary."""
    return {
        **jobs("quantize", [MODEL], reps, [method]),
        **jobs("score", [MODEL], reps, [method]),
        **jobs("time", [MODEL], [method]),
        "summarize": 1,
    }


SCORE_AND_TIME = {
    **jobs("score", [MODEL], REPS, VARIANTS),
    **jobs("time", [MODEL], TINY_METHODS),
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


def test_changing_the_accuracy_level_reexports_only_the_int4_variants(copy_of_done):
    """The tiny run's rtn and gptq run the dequantized path (FP32 products, no MatMulNBits):
    MatMulNBits' accuracy level is none of their inputs."""
    edit_config(copy_of_done, lambda c: c.update(deploy={"export": True, "accuracy_level": 0}))
    assert planned_jobs(copy_of_done) == {}


def test_changing_a_parity_threshold_reruns_only_the_summary(copy_of_done):
    edit_config(copy_of_done, lambda c: c.update(report={"parity": {"quantized_agreement": 0.9}}))
    assert planned_jobs(copy_of_done) == {"summarize": 1}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("quant/methods/rtn.py", method_jobs("rtn_w4")),
        ("quant/methods/gptq.py", method_jobs("gptq_w4")),
        ("report/stats.py", {"summarize": 1}),
        # a score job also rewrites its artifact: the time jobs that time the artifacts rerun
        ("measure/score.py", SCORE_AND_TIME),
        ("measure/timing.py", {**jobs("time", [MODEL], TINY_METHODS), "summarize": 1}),
        (
            "machine/kernels.py",  # named by int4.py: the weight-only kinds and the exporter
            {
                **jobs("quantize", [MODEL], REPS, ["rtn_w4", "gptq_w4"]),
                **SCORE_AND_TIME,
            },
        ),
        # the score jobs export and check (deploy.export): every artifact is rewritten, so every
        # time job (it times the artifacts) reruns
        ("deploy/parity.py", SCORE_AND_TIME),
        ("deploy/score_export.py", SCORE_AND_TIME),
        ("deploy/preprocess_graph.py", SCORE_AND_TIME),
        ("deploy/predict.py", {}),  # run by users, by no job
        ("measure/engines.py", {**PROBE, **method_jobs("ptq_dynamic")}),
        # the probe builds each engine's model with FX; its new record reruns the int8 jobs
        ("quant/ao/fx.py", {**PROBE, **method_jobs("ptq_dynamic")}),
        ("quant/ao/qconfigs.py", {**PROBE, **method_jobs("ptq_dynamic")}),
        ("measure/probe.py", {**PROBE, **method_jobs("ptq_dynamic")}),
        (
            "quant/weightonly/int4.py",  # the exporter reads weight-only layers through it
            {
                **method_jobs("rtn_w4"),
                **method_jobs("gptq_w4"),
                **SCORE_AND_TIME,
            },
        ),
    ],
)
def test_editing_a_library_module_reruns_exactly_its_users(copy_of_done, module, expected):
    append_comment(copy_of_done / "src" / "quantbench" / module)
    assert planned_jobs(copy_of_done) == expected


def test_changing_model_settings_reruns_training_and_everything_after(copy_of_done):
    edit_config(copy_of_done, lambda c: c["models"]["mlp"].update(hidden=[16, 16]))
    assert planned_jobs(copy_of_done) == {
        **jobs("train_fp32", [MODEL], REPS),
        **jobs("quantize", [MODEL], REPS, TINY_METHODS),
        **jobs("score", [MODEL], REPS, VARIANTS),
        **jobs("time", [MODEL], TINY_METHODS),
        **PROBE,
        "summarize": 1,
    }


def model_jobs(model: str, reps: list[str] = REPS, methods: list[str] = TINY_METHODS) -> dict:
    """Every job of one model: training, quantization and scoring in each replicate, timing,
    and its int8 engine probe (every method list here has an int8 kind)."""
    return {
        job_name("probe_engine", model): 1,
        **jobs("train_fp32", [model], reps),
        **jobs("quantize", [model], reps, methods),
        **jobs("score", [model], reps, ["fp32", *methods]),
        **jobs("time", [model], methods),
    }


def test_adding_a_model_adds_only_its_jobs(copy_of_done):
    cnn = {"arch": "cnn1d", "channels": [8, 8], "hidden": 16}
    edit_config(copy_of_done, lambda c: c["models"].update(cnn=cnn))
    assert planned_jobs(copy_of_done) == {**model_jobs("cnn"), "summarize": 1}


def test_changing_data_settings_reruns_everything(copy_of_done):
    edit_config(copy_of_done, lambda c: c["data"]["synthetic"].update(n_flows=1600))
    planned = planned_jobs(copy_of_done)
    assert {"generate_traffic", "summarize", *PROBE} <= set(planned)
    per_rep = 2 + len(TINY_METHODS) + len(VARIANTS)  # preprocess, train, quantize, score
    assert sum(planned.values()) == 3 + len(REPS) * per_rep + len(TINY_METHODS)


def test_dag_and_rulegraph_are_valid_dot(done):
    import pydot

    per_rep = 2 + len(TINY_METHODS) + len(VARIANTS)
    all_jobs = 4 + len(REPS) * per_rep + len(TINY_METHODS)  # generate, probe, summarize, all
    for flag, count in (("--dag", all_jobs), ("--rulegraph", 9)):
        proc = run_ok(done, flag)
        (graph,) = pydot.graph_from_dot_data(proc.stdout)
        nodes = [n for n in graph.get_nodes() if n.get_name().isdigit()]
        assert len(nodes) == count, flag
        labels = " ".join(n.get("label") for n in nodes)
        rules = ("generate_traffic", "preprocess", "train_fp32", "probe_engine", "quantize")
        for rule in (*rules, "score", "time"):
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
    assert len(declared) == 3 + len(REPS) * per_rep + len(TINY_METHODS)
    for log, files in declared.items():
        text = (done / log).read_text()
        used = re.search(r"library modules used: (.*)$", text, re.MULTILINE)
        assert used, f"{log} has no record of the modules it used"
        assert set(used.group(1).split()) == files, log


def test_reordering_config_keys_reruns_nothing(copy_of_done):
    def reorder(cfg):
        for section in ("data", "train", "evaluate"):
            cfg[section] = dict(reversed(list(cfg[section].items())))
        for section in ("methods", "models"):
            cfg[section] = {k: dict(reversed(list(v.items()))) for k, v in cfg[section].items()}

    edit_config(copy_of_done, reorder)
    assert planned_jobs(copy_of_done) == {}


# ---------------------------------------------------------------- several architectures

MODELS_CONFIG = "tests/config_models.yaml"
ARCH_MODELS = ["mlp", "cnn", "resmlp"]  # tests/config_models.yaml
ARCH_METHODS = ["ptq_static", "rtn_w4"]
ARCH_REPS = ["seed7"]
EXAMPLE = "examples/residual_mlp.py"


@pytest.fixture(scope="module")
def models_done(tmp_path_factory) -> Path:
    """A finished run of an MLP, a cnn1d and the example custom module."""
    workdir = copy_workflow(tmp_path_factory.mktemp("models"))
    run_ok(workdir, "--cores", "2", configfile=MODELS_CONFIG)
    return workdir


@pytest.fixture
def copy_of_models(models_done, tmp_path) -> Path:
    dest = tmp_path / "models"
    shutil.copytree(models_done, dest, symlinks=True)
    return dest


def arch_jobs(model: str) -> dict[str, int]:
    return model_jobs(model, ARCH_REPS, ARCH_METHODS)


def test_every_model_runs_every_method_against_its_own_fp32(models_done):
    for model in ARCH_MODELS:
        metrics = {
            m: read(models_done, f"metrics/{model}/{m}.json") for m in ["fp32", *ARCH_METHODS]
        }
        fp32 = metrics["fp32"]
        assert fp32["coverage"] is None and fp32["weights_quantized_pct"] is None
        for method in ARCH_METHODS:
            m = metrics[method]
            assert m["model"] == model
            assert m["compression"] == pytest.approx(fp32["size_bytes"] / m["size_bytes"])
            share = m["coverage"]["weights_quantized"]
            assert 0 < share <= 1 and m["weights_quantized_pct"] == pytest.approx(100 * share)
        # RTN quantizes every Linear and Conv1d, and these models have no other parameters
        assert metrics["rtn_w4"]["weights_quantized_pct"] == 100.0
    conv = read(models_done, "quality/cnn/seed7/ptq_static.json")["kernels"]
    assert any("conv1d" in k or "conv2d" in k for k in conv), conv  # int8 convolutions ran


def test_the_summary_groups_rows_by_model(models_done):
    import csv

    by_name = sorted(ARCH_MODELS)  # models in name order, FP32 first within each
    md = (models_done / "results" / "summary.md").read_text()
    assert sorted(by_name, key=lambda m: md.index(f"### Model `{m}`")) == by_name
    rows = list(csv.DictReader((models_done / "results" / "summary.csv").open()))
    assert [(r["model"], r["method"], r["runtime"]) for r in rows] == [
        (model, m, runtime)
        for model in by_name
        for runtime in ("torch", "onnxruntime")  # a model's torch rows, then its ONNX Runtime rows
        for m in ["fp32", *ARCH_METHODS]
    ]
    assert [r["weights quantized %"] for r in rows if r["method"] == "fp32"] == [""] * 6
    assert all(float(r["weights quantized %"]) > 0 for r in rows if r["method"] != "fp32")
    rec = read(models_done, "recommendation.json")
    assert [m["model"] for m in rec["models"]] == by_name


def test_a_custom_models_checkpoint_records_its_files_hash(models_done):
    import hashlib

    import torch

    ckpt = torch.load(models_done / "results/models/resmlp/seed7/fp32.pt", weights_only=True)
    spec = ckpt["model"]
    assert (spec["arch"], spec["path"], spec["factory"]) == ("custom", EXAMPLE, "residual_mlp")
    assert spec["sha256"] == hashlib.sha256((models_done / EXAMPLE).read_bytes()).hexdigest()


def test_several_models_rerun_nothing_when_unchanged(models_done):
    assert planned_jobs(models_done, configfile=MODELS_CONFIG) == {}


def test_changing_one_models_parameter_reruns_only_its_jobs(copy_of_models):
    edit_config(copy_of_models, lambda c: c["models"]["cnn"].update(hidden=24), MODELS_CONFIG)
    assert planned_jobs(copy_of_models, configfile=MODELS_CONFIG) == {
        **arch_jobs("cnn"),
        "summarize": 1,
    }


def test_editing_the_custom_module_reruns_only_that_model(copy_of_models):
    append_comment(copy_of_models / EXAMPLE)
    assert planned_jobs(copy_of_models, configfile=MODELS_CONFIG) == {
        **arch_jobs("resmlp"),
        "summarize": 1,
    }


def test_a_configfile_with_replace_models_runs_its_own_models_alone(tmp_path):
    """config.yaml has the model `mlp`; a file listing `cnn` with `replace: [models]` runs only
    `cnn` (without replace it would add `cnn`: tests/test_config_files.py)."""
    workdir = copy_workflow(tmp_path / "wf")
    cnn = {"cnn": {"arch": "cnn1d", "hidden": 16}}
    edit_config(workdir, lambda c: c.update(models=cnn, replace=["methods", "models"]))
    planned = planned_jobs(workdir)
    trained = {name.split("[")[1].split("/")[0] for name in planned if name.startswith("train")}
    assert trained == {"cnn"}


BAD_MODELS = {
    "old model block": (
        {"model": {"hidden": [32]}},
        "config error: model: the single model block is gone; move it under models",
    ),
    "missing module file": (
        {"models": {"u": {"arch": "custom", "path": "nowhere.py", "factory": "build"}}},
        "config error: models.u.path: model file nowhere.py not found",
    ),
    "absent factory": (
        {"models": {"u": {"arch": "custom", "path": EXAMPLE, "factory": "build"}}},
        f"config error: models.u.factory: {EXAMPLE} defines no function 'build'; set factory to "
        "one of: ResidualBlock, ResidualMLP, residual_mlp",
    ),
    "unknown parameter": (
        {"models": {"m": {"arch": "mlp", "widths": [8]}}},
        "config error: models.m: Additional properties are not allowed ('widths' was unexpected)",
    ),
    "group size not fitting": (
        {"models": {"t": {"arch": "transformer", "d_model": 8, "heads": 2, "ffn": 8}}},
        "config error: methods.rtn_w4.group_size: 16 is wider than the layer width 8 of model t",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_stops_snakemake_before_any_job_with_one_line(tmp_path, case):
    extra, expected = BAD_MODELS[case]
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "bad.yaml").write_text(yaml.safe_dump(extra))
    proc = snakemake(workdir, "--dry-run", "--configfile", TINY, "bad.yaml")
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "config error" in line]
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (workdir / "results").exists()


def one_line_errors(proc) -> set[str]:
    """The step's error lines (Snakemake shows the step's own line and then its log, which
    holds the same line); no traceback anywhere."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text
    return {line.strip() for line in text.splitlines() if line.strip().startswith("quantbench: ")}


def test_wrong_output_shape_stops_the_models_training_with_one_line(tmp_path):
    """What only running the factory can tell is checked by its first job, before training."""
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "flat.py").write_text(
        "from torch import nn\n\n\ndef build(n_features, n_classes):\n"
        "    return nn.Linear(n_features, 1)\n"
    )
    model = {"arch": "custom", "path": "flat.py", "factory": "build"}
    edit_config(workdir, lambda c: c.update(models={"flat": model}))
    target = "results/models/flat/seed7/fp32.pt"
    proc = snakemake(workdir, "--cores", "2", target)
    assert proc.returncode != 0
    assert one_line_errors(proc) == {
        "quantbench: the model of build in flat.py returns shape (4, 1) for 4 rows; expected "
        "(4, 3): logits (batch, n_classes)"
    }
    assert not (workdir / target).exists()
    log = (workdir / "logs" / "train_fp32" / "flat" / "seed7.log").read_text()
    assert "epoch" not in log  # no training started


def test_group_size_not_fitting_custom_code_stops_its_quantize_job_with_one_line(tmp_path):
    """A custom model's layer widths are known only once it is built: quantize checks them
    before any work."""
    workdir = copy_workflow(tmp_path / "wf")
    narrow = {"arch": "custom", "path": EXAMPLE, "factory": "residual_mlp",
              "params": {"width": 8, "blocks": 1, "dropout": 0.0}}  # fmt: skip
    edit_config(workdir, lambda c: c.update(models={"narrow": narrow}))
    target = "results/models/narrow/seed7/rtn_w4.pt"
    proc = snakemake(workdir, "--cores", "2", target)
    assert proc.returncode != 0
    assert one_line_errors(proc) == {
        "quantbench: group_size 16 is wider than layer blocks.0.fc1 (8 input columns); use a "
        "group_size of at most 8 or -1 (one group per output channel)"
    }
    assert (workdir / "results/models/narrow/seed7/fp32.pt").is_file()  # training did run
    assert not (workdir / target).exists()


# ---------------------------------------------------------------- the int8 engine


def test_the_probe_measured_every_engine_and_the_int8_model_runs_its_pick(done):
    record = read(done, f"engine/{MODEL}.json")
    assert (record["requested"], record["probed"]) == ("auto", True)
    assert set(record["engines"]) == set(backend.supported_engines())
    ok = [e for e, v in record["engines"].items() if v["status"] == "ok"]
    assert record["engine"] in ok and record["fastest"] in ok
    assert record["settings"]["objective"] == "throughput"
    assert record["settings"]["batch_size"] == 64  # evaluate.batch_size of the tiny config
    assert len(record["round_orders"]) == record["settings"]["rounds"]
    for rep in REPS:
        with backend.quiet():
            ckpt = read_checkpoint(done / "results" / "models" / MODEL / rep / "ptq_dynamic.pt")
        assert ckpt["engine"] == ckpt["params"]["engine"] == record["engine"]
        assert quality(done, rep, "ptq_dynamic")["engine"] == record["engine"]
    assert read(done, f"timing/{MODEL}/ptq_dynamic.json")["candidate"]["engine"] == record["engine"]
    metrics = read(done, f"metrics/{MODEL}/ptq_dynamic.json")
    assert metrics["engine_probe"]["engine"] == record["engine"]
    assert set(metrics["engine_probe"]["engines"]) == set(record["engines"])
    facts = next(
        line for line in (done / "results" / "summary.md").read_text().splitlines()
        if line.startswith("Measured on")
    )  # fmt: skip
    assert f"int8 engine {record['engine']} (probed, throughput at 64 row(s)" in facts
    assert all(name in facts for name in record["engines"])


def test_memory_and_cpu_facts_reach_the_metrics_and_the_summary(done):
    for method in VARIANTS:
        m = read(done, f"metrics/{MODEL}/{method}.json")
        q = quality(done, REPS[0], method)
        assert m["resident_weight_bytes"] == q["resident_weight_bytes"] > 0
        assert (m["peak_rss_bytes"] is None) == (method == "fp32")
        assert (
            m["cpu_facts"]["features"]
            == read(done, f"timing/{MODEL}/rtn_w4.json")["cpu_facts"]["features"]
        )
    fp32 = read(done, f"metrics/{MODEL}/fp32.json")["resident_weight_bytes"]
    assert read(done, f"metrics/{MODEL}/ptq_dynamic.json")["resident_weight_bytes"] < 0.4 * fp32
    t = read(done, f"timing/{MODEL}/rtn_w4.json")
    assert t["memory"]["peak_rss_bytes"] > 50 * 2**20  # torch alone takes more
    md = (done / "results" / "summary.md").read_text()
    assert "| resident KB | peak RSS MB |" in md


def test_changing_the_engine_setting_reruns_the_probe_and_the_int8_jobs(copy_of_done):
    edit_config(
        copy_of_done, lambda c: c.update(quantization={"engine": backend.supported_engines()[0]})
    )
    assert planned_jobs(copy_of_done) == {**PROBE, **method_jobs("ptq_dynamic")}


# ---------------------------------------------------------------- int4 and a named engine

INT4_METHODS = {
    "ptq_static": {"kind": "ptq_static", "calibration_samples": 256},
    "rtn_w4_int4": {"kind": "rtn", "bits": 4, "group_size": 32, "execution": "int4"},
    "gptq_w4_int4": {"kind": "gptq", "bits": 4, "group_size": 32, "act_order": True,
                     "calibration_samples": 256, "execution": "int4"},
    "gptq_w4_deq": {"kind": "gptq", "bits": 4, "group_size": 32, "act_order": True,
                    "calibration_samples": 256, "execution": "dequantized"},
    "rtn_w8_int8": {"kind": "rtn", "bits": 8, "group_size": -1, "symmetric": True,
                    "execution": "int8"},
}  # fmt: skip


def _named_engine() -> str:
    """An engine this torch offers other than the default pick, so that naming it shows."""
    default = backend.select_engine("auto")
    return next((e for e in backend.supported_engines() if e != default), default)


@pytest.fixture(scope="module")
def int4_done(tmp_path_factory) -> Path:
    """One replicate of a 64-wide MLP: ptq_static on a named engine, rtn and gptq on int4."""
    workdir = pin_engine(copy_workflow(tmp_path_factory.mktemp("int4")), _named_engine())

    def change(cfg):
        # these tests are about torch's kernels; the ONNX artifacts are tested on the tiny run
        cfg.update(replicates=1, methods=INT4_METHODS, deploy={"export": False}, runtimes=["torch"])
        cfg["models"]["mlp"]["hidden"] = [64, 64]

    edit_config(workdir, change)
    run_ok(workdir, "--cores", "2")
    return workdir


@pytest.fixture
def copy_of_int4(int4_done, tmp_path) -> Path:
    dest = tmp_path / "int4"
    shutil.copytree(int4_done, dest, symlinks=True)
    return dest


def test_editing_the_fx_code_reruns_the_static_kinds_and_nothing_else(copy_of_int4):
    """A named engine: no probe code runs, so FX (ptq_static and qat only) reruns ptq_static's
    jobs, not the weight-only ones (rtn_w8_int8 on the int8 engine included)."""
    append_comment(copy_of_int4 / "src" / "quantbench" / "quant" / "ao" / "fx.py")
    assert planned_jobs(copy_of_int4) == method_jobs("ptq_static", ["seed7"])


def test_editing_the_dynamic_int8_code_reruns_the_int8_weight_only_path(copy_of_int4):
    append_comment(copy_of_int4 / "src" / "quantbench" / "quant" / "ao" / "dynamic.py")
    # the weight-only kinds build any execution path from one module, so all of them rerun
    weight_only = [m for m in INT4_METHODS if m != "ptq_static"]
    expected = {
        k: v for m in weight_only for k, v in method_jobs(m, ["seed7"]).items()
    }  # the int4 run exports no artifacts
    assert planned_jobs(copy_of_int4) == expected


def test_without_export_a_deploy_edit_reruns_nothing(copy_of_int4):
    """deploy.export off: the score jobs run no deploy code, so none of it is their input."""
    assert not list((copy_of_int4 / "results").glob("deploy/**/model.onnx"))
    for module in ("deploy/artifact.py", "deploy/parity.py", "deploy/score_export.py"):
        append_comment(copy_of_int4 / "src" / "quantbench" / module)
    assert planned_jobs(copy_of_int4) == {}


def test_a_named_engine_wins_without_a_probe_and_the_checkpoint_keeps_it(int4_done):
    engine = _named_engine()
    record = read(int4_done, f"engine/{MODEL}.json")
    assert (record["engine"], record["requested"], record["probed"]) == (engine, engine, False)
    assert record["engines"] == {}
    with backend.quiet():
        ckpt = read_checkpoint(int4_done / "results" / "models" / MODEL / "seed7" / "ptq_static.pt")
    assert ckpt["engine"] == engine
    assert quality(int4_done, "seed7", "ptq_static")["engine"] == engine
    assert read(int4_done, f"timing/{MODEL}/ptq_static.json")["candidate"]["engine"] == engine
    assert "no probe ran" in (int4_done / "results" / "summary.md").read_text()


def test_weight_only_codes_on_the_int8_path_run_on_the_runs_engine(int4_done):
    engine = _named_engine()
    with backend.quiet():
        ckpt = read_checkpoint(
            int4_done / "results" / "models" / MODEL / "seed7" / "rtn_w8_int8.pt"
        )
    assert ckpt["engine"] == ckpt["params"]["engine"] == engine
    q = quality(int4_done, "seed7", "rtn_w8_int8")
    assert q["engine"] == engine and q["kernels"] == ["quantized::linear_dynamic"]
    assert read(int4_done, f"timing/{MODEL}/rtn_w8_int8.json")["candidate"]["engine"] == engine
    assert quality(int4_done, "seed7", "rtn_w4_int4")["engine"] is None


def test_int4_methods_are_scored_and_timed_on_the_int4_kernel(int4_done):
    for method in ("rtn_w4_int4", "gptq_w4_int4"):
        q = quality(int4_done, "seed7", method)
        assert q["kernels"] == [INT4_OP] and q["execution"] == EXEC_INT4
        t = read(int4_done, f"timing/{MODEL}/{method}.json")
        assert t["candidate"]["kernels"] == [INT4_OP]
        assert read(int4_done, f"metrics/{MODEL}/{method}.json")["kernels"] == [INT4_OP]
    deq = quality(int4_done, "seed7", "gptq_w4_deq")
    assert deq["kernels"] == ["aten::addmm"]
    int4 = quality(int4_done, "seed7", "gptq_w4_int4")
    same = sum(a == b for a, b in zip(int4["predictions"], deq["predictions"], strict=True))
    assert same / int4["test_rows"] >= 0.97  # bfloat16 activations move only a few rows
    assert int4["resident_weight_bytes"] < 0.5 * deq["resident_weight_bytes"]
    assert (int4["size_bytes"], int4["payload_bytes"]) == (deq["size_bytes"], deq["payload_bytes"])
    assert int4["info"]["layer_error"] == deq["info"]["layer_error"]  # the same codes


def test_a_torch_upgrade_reruns_the_probe_with_everything_torch_ran(copy_of_done):
    common = copy_of_done / "workflow" / "rules" / "common.smk"
    text = common.read_text()
    assert 'return importlib.metadata.version("torch")' in text
    common.write_text(text.replace('importlib.metadata.version("torch")', '"0.0+other"'))
    assert planned_jobs(copy_of_done) == {
        **jobs("train_fp32", [MODEL], REPS),
        **PROBE,
        **jobs("quantize", [MODEL], REPS, TINY_METHODS),
        **jobs("score", [MODEL], REPS, VARIANTS),
        **jobs("time", [MODEL], TINY_METHODS),
        "summarize": 1,
    }
