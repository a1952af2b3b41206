"""Static checks of a custom model file, at config time: read and parsed, never imported.

The workflow resolves its config whenever Snakemake starts (a dry run too), before any job; a
user's model file is code, and running it there would run it on every ``snakemake -n`` and pull
torch into config checking. So the file is only parsed (:mod:`ast`) and what the source itself
shows is checked: the file exists and parses, the factory is defined at the top level, and,
when it is a plain function, that ``factory(n_features, n_classes, **params)`` binds. What only
running the code can tell (the factory's result, the output shape on a probe batch) is checked
by the first job that builds the model (``quantbench.models.custom``), before any training.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

# Statements whose bodies run at import time (a definition inside them is a top-level name).
_BLOCKS = (ast.If, ast.Try, ast.With, ast.For, ast.While)


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Module-level statements, with those inside if/try/with/for/while blocks."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, _BLOCKS):
            for field in ("body", "orelse", "finalbody"):
                out += _top_level(getattr(stmt, field, []))
            for handler in getattr(stmt, "handlers", []):
                out += _top_level(handler.body)
    return out


def _names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _names(t)]
    return []


def bindings(tree: ast.Module) -> tuple[dict[str, list[ast.stmt]], bool]:
    """Top-level name -> the statements binding it, and whether a star import hides names."""
    found: dict[str, list[ast.stmt]] = {}
    star = False
    for stmt in _top_level(tree.body):
        names: list[str] = []
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [stmt.name]
        elif isinstance(stmt, ast.Assign):
            names = [n for t in stmt.targets for n in _names(t)]
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            names = _names(stmt.target)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                if alias.name == "*":
                    star = True
                else:
                    names.append(alias.asname or alias.name.split(".")[0])
        for name in names:
            found.setdefault(name, []).append(stmt)
    return found, star


def signature_problem(fn: ast.FunctionDef, factory: str, path: str, params: dict) -> str | None:
    """Why ``factory(n_features, n_classes, **params)`` cannot bind to ``fn``, or None."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    if len(positional) < 2 and a.vararg is None:
        return (
            f"factory: {factory}({', '.join(p.arg for p in positional)}) in {path} has the wrong "
            "signature; it must be factory(n_features, n_classes, **params)"
        )
    rest = positional[2:]
    keywords = [p.arg for p in rest if p not in a.posonlyargs] + [p.arg for p in a.kwonlyargs]
    if a.kwarg is None:
        unknown = sorted(set(params) - set(keywords))
        if unknown:
            takes = ", ".join(sorted(keywords)) or "no parameters"
            return (
                f"params: factory {factory} in {path} does not take parameter {unknown[0]!r}; "
                f"it takes {takes}"
            )
    # the defaults belong to the last len(defaults) positional parameters
    first_default = len(positional) - len(a.defaults)
    required = [p.arg for i, p in enumerate(positional) if 2 <= i < first_default]
    required += [p.arg for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True) if d is None]
    missing = [name for name in required if name not in params]
    if missing:
        return (
            f"params: factory {factory} in {path} needs parameter {missing[0]!r}; "
            "set it under the model's params"
        )
    return None


def source_problem(path: str, factory: str, params: dict[str, Any]) -> str | None:
    """What is wrong with a custom model's file as its source shows (``key: why; fix``)."""
    p = Path(path)
    if not p.is_file():
        return (
            f"path: model file {path} not found (looked in {Path.cwd()}); set path to the Python "
            "file that defines the factory, relative to the working directory"
        )
    try:
        tree = ast.parse(p.read_bytes(), filename=path)
    except (SyntaxError, ValueError) as exc:
        line = f", line {exc.lineno}" if getattr(exc, "lineno", None) else ""
        msg = getattr(exc, "msg", str(exc))
        return f"path: model file {path} is not valid Python ({msg}{line}); fix the file"
    found, star = bindings(tree)
    if factory not in found:
        if star:
            return None  # a star import may bring it; the first job will tell
        defined = sorted(
            name
            for name, stmts in found.items()
            if isinstance(stmts[-1], (ast.FunctionDef, ast.ClassDef)) and not name.startswith("_")
        )
        choices = ", ".join(defined) or "(none: define factory(n_features, n_classes, **params))"
        return f"factory: {path} defines no function {factory!r}; set factory to one of: {choices}"
    stmt = found[factory][-1]
    if isinstance(stmt, ast.FunctionDef) and not stmt.decorator_list and len(found[factory]) == 1:
        return signature_problem(stmt, factory, path, params)
    return None  # a class, a decorated or assigned callable: the first job checks the call
