"""Run the workflow in a private copy of the repository, so tests may edit its files freely."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPIED = (
    "Snakefile",
    "config.yaml",
    "configs",
    "examples",
    "workflow",
    "src",
    "envs",
    "profiles",
    "slurm",
    "tests",
)
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_workflow(dest: Path) -> Path:
    """The workflow, library and configs (not results) copied into ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache")
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


TINY = "tests/config_tiny.yaml"


def pin_engine(workdir: Path, engine: str | None = None) -> Path:
    """Name the int8 engine in the copy's test config (default: this machine's ``auto`` pick
    without measuring), for runs whose files are compared byte for byte: a measured pick may
    differ between two runs on a shared machine, and with it the int8 checkpoints."""
    import yaml

    from quantbench.quant.ao import backend

    path = workdir / TINY
    cfg = yaml.safe_load(path.read_text())
    cfg.setdefault("quantization", {})["engine"] = engine or backend.select_engine("auto")
    path.write_text(yaml.safe_dump(cfg))
    return workdir


def snakemake(
    workdir: Path, *args: str, timeout: int = 600, configfile: str = TINY
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``workdir`` with ``configfile`` (the tiny test config by default)."""
    cmd = [*SNAKEMAKE, "--configfile", configfile, *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env
    )


def run_ok(
    workdir: Path, *args: str, timeout: int = 600, configfile: str = TINY
) -> subprocess.CompletedProcess:
    proc = snakemake(workdir, *args, timeout=timeout, configfile=configfile)
    if proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


_RULE = re.compile(r"^rule (\w+):$", re.MULTILINE)
_WILDCARDS = re.compile(r"^    wildcards: (.*)$", re.MULTILINE)


def job_name(rule: str, *values: str) -> str:
    """How :func:`planned_jobs` names a job: ``score[mlp/seed7/rtn_w4]``, ``preprocess[seed7]``."""
    return f"{rule}[{'/'.join(values)}]" if values else rule


def planned_jobs(workdir: Path, *args: str, configfile: str = TINY) -> Counter:
    """What a dry run would execute: job name (see :func:`job_name`) -> count."""
    proc = run_ok(workdir, "--dry-run", "--cores", "2", *args, configfile=configfile)
    text = proc.stdout + proc.stderr
    jobs: Counter = Counter()
    for block in re.split(r"\n(?=rule \w+:)", text):
        rule = _RULE.search(block)
        if not rule or not block.startswith("rule "):
            continue
        wildcards = _WILDCARDS.search(block)
        values = [kv.split("=", 1)[1] for kv in wildcards.group(1).split(", ")] if wildcards else []
        if rule.group(1) != "all":  # the target rule shows up whenever anything reruns
            jobs[job_name(rule.group(1), *values)] += 1
    return jobs


def append_comment(path: Path) -> None:
    """A real edit of a source file that changes no behaviour."""
    with path.open("a") as fh:
        fh.write("\n# edited by a staleness test\n")
