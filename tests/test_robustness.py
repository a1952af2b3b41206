"""A run that is killed loses nothing, reruns give the same results, parallel jobs stay apart.

The workflow scenarios run the tiny config for real; module-scoped fixtures share each run
between the tests that read it:

- ``reference``: uninterrupted, ``--cores 2``;
- ``parallel``: uninterrupted, ``--cores 4``, in another fresh copy;
- ``sigkilled``: ``--cores 1``, SIGKILLed (Snakemake and every job) while a method quantizes,
  then unlocked and resumed with the same command;
- ``interrupted_change``: a copy of ``reference`` with one variant's parameter changed, whose
  rerun is stopped twice during that variant's quantize (SIGINT, then SIGTERM), then resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from quantbench.core.files import write_text
from quantbench.quant.loader import load_model
from tests.workflow_helpers import (
    SNAKEMAKE,
    copy_workflow,
    pin_engine,
    planned_jobs,
    run_ok,
    snakemake,
)

pytestmark = pytest.mark.workflow

TINY_METHODS = ["ptq_dynamic", "rtn_w4", "gptq_w4"]
VARIANTS = ["fp32", *TINY_METHODS]
REPS = ["seed7", "seed8"]  # tests/config_tiny.yaml
DATA_FILES = ["dataset.npz", "preprocessor.joblib", "data_card.json", "encoding.json"]
# Wall-clock figures: the only values allowed to differ between two runs on one machine.
TIMING_FIELDS = frozenset({"quantize_seconds", "fine_tune_seconds", "seconds"})
STAMP = "%Y-%m-%d %H:%M:%S,%f"
_LOG_LINE = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO quantbench\.step: "
STARTED = re.compile(_LOG_LINE + r"step started \(pid \d+\)$")
FINISHED = re.compile(_LOG_LINE + r"step finished$")

Snapshot = dict[str, tuple[str, int]]  # results path -> (sha256, mtime_ns)


# ---------------------------------------------------------------- starting and stopping runs


def start(workdir: Path, *args: str) -> subprocess.Popen:
    """Snakemake in a session of its own: one signal to the group reaches it and all its jobs."""
    out = (workdir / "interrupted-run.out").open("a")
    return subprocess.Popen(
        [*SNAKEMAKE, "--configfile", "tests/config_tiny.yaml", *args],
        cwd=workdir,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
        start_new_session=True,
    )


def _text(log: Path) -> str | None:
    """The log's text, or None while it does not exist (snakemake removes a job's old log
    when the job starts, which can fall between a check and a read)."""
    try:
        return log.read_text()
    except FileNotFoundError:
        return None


def wait_for_step(proc: subprocess.Popen, logs: list[Path], timeout: float = 300) -> Path:
    """The first of ``logs`` whose step has started in this run (old contents do not count)."""
    old = {log: _text(log) for log in logs}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in logs:
            text = _text(log)
            if text and text != old[log] and "step started" in text:
                return log
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended ({proc.returncode}) before a step started")
        time.sleep(0.05)
    raise AssertionError(f"no step of {[log.name for log in logs]} started in {timeout} s")


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies nobody reaps do not count)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def interrupt(proc: subprocess.Popen, sig: signal.Signals, timeout: float = 120) -> int:
    """Send ``sig`` to Snakemake and every job; return its status once all of them have ended."""
    os.killpg(proc.pid, sig)
    status = proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while group_alive(proc.pid):
        assert time.monotonic() < deadline, f"jobs still run {timeout} s after {sig.name}"
        time.sleep(0.05)
    return status


# ---------------------------------------------------------------- reading a run's results


def snapshot(workdir: Path) -> Snapshot:
    return {
        p.relative_to(workdir).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file()
    }


def partial_files(workdir: Path) -> list[str]:
    """Every temporary file under results/ and every output that does not load completely."""
    results = workdir / "results"
    problems = [f"{p.relative_to(workdir)}: temporary" for p in results.rglob("*.tmp")]
    for path in sorted(results.rglob("*")):
        try:
            if path.suffix == ".pt":
                load_model(path)
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".npz":
                with np.load(path) as z:
                    [z[k] for k in z.files]
        except Exception as exc:
            problems.append(f"{path.relative_to(workdir)}: {exc}")
    return problems


def without_timing(obj):
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if k not in TIMING_FIELDS}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def json_results(workdir: Path) -> dict[str, object]:
    """Quality, info and history JSONs of a finished run, wall-clock figures left out.

    Timing records and the metrics built from them hold wall-clock figures throughout; the
    quality records hold every prediction, so equal quality records mean equal accuracies.
    """
    results = workdir / "results"
    paths = [*results.glob("quality/**/*.json"), *results.glob("models/**/*.json")]
    return {
        p.relative_to(results).as_posix(): without_timing(json.loads(p.read_text()))
        for p in sorted(paths)
    }


def file_digests(workdir: Path) -> dict[str, str]:
    """sha256 of every checkpoint and every data file of a finished run."""
    results = workdir / "results"
    paths = [
        *results.glob("models/**/*.pt"),
        results / "data" / "raw.csv",
        *(results / "data" / r / f for r in REPS for f in DATA_FILES),
    ]
    return {
        p.relative_to(results).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(paths)
    }


def step_intervals(workdir: Path) -> dict[str, tuple[datetime, datetime]]:
    """Each step log -> (started, finished); asserts that each log begins and ends that way."""
    intervals = {}
    for log in sorted((workdir / "logs").rglob("*.log")):
        lines = log.read_text().splitlines()
        name = log.relative_to(workdir / "logs").with_suffix("").as_posix()
        first = STARTED.match(lines[0]) if lines else None
        last = FINISHED.match(lines[-1]) if lines else None
        assert first and last, f"{name}: {lines[:1]} ... {lines[-1:]}"
        intervals[name] = (
            datetime.strptime(first.group(1), STAMP),
            datetime.strptime(last.group(1), STAMP),
        )
    return intervals


def overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# ---------------------------------------------------------------- the runs


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    workdir = pin_engine(copy_workflow(tmp_path_factory.mktemp("reference")))
    run_ok(workdir, "--cores", "2")
    return workdir


@pytest.fixture(scope="module")
def parallel(tmp_path_factory) -> Path:
    workdir = pin_engine(copy_workflow(tmp_path_factory.mktemp("parallel")))
    run_ok(workdir, "--cores", "4")
    return workdir


@dataclass
class Killed:
    workdir: Path
    status: int  # Snakemake's exit status
    step: str  # the quantize job under way, as <replicate>/<method>
    after_kill: Snapshot
    problems: list[str]  # partial files right after the kill
    same_command: subprocess.CompletedProcess  # the same command right after the kill


@pytest.fixture(scope="module")
def sigkilled(tmp_path_factory) -> Killed:
    workdir = pin_engine(copy_workflow(tmp_path_factory.mktemp("sigkilled")))
    proc = start(workdir, "--cores", "1")
    quantize = workdir / "logs" / "quantize" / "mlp"
    logs = [quantize / rep / f"{m}.log" for rep in REPS for m in TINY_METHODS]
    step = wait_for_step(proc, logs)
    status = interrupt(proc, signal.SIGKILL)
    after_kill, problems = snapshot(workdir), partial_files(workdir)
    same_command = snakemake(workdir, "--cores", "1")
    run_ok(workdir, "--cores", "1", "--unlock")
    run_ok(workdir, "--cores", "1")
    name = step.relative_to(quantize).with_suffix("").as_posix()  # e.g. seed7/rtn_w4
    return Killed(workdir, status, name, after_kill, problems, same_command)


@dataclass
class Attempt:
    rep: str  # the replicate whose rtn_w4 quantize step was under way
    status: int
    after: Snapshot
    problems: list[str]
    log_tail: str  # last line of the interrupted step's log
    locks: list[str]


@dataclass
class InterruptedChange:
    workdir: Path
    before: Snapshot  # the finished reference run
    attempts: dict[str, Attempt]  # signal name -> state after that interrupted rerun
    after_resume: Snapshot


def rerun_by_change(path: str) -> bool:
    """Outputs of the jobs that a change to rtn_w4 reruns: its own files and the summary's
    (the metrics records, and each artifact's figures.json, which copies its record)."""
    summary = ("results/summary.", "results/recommendation.json", "results/plots/")
    figures = path.startswith("results/deploy/") and path.endswith("/figures.json")
    return "rtn_w4" in path or figures or path.startswith((*summary, "results/metrics/"))


@pytest.fixture(scope="module")
def interrupted_change(reference, tmp_path_factory) -> InterruptedChange:
    workdir = tmp_path_factory.mktemp("changed") / "wf"
    shutil.copytree(reference, workdir, symlinks=True)
    before = snapshot(workdir)
    config = workdir / "tests" / "config_tiny.yaml"
    cfg = yaml.safe_load(config.read_text())
    cfg["methods"]["rtn_w4"]["bits"] = 3
    config.write_text(yaml.safe_dump(cfg))
    logs = [workdir / "logs" / "quantize" / "mlp" / rep / "rtn_w4.log" for rep in REPS]
    attempts = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = start(workdir, "--cores", "2")
        log = wait_for_step(proc, logs)
        status = interrupt(proc, sig)
        attempts[sig.name] = Attempt(
            rep=log.parent.name,
            status=status,
            after=snapshot(workdir),
            problems=partial_files(workdir),
            log_tail=log.read_text().splitlines()[-1],
            locks=sorted(p.name for p in (workdir / ".snakemake" / "locks").glob("*")),
        )
    run_ok(workdir, "--cores", "2")
    return InterruptedChange(workdir, before, attempts, snapshot(workdir))


# ---------------------------------------------------------------- nothing lost: one writer


WRITER = textwrap.dedent(
    """
    import sys, time
    from quantbench.core.files import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half")
        print(tmp, flush=True)
        time.sleep(120)
    """
)

STEP = textwrap.dedent(
    """
    import sys, time
    from quantbench.core.files import atomic_path
    from quantbench.core.logs import run_step

    def main():
        with atomic_path(sys.argv[2]) as tmp:
            tmp.write_text("half")
            print(tmp, flush=True)
            time.sleep(120)

    run_step(sys.argv[1], main)
    """
)


SRC = Path(__file__).resolve().parents[1] / "src"  # this checkout's library


def start_writer(*args: Path, script: str = WRITER) -> tuple[subprocess.Popen, Path]:
    """A process stopped halfway through writing; returns it and its temporary path."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, text=True, cwd=SRC
    )
    tmp = Path(proc.stdout.readline().strip())
    assert tmp.is_file(), "the writer did not start"
    return proc, tmp


def test_a_sigkilled_writer_leaves_the_old_file_and_the_next_writer_clears_up(tmp_path):
    target = tmp_path / "fp32.pt"
    write_text(target, "old")
    dead, dead_tmp = start_writer(target)
    dead.kill()
    dead.wait()
    assert target.read_text() == "old"
    assert dead_tmp.read_text() == "half"  # nothing can clean up after SIGKILL ...
    live, live_tmp = start_writer(target)
    try:
        assert not dead_tmp.exists()  # ... so the next writer of the same file does
        write_text(target, "new")
        assert target.read_text() == "new"
        assert live_tmp.read_text() == "half"  # a writer still at work keeps its file
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_step_stopped_by_a_signal_removes_its_temporary_file_and_says_so(tmp_path, sig):
    target, log = tmp_path / "rtn_w4.pt", tmp_path / "quantize.log"
    write_text(target, "old")
    proc, tmp = start_writer(log, target, script=STEP)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == -sig  # ended by the signal, as the parent expects
    assert not tmp.exists()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [log.name, target.name]
    lines = log.read_text().splitlines()
    assert STARTED.match(lines[0])
    assert lines[-1].endswith(f"step interrupted by {sig.name}; rerun the workflow to redo it")


def test_outputs_get_the_permissions_of_any_new_file(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "atomic.json", "{}")
        (tmp_path / "plain.json").write_text("{}")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {0o640}


# ---------------------------------------------------------------- nothing lost: killed runs


def test_sigkill_during_quantize_leaves_no_partial_file(sigkilled):
    assert sigkilled.status == -signal.SIGKILL
    assert sigkilled.problems == []
    done = set(sigkilled.after_kill)
    rep = sigkilled.step.split("/")[0]
    assert {f"results/models/mlp/{rep}/fp32.pt", f"results/data/{rep}/dataset.npz"} <= done
    # The step under way had written nothing yet: its outputs are absent, not half there.
    assert f"results/models/mlp/{sigkilled.step}.pt" not in done
    assert f"results/models/mlp/{sigkilled.step}.info.json" not in done


def test_after_sigkill_snakemake_wants_an_unlock_then_resumes_without_redoing_work(sigkilled):
    proc = sigkilled.same_command
    assert proc.returncode != 0
    assert "Directory cannot be locked" in proc.stdout + proc.stderr
    final = snapshot(sigkilled.workdir)
    for path, state in sigkilled.after_kill.items():
        assert final[path] == state, f"{path} was redone"
    assert partial_files(sigkilled.workdir) == []
    assert planned_jobs(sigkilled.workdir) == {}


def test_a_resumed_run_equals_an_uninterrupted_one(sigkilled, reference):
    assert file_digests(sigkilled.workdir) == file_digests(reference)
    assert json_results(sigkilled.workdir) == json_results(reference)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupting_a_changed_variant_leaves_the_other_results_untouched(interrupted_change, sig):
    attempt = interrupted_change.attempts[sig]
    assert attempt.status != 0
    assert attempt.problems == []
    assert attempt.locks == []  # Snakemake cleaned up: the next run needs no --unlock
    assert attempt.log_tail.endswith(f"step interrupted by {sig}; rerun the workflow to redo it")
    # The old rtn_w4 checkpoint went when its rerun began; the killed job wrote no new one.
    assert f"results/models/mlp/{attempt.rep}/rtn_w4.pt" not in attempt.after
    for path, state in interrupted_change.before.items():
        if not rerun_by_change(path):
            assert attempt.after.get(path) == state, f"{path} changed"


def test_resuming_a_changed_variant_reruns_only_that_variant(interrupted_change):
    workdir = interrupted_change.workdir
    before, after = interrupted_change.before, interrupted_change.after_resume
    assert {p for p in before if not rerun_by_change(p)} == {
        p for p in after if not rerun_by_change(p)
    }
    for path, state in before.items():
        if not rerun_by_change(path):
            assert after[path] == state, f"{path} changed"
    for rep in REPS:
        rtn = load_model(workdir / "results" / "models" / "mlp" / rep / "rtn_w4.pt")
        assert rtn.meta["params"]["bits"] == 3
    metrics = json.loads((workdir / "results" / "metrics" / "mlp" / "rtn_w4.json").read_text())
    assert metrics["params"]["bits"] == 3
    assert partial_files(workdir) == []
    assert planned_jobs(workdir) == {}


def test_sigterm_to_snakemake_alone_lets_running_jobs_finish_and_starts_no_new_one(tmp_path):
    """`kill PID` (SIGTERM to Snakemake, not to its jobs): Snakemake starts nothing new, waits
    for the jobs under way, releases the lock and exits non-zero; the same command resumes."""
    workdir = copy_workflow(tmp_path)
    targets = [f"results/models/mlp/{rep}/fp32.pt" for rep in REPS]
    logs = [workdir / "logs" / "train_fp32" / "mlp" / f"{rep}.log" for rep in REPS]
    proc = start(workdir, "--cores", "1", *targets)  # one job at a time: the other must wait
    log = wait_for_step(proc, logs)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) != 0
    out = (workdir / "interrupted-run.out").read_text()
    assert "Will exit after finishing currently running jobs" in out, out
    assert FINISHED.match(log.read_text().splitlines()[-1])  # the running job completed
    rep = log.stem
    assert (workdir / "results" / "models" / "mlp" / rep / "fp32.pt").is_file()
    (other,) = set(REPS) - {rep}
    assert not (workdir / "logs" / "train_fp32" / "mlp" / f"{other}.log").exists()  # not started
    assert not list((workdir / ".snakemake" / "locks").glob("*"))
    assert not [p for p in (workdir / ".snakemake" / "incomplete").rglob("*") if p.is_file()]
    assert partial_files(workdir) == []
    kept = snapshot(workdir)
    resumed = run_ok(workdir, "--cores", "1", *targets)
    assert (resumed.stdout + resumed.stderr).count("rule train_fp32:") == 1  # only the other
    after = snapshot(workdir)
    assert all(after[path] == state for path, state in kept.items())


# ---------------------------------------------------------------- determinism


def test_same_config_and_seed_give_identical_files(reference, parallel):
    digests = file_digests(reference)
    checkpoints = [f"models/mlp/{r}/{m}.pt" for r in REPS for m in VARIANTS]
    data = ["data/raw.csv", *(f"data/{r}/{f}" for r in REPS for f in DATA_FILES)]
    assert sorted(digests) == sorted(checkpoints + data)
    assert file_digests(parallel) == digests


def test_cores_change_timing_only(sigkilled, parallel, reference):
    # sigkilled ran with --cores 1, reference with 2 and parallel with 4.
    results = json_results(reference)
    assert sorted(results) == sorted(
        [f"quality/mlp/{r}/{m}.json" for r in REPS for m in VARIANTS]
        + [f"models/mlp/{r}/{m}.info.json" for r in REPS for m in TINY_METHODS]
        + [f"models/mlp/{r}/fp32.history.json" for r in REPS]
    )
    assert json_results(parallel) == results
    assert json_results(sigkilled.workdir) == results


# ---------------------------------------------------------------- concurrency


def test_a_parallel_run_leaves_no_temporary_file(parallel):
    assert partial_files(parallel) == []
    assert not [p for p in parallel.rglob("*.tmp") if ".snakemake" not in p.parts]


def test_quantize_jobs_really_ran_at_the_same_time(parallel):
    steps = step_intervals(parallel)
    quantize = [steps[f"quantize/mlp/{r}/{m}"] for r in REPS for m in TINY_METHODS]
    pairs = [(a, b) for i, a in enumerate(quantize) for b in quantize[i + 1 :]]
    assert any(overlap(a, b) for a, b in pairs), steps


def test_no_job_runs_beside_a_timing_job(parallel):
    steps = step_intervals(parallel)
    # generate_traffic and summarize; per replicate preprocess, train, quantize, score (each
    # score job also exports and checks its variant); time
    per_rep = 2 + len(TINY_METHODS) + len(VARIANTS)
    # + probe_engine (the engine is named in these runs, so it only checks and records it)
    assert len(steps) == 3 + len(REPS) * per_rep + len(TINY_METHODS)
    for name, timed in steps.items():
        if name.startswith("time/"):
            beside = [
                other for other, span in steps.items() if other != name and overlap(timed, span)
            ]
            assert beside == [], f"{name} ran beside {beside}"
