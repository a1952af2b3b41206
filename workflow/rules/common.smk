import importlib.metadata
import os
import re
import sys
from pathlib import Path

# The library lives in src/; the workflow needs it at parse time only for config checking.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from quantbench.core.config import (
    ConfigError,
    apply_config_files,
    method_params,
    model_file,
    quantize_device,
    replicate_name,
    replicate_seed,
    replicate_seeds,
    resolve_config,
    resolved_execution,
    uses_gpu,
    uses_int8_engine,
)
from quantbench.core.deps import closure, kind_file


report: "../report/workflow.rst"


SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
SCHEMA = SCHEMAS / "config.schema.yaml"
LIB = Path(workflow.basedir) / "src" / "quantbench"

# Snakemake merges each --configfile into config.yaml key by key, methods: and models: included:
# a named variant changes only the keys given, a new name adds one. A variant set to null is
# removed here, and a file with `replace: [methods]` (or models) runs its own list alone.
try:
    _given = getattr(workflow.config_settings, "overwrite_config", None) or {}
    _resolved = resolve_config(apply_config_files(config, _given), SCHEMA)
except ConfigError as exc:
    raise WorkflowError(f"config error: {exc}") from None
config.clear()
config.update(_resolved)

METHODS = list(config["methods"])
VARIANTS = ["fp32", *METHODS]  # what is scored: the FP32 reference and every method
MODELS = list(config["models"])  # named model variants: the {model} wildcard
REPS = [replicate_name(s) for s in replicate_seeds(config)]
TIMED_REP = REPS[0]  # the replicate whose checkpoints are timed


wildcard_constraints:
    model="|".join(re.escape(m) for m in MODELS),
    rep="|".join(re.escape(r) for r in REPS),


# A quantize job makes exactly the configured variants; score also fp32; time only methods.
METHOD_PATTERN = "|".join(re.escape(m) for m in METHODS)
VARIANT_PATTERN = "|".join(re.escape(m) for m in VARIANTS)


def torch_version():
    """Recorded in params so that a torch upgrade reruns training, quantization and timing."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def lib(*entries):
    """Library files that a job runs: the entry modules and all they import (read from the
    source, since Snakemake does not track what scripts import), relative to the working
    directory so that a moved checkout keeps its results fresh."""
    return [os.path.relpath(LIB / f) for f in closure("core/logs.py", *entries)]


def schema(name):
    return os.path.relpath(SCHEMAS / name)


def kind_of(method):
    return "fp32" if method == "fp32" else config["methods"][method]["kind"]


def rep_seed(wildcards):
    """The seed of the job's replicate (split, training, calibration, fine-tuning)."""
    return replicate_seed(wildcards.rep)


def model_params(model):
    """The spec of one named model variant, {arch, ...params}: what its training receives."""
    return config["models"][model]


def get_train_input(wildcards):
    """The replicate's dataset and the library; a custom model's file too, so that editing it
    reruns that model's jobs only."""
    inputs = {
        "dataset": f"results/data/{wildcards.rep}/dataset.npz",
        "lib": lib("training/train.py"),
    }
    path = model_file(config, wildcards.model)
    if path is not None:
        inputs["model_file"] = path
    return inputs


def csv_files():
    """The user's data files (a file, a folder or a glob), sorted; an error if none exists."""
    from quantbench.data.tabular import data_files

    try:
        return [str(f) for f in data_files(config["data"])]
    except ValueError as exc:
        raise WorkflowError(f"config error: {exc}") from None


def get_preprocess_input():
    if config["data"]["source"] == "synthetic":
        return ["results/data/raw.csv"]
    return csv_files()


def checkpoint(model, rep, method):
    return f"results/models/{model}/{rep}/{method}.pt"


def engine_file(model):
    return f"results/engine/{model}.json"


def on_int8_engine(method):
    """Whether the variant runs on int8 engine kernels (int8 kinds, weight-only on int8)."""
    return method != "fp32" and uses_int8_engine(config["methods"][method])


def engine_files():
    """One engine record per model, when any method runs on int8 engine kernels."""
    if not any(on_int8_engine(m) for m in METHODS):
        return []
    return [engine_file(m) for m in MODELS]


def get_probe_engine_input(wildcards):
    """The first replicate's FP32 model, data and the probe's code, unless the config names its
    engine (then the job only records it, and runs none of the probe's code)."""
    if config["quantization"]["engine"] != "auto":
        return {"lib": lib("measure/engine_record.py")}
    return {
        "lib": lib("measure/probe.py"),
        "fp32": checkpoint(wildcards.model, TIMED_REP, "fp32"),
        "dataset": f"results/data/{TIMED_REP}/dataset.npz",
    }


def get_quantize_input(wildcards):
    inputs = {
        "fp32": checkpoint(wildcards.model, wildcards.rep, "fp32"),
        "dataset": f"results/data/{wildcards.rep}/dataset.npz",
        "lib": lib("quant/quantize.py", kind_file(kind_of(wildcards.method))),
    }
    if on_int8_engine(wildcards.method):
        inputs["engine"] = engine_file(wildcards.model)
    return inputs


