"""The docs stay true to the code: docs/config.md is the schema's, README's quickstart runs,
README stays a front door, and no link leaves the repository."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "(docs/config.md)" in README
    assert "workflow/schemas/config.schema.yaml" in README
    assert "| key | type | default | meaning |" not in README


def test_readme_is_a_front_door():
    """Under 10 KB; the reference lives in docs/, every page of which README's map links."""
    assert len(README.encode("utf-8")) <= 10 * 1024
    pages = {p.name for p in (ROOT / "docs").glob("*.md")}
    linked = set(re.findall(r"\(docs/([\w.-]+\.md)", README))
    assert pages <= linked, f"docs pages missing from README's map: {sorted(pages - linked)}"


def test_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert "snakemake --cores 4" in commands[0]
    assert "pip install torch==" in commands[0].split("pip install -e")[0]  # torch first
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in section  # the CPU wheel route


def test_troubleshooting_lists_at_least_25_bad_inputs():
    page = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    rows = [line for line in page.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) - 1 >= 25


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_links_stay_inside_the_repository(page):
    """Relative links resolve to a path inside the checkout (none to a neighbour's folder)."""
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name}: {target} leaves the repository"
        if "#" in target and path.suffix == ".md" and path.is_file():
            anchor = target.split("#", 1)[1]
            assert anchor in _anchors(path), f"{page.name}: {target}: no such heading"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_shipped_figures_live_in_the_ledger_alone():
    """A figure quoted from a benchmark appears once: the ledger's probe and wide-model figures
    are not repeated on other pages."""
    ledger = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    for figure in ("1.74×", "2.11 [2.09, 2.12]", "0.48 [0.47, 0.51]", "153.8 s", "45.7 s"):
        assert figure in ledger
        others = [p.name for p in _pages() if figure in p.read_text(encoding="utf-8")]
        assert others == ["benchmarks.md"], (figure, others)
