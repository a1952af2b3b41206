"""Stopping a run of `snakemake --profile slurm`: what becomes of its SLURM jobs.

- Ctrl-C (SIGINT to Snakemake) cancels every job of the run, running or queued, and exits;
- SIGTERM to scripts/slurm/snakemake_term_cancels.py does the same (Snakemake's own SIGTERM
  only stops submitting and waits for the submitted jobs);
- kill -9 leaves the jobs to SLURM and the lock behind: `scancel --name <run ID>` and
  `snakemake --unlock` clean up, as docs/cluster.md ("Stopping a run") says.

Needs the cluster of scripts/slurm/cluster.sh; run with `pytest -m slurm`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_slurm import ACCOUNT, _cluster_problem
from tests.workflow_helpers import SNAKEMAKE, copy_workflow, run_ok

pytestmark = pytest.mark.slurm

WRAPPER = Path(__file__).resolve().parents[1] / "scripts" / "slurm" / "snakemake_term_cancels.py"
PROFILE_ARGS = [
    "--profile", "slurm", "--configfile", "tests/config_tiny.yaml",
    "--retries", "0", "--slurm-init-seconds-before-status-checks", "2",
]  # fmt: skip


def _start(workdir: Path, wrapped: bool) -> subprocess.Popen:
    cmd = [sys.executable, str(WRAPPER)] if wrapped else SNAKEMAKE
    return subprocess.Popen(
        [*cmd, *PROFILE_ARGS],
        cwd=workdir,
        env={**os.environ, "PYTHONHASHSEED": "0", "SBATCH_ACCOUNT": ACCOUNT},
        stdout=(workdir / "run.out").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _queue(run_id: str) -> list[str]:
    """Job IDs of the run that SLURM still holds (pending, running or completing)."""
    out = subprocess.run(
        ["squeue", "-h", "--name", run_id, "-o", "%i"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return out.stdout.split()


def _wait_for_running_jobs(workdir: Path, proc: subprocess.Popen) -> tuple[str, list[str]]:
    """Wait until the run has SLURM jobs in the queue after the first stage; (run ID, job IDs)."""
    out = workdir / "run.out"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        text = out.read_text()
        run_id = re.search(r"SLURM run ID: (\S+)", text)
        started = [
            p
            for p in (workdir / "logs").glob("preprocess/*.log")
            if "step started" in p.read_text()
        ]
        if run_id and started:  # a step of an FP32 group job (the second stage) is running
            queued = _queue(run_id.group(1))
            if queued:
                return run_id.group(1), queued
        assert proc.poll() is None, text
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no step of a group job started in time:\n{out.read_text()}")


def _locks(workdir: Path) -> list[Path]:
    return list((workdir / ".snakemake" / "locks").glob("*"))


@pytest.fixture
def workdir(tmp_path) -> Path:
    problem = _cluster_problem()
    if problem:
        pytest.fail(problem)
    return copy_workflow(tmp_path)


@pytest.mark.parametrize(
    ("wrapped", "sig"),
    [(False, signal.SIGINT), (True, signal.SIGTERM)],
    ids=["ctrl-c", "sigterm-through-wrapper"],
)
def test_stopping_cancels_every_job_of_the_run(workdir, wrapped, sig):
    proc = _start(workdir, wrapped)
    run_id, _ = _wait_for_running_jobs(workdir, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) != 0
    deadline = time.monotonic() + 60  # scancel returns at once; SLURM ends the jobs soon after
    while _queue(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _queue(run_id) == []
    assert _locks(workdir) == []  # the same command resumes without --unlock
    unfinished = _unfinished_step_logs(workdir)
    assert unfinished  # the signal came while a step ran
    for log in unfinished:  # a cancelled step says so, and wrote nothing
        assert "step interrupted by SIGTERM" in log.read_text(), log.read_text()
    assert not list((workdir / "results").rglob("*.tmp"))


def test_sigterm_submits_nothing_more_and_waits_for_the_submitted_jobs(workdir):
    proc = _start(workdir, wrapped=False)
    run_id, _ = _wait_for_running_jobs(workdir, proc)
    out = workdir / "run.out"
    submitted = _submitted(out.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=240) != 0
    text = out.read_text()
    assert "Will exit after finishing currently running jobs" in text, text
    assert _submitted(text) == submitted  # nothing new went to SLURM
    assert _queue(run_id) == []
    states = subprocess.run(
        ["sacct", "-X", "-n", "-P", "--name", run_id, "-o", "JobIDRaw,State",
         "--starttime", "now-1hour", "--endtime", "now"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert sorted(line.split("|")[0] for line in states) == sorted(submitted)
    assert all(line.endswith("|COMPLETED") for line in states), states  # waited, not cancelled
    assert _locks(workdir) == []
    assert _unfinished_step_logs(workdir) == []


def _submitted(text: str) -> list[str]:
    return sorted(re.findall(r"has been submitted with SLURM jobid (\d+)", text))


def _unfinished_step_logs(workdir: Path) -> list[Path]:
    return [
        log
        for log in (workdir / "logs").rglob("*.log")
        if "step started" in (text := log.read_text()) and "step finished" not in text
    ]


def test_kill_9_leaves_the_jobs_and_the_lock_to_clean_up(workdir):
    proc = _start(workdir, wrapped=False)
    run_id, queued = _wait_for_running_jobs(workdir, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    try:
        assert set(queued) & set(_queue(run_id))  # SLURM keeps running what was submitted
        assert _locks(workdir)
    finally:
        subprocess.run(["scancel", "--name", run_id], check=True, timeout=30)
    deadline = time.monotonic() + 60
    while _queue(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _queue(run_id) == []
    run_ok(workdir, "--unlock")
    assert _locks(workdir) == []
