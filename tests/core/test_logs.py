"""A job's log holds only its latest run: a failed job never shows an earlier run's lines."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.workflow_helpers import copy_workflow, run_ok, snakemake

OLD = "a line of an earlier run\n"
SRC = Path(__file__).resolve().parents[2] / "src"  # this checkout's library, not an installed one

STEP = textwrap.dedent(
    """
    import sys
    from quantbench.core.logs import run_step

    def main():
        if sys.argv[2] == "fail":
            raise ValueError("column 'bytes' is missing: add it to the CSV")

    run_step(sys.argv[1], main)
    """
)


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_the_step_runner_starts_the_log_afresh(tmp_path, outcome):
    log = tmp_path / "step.log"
    log.write_text(OLD * 3)
    proc = subprocess.run(
        [sys.executable, "-c", STEP, str(log), outcome], capture_output=True, text=True, cwd=SRC
    )
    assert proc.returncode == (0 if outcome == "ok" else 1)
    text = log.read_text()
    assert OLD not in text
    assert text.count("step started") == 1
    last = text.splitlines()[-1]
    if outcome == "ok":
        assert last.endswith("step finished")
    else:
        assert last == "quantbench: column 'bytes' is missing: add it to the CSV"


@pytest.mark.workflow
def test_a_job_that_fails_after_a_success_shows_only_the_failing_run(tmp_path):
    """First generate_traffic succeeds; then it fails inside the step, then before the step
    runner even starts (a broken script): each time its log holds that run alone."""
    workdir = copy_workflow(tmp_path)
    target, log = "results/data/raw.csv", workdir / "logs" / "generate_traffic.log"
    run_ok(workdir, "--cores", "1", target)
    assert log.read_text().splitlines()[-1].endswith("step finished")

    library = (
        workdir / "src" / "quantbench" / "data" / "synthetic.py"
    )  # a job input: the job reruns
    with library.open("a") as fh:
        fh.write("\n\ndef write_flows_csv(*args, **kwargs):\n    raise ValueError('disk full')\n")
    failed = snakemake(workdir, "--cores", "1", target)
    assert failed.returncode != 0
    text = log.read_text()
    assert text.count("step started") == 1 and "step finished" not in text, text
    assert text.splitlines()[-1] == "quantbench: disk full"

    script = workdir / "workflow" / "scripts" / "generate_traffic.py"
    script.write_text('raise RuntimeError("broken script")\n' + script.read_text())
    broken = snakemake(workdir, "--cores", "1", target)
    assert broken.returncode != 0
    assert "broken script" in broken.stdout + broken.stderr
    assert not log.exists() or "step" not in log.read_text()