def get_score_input(wildcards):
    """The checkpoint, the data and the library; when exporting, also what the export and the
    parity check read (the preprocessor, unpickling which runs data/split.py, the data card and
    the raw test rows) and their modules: a deploy edit then reruns the score jobs."""
    model, rep, method = wildcards.model, wildcards.rep, wildcards.method
    inputs = {
        "checkpoint": checkpoint(model, rep, method),
        "dataset": f"results/data/{rep}/dataset.npz",
        "lib": method_lib(method, "measure/score.py"),
    }
    if method == "fp32":
        inputs["info"] = f"results/models/{model}/{rep}/fp32.history.json"
    else:
        inputs["info"] = f"results/models/{model}/{rep}/{method}.info.json"
    if exporting():
        inputs |= {
            "encoding": f"results/data/{rep}/encoding.json",
            "card": f"results/data/{rep}/data_card.json",
            "raw_test": f"results/data/{rep}/test_raw.npz",
            "lib": method_lib(method, "deploy/score_export.py"),
        }
    return inputs


def score_outputs():
    """The score job's files: its quality record and, with deploy.export, the variant's
    artifact and parity record, written by the same process (quantbench.deploy.score_export).
    """
    outputs = {"quality": "results/quality/{model}/{rep}/{method}.json"}
    if exporting():
        folder = artifact_dir("{model}", "{rep}", "{method}")
        outputs |= {
            "onnx": f"{folder}/model.onnx",
            "manifest": f"{folder}/manifest.json",
            "parity": "results/parity/{model}/{rep}/{method}.json",
        }
    return outputs


def score_params():
    """With deploy.export, the onnx, onnxruntime and torch versions (an upgrade re-exports) and
    the MatMulNBits accuracy_level, given to the weight-only variants on the int4 execution path
    only (a change re-exports those alone)."""
    if not exporting():
        return {}
    return {
        "deploy_versions": deploy_versions(),
        "accuracy_level": nbits_accuracy_level,
    }


def nbits_accuracy_level(wildcards):
    """deploy.accuracy_level for an rtn or gptq variant on the int4 execution path (the one
    exported as MatMulNBits); None for the other kinds and paths."""
    if kind_of(wildcards.method) in ("rtn", "gptq"):
        variant = config["methods"][wildcards.method]
        if resolved_execution(variant["execution"], variant["group_size"]) == "int4":
            return int(config["deploy"]["accuracy_level"])
    return None


