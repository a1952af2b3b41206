"""The pip requirements file and the conda environment ask for what pyproject.toml asks for."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pyproject() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {_name(r.name): str(r.specifier) for r in map(Requirement, deps)}


def test_requirements_txt_lists_every_dependency_with_the_same_range():
    lines = (ROOT / "envs" / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert {_name(r.name): str(r.specifier) for r in reqs} == _pyproject()


def test_the_conda_environment_lists_every_dependency():
    env = yaml.safe_load((ROOT / "envs" / "quantbench.yaml").read_text())
    names = {_name(re.split(r"[ <>=]", d, maxsplit=1)[0]) for d in env["dependencies"]
             if isinstance(d, str)}  # fmt: skip
    # conda-forge names torch "pytorch" and matplotlib without GUI toolkits "matplotlib-base"
    aliases = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
    names = {aliases.get(n, n) for n in names}
    # snakemake runs the jobs and is not needed inside their environment (the file says why)
    assert set(_pyproject()) - {"snakemake"} <= names, set(_pyproject()) - names
