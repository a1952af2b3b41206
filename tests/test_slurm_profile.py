"""The SLURM profile as Snakemake reads it (a YTE template), without a cluster."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
import yte

from tests.workflow_helpers import copy_workflow, run_ok

PROFILE = Path(__file__).resolve().parents[1] / "slurm" / "config.yaml"


def _render(monkeypatch, gpus: str | None) -> dict:
    """The profile as Snakemake sees it with QUANTBENCH_SLURM_GPUS set to ``gpus`` (or unset)."""
    monkeypatch.setenv("SBATCH_ACCOUNT", "quantbench")
    if gpus is None:
        monkeypatch.delenv("QUANTBENCH_SLURM_GPUS", raising=False)
    else:
        monkeypatch.setenv("QUANTBENCH_SLURM_GPUS", gpus)
    with PROFILE.open() as stream:
        return yte.process_yaml(stream, require_use_yte=True)


def _extra(profile: dict, rule: str) -> str:
    """The sbatch options a rule's jobs get (the resource is a Python expression)."""
    value = profile["set-resources"].get(rule, {}).get("slurm_extra")
    return "" if value is None else ast.literal_eval(value)


def _nice(options: str) -> int:
    found = re.findall(r"--nice=(\d+)", options)
    return int(found[-1]) if found else 0


GROUPED = ("preprocess", "train_fp32", "quantize", "score")


def test_every_rule_of_a_group_asks_for_the_same_sbatch_options(monkeypatch):
    """Snakemake refuses to submit a group job whose members give a string resource different
    values, so the rules that share groups must carry one option string, and no GPU."""
    profile = _render(monkeypatch, None)
    assert set(profile["groups"]) == set(GROUPED)
    extras = {rule: _extra(profile, rule) for rule in profile["groups"]}
    assert len(set(extras.values())) == 1, extras
    assert "gpus" not in extras["score"]


def test_with_gpus_the_workflow_sets_groups_and_options(monkeypatch):
    """A GPU depends on the method's kind, which only the workflow knows (common.smk)."""
    profile = _render(monkeypatch, "h100:1")
    assert "groups" not in profile
    assert all(_extra(profile, rule) == "" for rule in GROUPED)


@pytest.mark.parametrize("gpus", [None, "1"])
def test_queue_order_probe_then_groups_then_timing(monkeypatch, gpus):
    profile = _render(monkeypatch, gpus)
    group_nice = _nice(_extra(_render(monkeypatch, None), "score"))
    assert _nice(_extra(profile, "probe_engine")) == 0
    assert 0 < group_nice < _nice(_extra(profile, "time"))
    # timing keeps its node to itself, and never gets a GPU
    assert "--exclusive" in _extra(profile, "time").split()
    assert "gpus" not in _extra(profile, "time")


def test_the_workflows_group_options_are_the_profiles(monkeypatch):
    """With GPUs the workflow gives the grouped rules their sbatch options; the queue order
    must stay the profile's."""
    common = (PROFILE.parents[1] / "workflow" / "rules" / "common.smk").read_text()
    (nice,) = re.findall(r'^GROUP_NICE = "([^"]*)"', common, re.MULTILINE)
    assert nice == _extra(_render(monkeypatch, None), "score")


# The profile as a cluster run would use it, less the executor: a dry run then resolves each
# job's resources and groups exactly as they would reach sbatch, with no cluster and no plugin.
_JOB = re.compile(r"^( *)rule (\w+):$")
_GROUP = re.compile(r"Group job (\S+)")


def _local_profile(monkeypatch, gpus: str | None, dest: Path) -> Path:
    profile = {
        key: value
        for key, value in _render(monkeypatch, gpus).items()
        if key != "executor" and not key.startswith("slurm-")
    }
    dest.mkdir()
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


def _dry_run_jobs(workdir: Path, profile: Path) -> list[dict]:
    """Every job a dry run plans: rule, wildcards, resources, and the group it is submitted in."""
    proc = run_ok(workdir, "--dry-run", "--profile", str(profile), "--jobs", "20")
    jobs: list[dict] = []
    group = None
    for line in (proc.stdout + proc.stderr).splitlines():
        if found := _GROUP.search(line):
            group = found.group(1)
        elif found := _JOB.match(line):
            indented = bool(found.group(1))
            jobs.append({"rule": found.group(2), "group": group if indented else None})
        elif jobs and line.strip().startswith(("wildcards: ", "resources: ")):
            key, _, value = line.strip().partition(": ")
            jobs[-1][key] = dict(kv.split("=", 1) for kv in value.split(", "))
    return [job for job in jobs if job["rule"] != "all"]


@pytest.mark.parametrize("gpus", [None, "h100:1"])
def test_a_gpu_goes_only_to_jobs_that_use_one(monkeypatch, tmp_path, gpus):
    """FP32 training and GPTQ (tests/config_tiny.yaml's gptq_w4) may run on CUDA; the data split,
    scoring, timing, the engine probe, ptq_dynamic and rtn never do."""
    workdir = copy_workflow(tmp_path / "wf")
    profile = _local_profile(monkeypatch, gpus, tmp_path / "profile")
    jobs = _dry_run_jobs(workdir, profile)
    asked = {
        (job["rule"], job.get("wildcards", {}).get("method"))
        for job in jobs
        if "--gpus-per-node=h100:1" in job.get("resources", {}).get("slurm_extra", "")
    }
    assert asked == ({("train_fp32", None), ("quantize", "gptq_w4")} if gpus else set())
    groups: dict[str, list[dict]] = {}
    for job in jobs:
        if job["group"] is not None:
            groups.setdefault(job["group"], []).append(job)
    assert groups, "the grouped chains are gone"
    for members in groups.values():
        # one submission: one option string, and no GPU held while a CPU job runs
        options = {job["resources"].get("slurm_extra") for job in members}
        assert len(options) == 1 and "gpus" not in options.pop(), members
    # per replicate: fp32 and 3 methods, or 2 CPU methods; a score job exports and checks its
    # variant's artifact itself, so the artifacts add no group
    expected_groups = 2 if gpus else 4
    assert len(groups) == expected_groups * 2  # tests/config_tiny.yaml has 2 replicates
