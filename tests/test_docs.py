"""The docs stay true to the code: docs/config.md is the schema's, README's quickstart runs."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
REGENERATE = "python scripts/config_reference.py --write docs/config.md"


def test_config_reference_matches_the_schema():
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_reference.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    page = ROOT / "docs" / "config.md"
    stale = f"docs/config.md is not the schema's reference; run `{REGENERATE}`"
    assert page.is_file(), stale
    assert page.read_text(encoding="utf-8") == generated, stale


def test_write_gives_the_printed_page(tmp_path):
    script = str(ROOT / "scripts" / "config_reference.py")
    printed = subprocess.run(
        [sys.executable, script], capture_output=True, text=True, check=True
    ).stdout
    target = tmp_path / "docs" / "config.md"
    subprocess.run(
        [sys.executable, script, "--write", str(target)], check=True, capture_output=True
    )
    assert target.read_text(encoding="utf-8") == printed


def test_readme_links_the_config_reference_and_no_longer_holds_it():
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert "(docs/config.md)" in section
    assert "workflow/schemas/config.schema.yaml" in section
    assert "| key | type | default | meaning |" not in README


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
