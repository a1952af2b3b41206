"""README.md stays true to the code: its config reference is the schema's, its quickstart runs."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_config_reference_matches_the_schema():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out in README


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert "snakemake --cores 4" in commands[0]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_troubleshooting_lists_at_least_25_bad_inputs():
    section = README.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) - 1 >= 25
