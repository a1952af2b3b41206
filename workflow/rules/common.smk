import glob
import importlib.metadata
import os
import re
import sys
from pathlib import Path

# The library lives in src/; the workflow needs it at parse time only for config checking.
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from quantbench.config import ConfigError, method_params, resolve_config
from quantbench.deps import closure, kind_file


report: "../report/workflow.rst"


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
METRICS_SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "metrics.schema.json"
LIB = Path(workflow.basedir) / "src" / "quantbench"

# Snakemake merges --configfile into config.yaml key by key; a method list given on the command
# line replaces the default list instead of extending it (so a sweep file runs just its sweep).
_cli_config = getattr(workflow.config_settings, "overwrite_config", None) or {}
if isinstance(_cli_config.get("methods"), dict):
    config["methods"] = dict(_cli_config["methods"])

try:
    _resolved = resolve_config(config, SCHEMA)
except ConfigError as exc:
    raise WorkflowError(f"config error: {exc}") from None
config.clear()
config.update(_resolved)

METHODS = list(config["methods"])
MODELS = ["fp32", *METHODS]

# Wildcard patterns: a quantize job makes exactly the configured variants; evaluate also fp32.
METHOD_PATTERN = "|".join(re.escape(m) for m in METHODS)
MODEL_PATTERN = "|".join(re.escape(m) for m in MODELS)


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
    return [os.path.relpath(LIB / f) for f in closure("logs.py", *entries)]


def kind_of(model):
    return "fp32" if model == "fp32" else config["methods"][model]["kind"]


def csv_files():
    """The user's data files (a file, a folder or a glob), sorted; an error if none exists."""
    from quantbench.tabular import data_files

    try:
        return [str(f) for f in data_files(config["data"])]
    except ValueError as exc:
        raise WorkflowError(f"config error: {exc}") from None


# What preprocess needs to know about the generated data: its own layout is fixed.
SYNTHETIC_DATA_KEYS = ("nonfinite", "categorical", "val_fraction", "test_fraction")


def get_preprocess_data_params():
    data = config["data"]
    if data["source"] == "synthetic":
        return {k: data[k] for k in SYNTHETIC_DATA_KEYS}
    return {k: v for k, v in data.items() if k not in ("source", "synthetic")}


def get_preprocess_input():
    if config["data"]["source"] == "synthetic":
        return ["results/data/raw.csv"]
    return csv_files()


def get_quantize_input(wildcards):
    return {
        "fp32": "results/models/fp32.pt",
        "dataset": "results/data/dataset.npz",
        "lib": lib("quantize.py", kind_file(kind_of(wildcards.method))),
    }


def get_evaluate_input(wildcards):
    model = wildcards.method
    inputs = {
        "checkpoint": f"results/models/{model}.pt",
        "dataset": "results/data/dataset.npz",
        "lib": lib("evaluate.py"),
    }
    if model != "fp32":
        inputs["info"] = f"results/models/{model}.info.json"
        inputs["lib"] = lib("evaluate.py", kind_file(kind_of(model)))
    return inputs


def get_evaluate_threads():
    """Every core Snakemake may use: a timing job then never shares the machine with another job."""
    try:
        cores = workflow.cores
    except WorkflowError:  # cluster executors and --dag: no local cores to claim
        return config["evaluate"]["threads"]
    if isinstance(cores, int) and 0 < cores < 4096:
        return max(cores, config["evaluate"]["threads"])
    return config["evaluate"]["threads"]


def get_summarize_input():
    return expand("results/metrics/{method}.json", method=MODELS)


PLOTS = [
    "accuracy_vs_size",
    "accuracy_vs_latency",
    "metrics_bars",
    "confusion_matrices",
    "layer_error",
]


def get_final_output():
    """The summary and plots, and every intermediate file too.

    Snakemake records a failed or interrupted job's new params although it deleted the job's
    outputs, and a missing intermediate file alone triggers nothing; naming every file as a
    target makes the next run redo such a job instead of keeping stale downstream results.
    """
    data = ["results/data/raw.csv"] if config["data"]["source"] == "synthetic" else []
    data += [
        "results/data/dataset.npz",
        "results/data/preprocessor.joblib",
        "results/data/data_card.json",
        "results/models/fp32.history.json",
    ]
    return [
        *data,
        *expand("results/models/{model}.pt", model=MODELS),
        *expand("results/models/{method}.info.json", method=METHODS),
        *expand("results/metrics/{model}.json", model=MODELS),
        "results/summary.csv",
        "results/summary.md",
        *expand("results/plots/{plot}.{ext}", plot=PLOTS, ext=["png", "svg"]),
    ]
