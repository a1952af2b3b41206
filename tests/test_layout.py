"""The package's layout: one layer per stage, imports only downward, no cycle, empty packages."""

from __future__ import annotations

import ast
import graphlib
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "quantbench"

# Lowest first. A module may import modules of its own layer or of a lower one, never of a
# higher one. Within quant/ the kinds' contract sits at the bottom and the steps at the top.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__init__", "core"),
    ("machine",),
    ("data",),
    ("models",),
    ("training",),
    ("quant.base", "quant.coverage"),
    ("quant.ao",),
    ("quant.weightonly",),
    ("quant.methods",),
    ("quant.loader", "quant.quantize"),
    ("measure",),
    ("deploy",),
    ("report",),
)
# Packages whose __init__.py holds code (they predate the rule that new ones stay empty).
NON_EMPTY_INITS = {"__init__.py", "models/__init__.py", "report/__init__.py"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" and len(rel.parts) > 1 else rel.parts
    return ".".join(parts)


def layer(module: str) -> int:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    raise AssertionError(f"quantbench.{module} sits in no layer; add it to LAYERS")


def modules() -> dict[str, Path]:
    """Every module with code (an empty package __init__ imports nothing and holds nothing)."""
    return {
        module_name(p): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.read_text(encoding="utf-8").strip()
    }


def imports(path: Path, known: set[str]) -> set[str]:
    """The quantbench modules ``path`` imports (at any depth), each as its most specific module:
    ``from quantbench.quant.ao import fx`` is quant.ao.fx, ``from quantbench.models import
    ModelSpec`` is models (its __init__)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for dotted in names:
            parts = dotted.split(".")
            if parts[0] != "quantbench":
                continue
            for end in range(len(parts), 1, -1):
                candidate = ".".join(parts[1:end])
                if candidate in known:
                    found.add(candidate)
                    break
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, known) - {name} for name, path in mods.items()}


def test_every_module_sits_in_a_layer():
    for name in modules():
        layer(name)


def test_no_import_runs_back_up_the_layers():
    back = [
        f"quantbench.{a} imports quantbench.{b}"
        for a, targets in graph().items()
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]
    assert back == []


def test_the_import_graph_has_no_cycle():
    graphlib.TopologicalSorter(graph()).prepare()  # raises CycleError naming the cycle


def test_the_checks_see_a_back_arrow_and_a_cycle():
    g = graph()
    assert "quant.base" in g["quant.methods.rtn"]  # the graph holds real edges
    assert layer("measure.timing") > layer("quant.loader") > layer("training.checkpoint")
    g["quant.base"] = g["quant.base"] | {"quant.methods.rtn"}
    try:
        graphlib.TopologicalSorter(g).prepare()
    except graphlib.CycleError:
        pass
    else:
        raise AssertionError("a cycle went unseen")


def test_new_package_inits_stay_empty():
    """deps.closure turns imports into rule inputs: an __init__ importing its siblings would
    make every job that touches the package rerun when any of them changes."""
    for init in sorted(PACKAGE.rglob("__init__.py")):
        rel = init.relative_to(PACKAGE).as_posix()
        if rel not in NON_EMPTY_INITS:
            assert init.read_text(encoding="utf-8") == "", rel


def test_no_module_over_400_lines():
    long = {
        p.relative_to(PACKAGE).as_posix(): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert long == {}


def test_what_the_workflow_imports_at_parse_time_loads_no_torch():
    """Snakemake parses the rule files before any job: the library modules they import (config
    checking, rule inputs, a CSV source's files) must stay torch-free and quick."""
    rules = PACKAGE.parents[1] / "workflow" / "rules"
    found = {
        m
        for smk in rules.glob("*.smk")
        for m in re.findall(r"^\s*from (quantbench[\w.]*) import", smk.read_text(), re.M)
    }
    assert {"quantbench.core.config", "quantbench.core.deps", "quantbench.data.tabular"} <= found
    code = f"import sys; import {', '.join(sorted(found))}; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    assert out.stdout.strip() == "False"
