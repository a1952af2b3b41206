"""The SLURM profile as Snakemake reads it (a YTE template), without a cluster."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yte

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


@pytest.mark.parametrize("gpus", [None, "h100:1"])
def test_every_rule_of_a_group_asks_for_the_same_sbatch_options(monkeypatch, gpus):
    """Snakemake refuses to submit a group job whose members give a string resource different
    values, so the rules that share groups must carry one option string."""
    profile = _render(monkeypatch, gpus)
    extras = {rule: _extra(profile, rule) for rule in profile["groups"]}
    assert len(set(extras.values())) == 1, extras
    (options,) = set(extras.values())
    assert ("--gpus-per-node=h100:1" in options) == (gpus is not None)


@pytest.mark.parametrize("gpus", [None, "1"])
def test_queue_order_probe_then_groups_then_timing(monkeypatch, gpus):
    profile = _render(monkeypatch, gpus)
    groups = {_nice(_extra(profile, rule)) for rule in profile["groups"]}
    assert len(groups) == 1
    (group_nice,) = groups
    assert _nice(_extra(profile, "probe_engine")) == 0
    assert 0 < group_nice < _nice(_extra(profile, "time"))
    # timing keeps its node to itself, and never gets a GPU
    assert "--exclusive" in _extra(profile, "time").split()
    assert "gpus" not in _extra(profile, "time")
