"""The tiny config through a real SLURM cluster with the repository's `slurm` profile.

Needs the single-node cluster of scripts/slurm/cluster.sh and the executor plugin
(`pip install -e '.[slurm]'`). Deselected by default; run with:

    bash scripts/slurm/cluster.sh start && pytest -m slurm; bash scripts/slurm/cluster.sh stop
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
import yaml

from quantbench.core.config import replicate_name, replicate_seeds
from tests.workflow_helpers import SNAKEMAKE, copy_workflow, pin_engine, run_ok

pytestmark = pytest.mark.slurm

ACCOUNT = "quantbench"  # created by scripts/slurm/cluster.sh
WORKFLOW_LIMIT_S = 300  # the whole workflow through SLURM
LOCAL_RULES = {"all", "summarize", "generate_traffic"}  # the Snakefile's localrules


def _cluster_problem() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    for tool in ("sbatch", "sacct", "scontrol", "timeout"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/slurm/cluster.sh install)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "the executor plugin is missing: pip install -e '.[slurm]'"
    for cmd in (["scontrol", "ping"], ["sacct", "-n", "-X"]):
        if subprocess.run(cmd, capture_output=True, timeout=30).returncode != 0:
            return f"`{' '.join(cmd)}` fails: start the cluster (scripts/slurm/cluster.sh start)"
    return None


def _profile_groups() -> dict[str, str]:
    """rule -> group name pattern, from the profile as Snakemake renders it (a YTE template)
    without a GPU request, as in the run below."""
    import yte

    path = Path(__file__).resolve().parents[1] / "slurm" / "config.yaml"
    with mock.patch.dict(os.environ), path.open() as stream:
        os.environ.pop("QUANTBENCH_SLURM_GPUS", None)
        return yte.process_yaml(stream, require_use_yte=True)["groups"]


def _expected_comments(config_path: Path) -> Counter:
    """One sbatch job per group job and per ungrouped non-local job, named as the plugin writes
    the job comment: `rule_<rule>_wildcards_<values joined by _>` for a single job and
    `rule_<group>_<its rules, sorted, joined by _>` for a group job."""
    cfg = yaml.safe_load(config_path.read_text())
    methods = list(cfg["methods"])
    reps = [replicate_name(s) for s in replicate_seeds(cfg)]
    model = "mlp"
    groups = _profile_groups()
    members: dict[str, set[str]] = {}  # group job name -> rules in it
    comments = []  # generate_traffic is a local rule: no sbatch job

    def add(rule: str, **wildcards: str) -> None:
        if rule in groups:
            members.setdefault(groups[rule].format(**wildcards), set()).add(rule)
        else:
            comments.append(f"rule_{rule}_wildcards_{'_'.join(wildcards.values())}")

    for rep in reps:
        add("preprocess", rep=rep)
        add("train_fp32", model=model, rep=rep)
        for m in methods:
            add("quantize", model=model, rep=rep, method=m)
        for m in ["fp32", *methods]:
            add("score", model=model, rep=rep, method=m)  # exports and checks the artifact too
    add("probe_engine", model=model)
    for m in methods:
        add("time", model=model, method=m)
    comments += [f"rule_{name}_{'_'.join(sorted(rules))}" for name, rules in members.items()]
    return Counter(comments)


def _sacct_jobs(run_id: str, since: datetime) -> list[dict]:
    """The allocations of one Snakemake run (the plugin names every job after the run ID)."""
    fields = ["JobIDRaw", "JobName", "Comment", "State", "Account", "AllocCPUS", "ExitCode"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--name", run_id, "--format", ",".join(fields),
         "--starttime", f"{since:%Y-%m-%dT%H:%M:%S}", "--endtime", "now"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.stdout.splitlines()]


def _node_cpus() -> int:
    out = subprocess.run(
        ["sinfo", "-h", "-o", "%c"], capture_output=True, text=True, check=True, timeout=30
    )
    return int(out.stdout.split()[0].rstrip("+"))


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> dict:
    """The tiny config run once through SLURM with `--profile slurm`, as a user would run it."""
    problem = _cluster_problem()
    if problem:
        pytest.fail(problem)
    workdir = pin_engine(copy_workflow(tmp_path_factory.mktemp("slurm")))
    env = {
        **os.environ,
        "PYTHONHASHSEED": "0",
        "SBATCH_ACCOUNT": ACCOUNT,
    }
    env.pop("QUANTBENCH_SLURM_GPUS", None)
    # Test-only flags: no retry (a failure must show), and 2 s status polls instead of 10 s.
    cmd = [
        "timeout", "-k", "10", str(WORKFLOW_LIMIT_S), *SNAKEMAKE,
        "--profile", "slurm", "--configfile", "tests/config_tiny.yaml",
        "--retries", "0", "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
    ]  # fmt: skip
    since = datetime.now() - timedelta(minutes=1)
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    wall_s = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        hint = " (timed out)" if proc.returncode in (124, 137) else ""
        pytest.fail(f"snakemake --profile slurm failed{hint} after {wall_s:.0f}s:\n{log}")
    run_id = re.search(r"SLURM run ID: (\S+)", log)
    assert run_id, log
    print(f"tiny workflow through SLURM: {wall_s:.1f}s")
    return {"workdir": workdir, "log": log, "run_id": run_id.group(1), "since": since,
            "wall_s": wall_s}  # fmt: skip


@pytest.fixture(scope="module")
def local_run(tmp_path_factory) -> Path:
    """The same config run with the local executor."""
    workdir = pin_engine(copy_workflow(tmp_path_factory.mktemp("local")))
    run_ok(workdir, "--cores", "2")
    return workdir


def test_finishes_within_limit(slurm_run):
    assert slurm_run["wall_s"] < WORKFLOW_LIMIT_S
    assert (slurm_run["workdir"] / "results" / "summary.md").is_file()


def test_every_non_local_job_went_through_sbatch(slurm_run):
    jobs = _sacct_jobs(slurm_run["run_id"], slurm_run["since"])
    expected = _expected_comments(slurm_run["workdir"] / "tests" / "config_tiny.yaml")
    assert Counter(j["Comment"] for j in jobs) == expected
    assert all(j["State"] == "COMPLETED" and j["ExitCode"] == "0:0" for j in jobs), jobs
    assert {j["Account"] for j in jobs} == {ACCOUNT}
    # Snakemake's own record: one submission per SLURM job, none for the local rules.
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", slurm_run["log"])
    assert sorted(submitted) == sorted(j["JobIDRaw"] for j in jobs)
    assert not LOCAL_RULES & {j["Comment"].split("_wildcards_")[0][5:] for j in jobs}


def test_timing_jobs_had_the_node_to_themselves(slurm_run):
    """time carries --exclusive: SLURM allocates it every CPU of the node."""
    jobs = _sacct_jobs(slurm_run["run_id"], slurm_run["since"])
    cpus = _node_cpus()
    timing = [j for j in jobs if j["Comment"].startswith("rule_time_")]
    assert timing and all(int(j["AllocCPUS"]) == cpus for j in timing), (cpus, timing)
    others = [j for j in jobs if not j["Comment"].startswith("rule_time_")]
    assert all(int(j["AllocCPUS"]) < cpus for j in others) or cpus == 1, (cpus, others)


def _paired_records(cluster: Path, local: Path, pattern: str) -> list[tuple[Path, dict, dict]]:
    """The JSON files matching ``pattern`` in both result trees (the same set), paired."""
    found = sorted(p.relative_to(cluster) for p in cluster.glob(pattern))
    assert found and found == sorted(p.relative_to(local) for p in local.glob(pattern)), pattern
    return [
        (rel, json.loads((cluster / rel).read_text()), json.loads((local / rel).read_text()))
        for rel in found
    ]


def test_quality_and_metrics_match_a_local_run(slurm_run, local_run):
    """Same config, same seeds, same machine: every quality fact and every accuracy statistic
    equal the local executor's; only the timing figures may differ."""
    cluster, local = slurm_run["workdir"] / "results", local_run / "results"
    for rel, on_cluster, here in _paired_records(cluster, local, "quality/*/*/*.json"):
        for key in ("labels", "predictions", "test_rows_sha256", "size_bytes", "kernels"):
            assert on_cluster[key] == here[key], f"{rel}: {key}"
    for rel, on_cluster, here in _paired_records(cluster, local, "metrics/*/*.json"):
        for key in ("accuracy", "macro_f1", "confusion_matrix", "vs_fp32", "size_bytes"):
            assert on_cluster[key] == here[key], f"{rel}: {key}"
