"""Which library files a workflow step runs, read from the source without importing it.

Snakemake does not see what a script imports, so every rule declares the quantbench modules it
runs as inputs. This module derives those lists from ``import`` statements (at any depth, lazy
imports inside functions included) so that a new kind needs no hand-written list; the workflow
tests compare the result with the modules each job really loaded.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = "quantbench"
ROOT = Path(__file__).resolve().parents[1]  # the package folder, src/quantbench
REGISTRY = Path("quant", "methods", "registry.py")  # the kinds' registry, ``_KINDS``


def _module_file(dotted: str) -> str | None:
    """``quantbench.quant.methods.gptq`` -> ``quant/methods/gptq.py`` (or an ``__init__.py``)."""
    parts = dotted.split(".")[1:]
    for candidate in (
        Path(*parts).with_suffix(".py") if parts else None,
        Path(*parts, "__init__.py"),
    ):
        if candidate is not None and (ROOT / candidate).is_file():
            return candidate.as_posix()
    return None


def _imported(node: ast.AST) -> list[str]:
    """Dotted quantbench module names one import statement may load."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module.split(".")[0] != PACKAGE:
            return []
        return [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
    return []


@functools.cache
def direct_imports(rel: str) -> frozenset[str]:
    """Library files ``rel`` imports directly, parent packages included."""
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"), filename=rel)
    found = set()
    for node in ast.walk(tree):
        for dotted in _imported(node):
            parts = dotted.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
                path = _module_file(".".join(parts[:i]))
                if path:
                    found.add(path)
    return frozenset(found - {rel})


def closure(*entries: str) -> list[str]:
    """Every library file the ``entries`` (paths relative to the package) may run, sorted."""
    seen: set[str] = set()
    todo = ["__init__.py", *entries]
    while todo:
        rel = todo.pop()
        if rel not in seen:
            seen.add(rel)
            todo.extend(direct_imports(rel))
            todo.extend(_packages_of(rel))
    return sorted(seen)


def _packages_of(rel: str) -> list[str]:
    """The ``__init__.py`` of every package above ``rel``: importing a module runs them."""
    parents = Path(rel).parents
    return [(p / "__init__.py").as_posix() for p in parents if p != Path(".")]


def kind_file(kind: str) -> str:
    """The module file of a registered kind, read from the registry's ``_KINDS`` mapping."""
    tree = ast.parse((ROOT / REGISTRY).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign | ast.Assign):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(isinstance(t, ast.Name) and t.id == "_KINDS" for t in targets):
                registry = ast.literal_eval(node.value)
                return _module_file(registry[kind]) or f"missing module for kind {kind!r}"
    raise ValueError(f"{REGISTRY.as_posix()} has no _KINDS registry")