def deploy_versions():
    """Recorded in the score jobs' params when exporting, so that an onnx, onnxruntime or torch
    upgrade re-exports and re-checks."""
    out = {}
    for name in ("onnx", "onnxruntime", "torch"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def exporting():
    return bool(config["deploy"]["export"])


def artifact_dir(model, rep, method):
    return f"results/deploy/{model}/{rep}/{method}"


def method_lib(method, *entries):
    """Library files of a step that rebuilds the variant's checkpoint (its kind's module too)."""
    if method == "fp32":
        return lib(*entries)
    return lib(*entries, kind_file(kind_of(method)))


def artifact_files():
    if not exporting():
        return []
    return expand(
        "results/deploy/{model}/{rep}/{method}/{file}",
        model=MODELS,
        rep=REPS,
        method=VARIANTS,
        file=["model.onnx", "manifest.json"],
    )


def parity_files():
    if not exporting():
        return []
    return expand(
        "results/parity/{model}/{rep}/{method}.json",
        model=MODELS,
        rep=REPS,
        method=VARIANTS,
    )


def figures_files():
    """Each artifact's figures, written by summarize beside it (read by nothing: no cycle)."""
    if not exporting():
        return []
    return expand(
        "results/deploy/{model}/{rep}/{method}/figures.json",
        model=MODELS,
        rep=REPS,
        method=VARIANTS,
    )


def prediction_files():
    """Each model's predictions of the configured CSV (deploy.predict), when there is one."""
    if not exporting() or not config["deploy"]["predict"]:
        return []
    return expand("results/predictions/{model}.csv", model=MODELS)


def get_predict_rows_input(wildcards):
    """The CSV, the recommendation that names the artifact, and every artifact it may name."""
    return {
        "csv": config["deploy"]["predict"],
        "recommendation": "results/recommendation.json",
        "artifacts": expand(
            "results/deploy/{model}/{rep}/{method}/{file}",
            model=wildcards.model,
            rep=TIMED_REP,
            method=VARIANTS,
            file=["model.onnx", "manifest.json"],
        ),
        "lib": lib("deploy/predict.py"),
    }


def timing_onnxruntime():
    """Whether the time jobs time the ONNX artifacts too (the config check makes runtimes:
    onnxruntime imply deploy.export)."""
    return "onnxruntime" in config["runtimes"] and exporting()


def get_time_input(wildcards):
    """Both checkpoints of the timed replicate and, when ONNX Runtime is timed, both
    artifacts, the raw test rows they take and the ONNX Runtime helpers."""
    model, method = wildcards.model, wildcards.method
    inputs = {
        "reference": checkpoint(model, TIMED_REP, "fp32"),
        "candidate": checkpoint(model, TIMED_REP, method),
        "info": f"results/models/{model}/{TIMED_REP}/{method}.info.json",
        "dataset": f"results/data/{TIMED_REP}/dataset.npz",
        "lib": lib("measure/timing.py", kind_file(kind_of(method))),
    }
    if timing_onnxruntime():
        inputs |= {
            "ort_reference": f"{artifact_dir(model, TIMED_REP, 'fp32')}/model.onnx",
            "ort_candidate": f"{artifact_dir(model, TIMED_REP, method)}/model.onnx",
            "raw_test": f"results/data/{TIMED_REP}/test_raw.npz",
            "ort_lib": lib("measure/ort.py", "data/rawrows.py"),
        }
    return inputs


# GPUs on a cluster (slurm/config.yaml, docs/cluster.md). QUANTBENCH_SLURM_GPUS (h100:1, 1, ...,
# as --gpus-per-node takes it) is asked for by the jobs that may run on CUDA and by them alone:
# FP32 training and GPTQ's quantize jobs (uses_gpu). Each of those is submitted on its own; the
# CPU chains keep one submission each (per replicate and method, quantization and scoring, the
# score job exporting and checking the artifact with deploy.export: CPU work as well). With
# the variable unset the profile sets the groups and sbatch options, and none of this applies.
SLURM_GPUS = os.environ.get("QUANTBENCH_SLURM_GPUS", "").strip()
# the queue order the profile gives these jobs (slurm/config.yaml, "Order in the queue")
GROUP_NICE = "--nice=100"


def job_method(wildcards):
    return wildcards.get("method", "fp32")


def on_gpu(rule, wildcards):
    return bool(SLURM_GPUS) and uses_gpu(config, rule, job_method(wildcards))


def get_group(rule):
    """A job's group when GPUs are asked for: the quantize and score jobs of a method that runs
    on the CPU share one; a job on a GPU, the data split and FP32's scoring stand alone. The
    score job's export and parity check (deploy.export) run on the CPU, so no GPU waits on them.
    """

    def group(wildcards):
        method = job_method(wildcards)
        if not SLURM_GPUS or method == "fp32" or on_gpu("quantize", wildcards):
            return None
        return f"{method}_{wildcards.rep}"

    return group


def get_slurm_extra(rule):
    """sbatch options when GPUs are asked for (else the profile's): the GPU for a job that uses
    one, the queue order for all."""

    def slurm_extra(wildcards):
        if on_gpu(rule, wildcards):
            return f"{GROUP_NICE} --gpus-per-node={SLURM_GPUS}"
        return GROUP_NICE

    return slurm_extra


def get_time_threads():
    """Every core Snakemake may use: a timing job then never shares the machine with another job."""
    try:
        cores = workflow.cores
    except WorkflowError:  # cluster executors and --dag: no local cores to claim
        return config["evaluate"]["threads"]
    if isinstance(cores, int) and 0 < cores < 4096:
        return max(cores, config["evaluate"]["threads"])
    return config["evaluate"]["threads"]


def quality_files():
    return expand(
        "results/quality/{model}/{rep}/{method}.json",
        model=MODELS,
        rep=REPS,
        method=VARIANTS,
    )


def timing_files():
    return expand("results/timing/{model}/{method}.json", model=MODELS, method=METHODS)


def metrics_files():
    return expand(
        "results/metrics/{model}/{method}.json", model=MODELS, method=VARIANTS
    )


PLOTS = [
    "accuracy_vs_size",
    "accuracy_vs_latency",
    "metrics_bars",
    "confusion_matrices",
    "layer_error",
    "accuracy_diff",
]


def get_final_output():
    """The summary and plots, and every intermediate file too.

    Snakemake records a failed or interrupted job's new params although it deleted the job's
    outputs, and a missing intermediate file alone triggers nothing; naming every file as a
    target makes the next run redo such a job instead of keeping stale downstream results.
    """
    data = ["results/data/raw.csv"] if config["data"]["source"] == "synthetic" else []
    data += expand(
        "results/data/{rep}/{name}",
        rep=REPS,
        name=[
            "dataset.npz",
            "preprocessor.joblib",
            "data_card.json",
            "test_raw.npz",
            "encoding.json",
        ],
    )
    models = expand(
        "results/models/{model}/{rep}/{file}",
        model=MODELS,
        rep=REPS,
        file=["fp32.pt", "fp32.history.json"]
        + [f"{m}.{ext}" for m in METHODS for ext in ("pt", "info.json")],
    )
    return [
        *data,
        *models,
        *engine_files(),
        *quality_files(),
        *timing_files(),
        *metrics_files(),
        *artifact_files(),
        *parity_files(),
        *figures_files(),
        *prediction_files(),
        "results/summary.csv",
        "results/summary.md",
        "results/recommendation.json",
        *expand("results/plots/{plot}.{ext}", plot=PLOTS, ext=["png", "svg"]),
    ]
