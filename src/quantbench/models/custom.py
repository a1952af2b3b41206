"""Architecture ``custom``: the user's own ``nn.Module``, built by a factory in a Python file.

``path`` names a Python file and ``factory`` a callable in it with the signature
``factory(n_features, n_classes, **params) -> nn.Module``; ``params`` are passed as keywords.
quantbench **imports and runs that file**: it is code the user chose, with the user's rights, so
point ``path`` only at code you trust. The module must map float32 rows ``(batch, n_features)``
to logits ``(batch, n_classes)``; a probe batch checks that before any training.

Checkpoints stay weights-only: they store the path, the factory, the params and the file's
SHA-256, and the loader rebuilds the module from the file, refusing a file whose content changed.
Only that one file is hashed: a model spread over several files should import nothing local that
changes, or keep everything in the one file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Config:
    """``path`` of the Python file, ``factory`` name inside it, ``params`` for the factory."""

    path: str
    factory: str
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"path must name a Python file, got {self.path!r}")
        if not isinstance(self.factory, str) or not self.factory.isidentifier():
            raise ValueError(f"factory must be a function name, got {self.factory!r}")
        if not isinstance(self.params, dict) or not all(isinstance(k, str) for k in self.params):
            raise ValueError(f"params must be a mapping of names to values, got {self.params!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "factory": self.factory, "params": dict(self.params)}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of the file's bytes (hex); ValueError when the file is missing."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(
            f"model file {p} not found (looked in {Path.cwd()}); set path to the Python file "
            "that defines the factory, relative to the workflow directory"
        )
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


@functools.cache
def _import(resolved: str, sha256: str) -> ModuleType:
    """Import the file once per content (a changed file is a new module)."""
    name = f"quantbench_user_model_{sha256[:16]}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ValueError(f"model file {resolved} cannot be imported; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling inside the file look it up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(
            f"importing model file {resolved} failed ({_first_line(exc)}); "
            f"fix the file so that `python {resolved}` runs"
        ) from None
    return module


def load_factory(cfg: Config) -> Callable[..., nn.Module]:
    """The factory callable from the file; one-line ValueErrors for each way it can be wrong."""
    sha = file_sha256(cfg.path)
    module = _import(str(Path(cfg.path).resolve()), sha)
    fn = getattr(module, cfg.factory, None)
    if fn is None or not callable(fn):
        defined = sorted(
            n
            for n, v in vars(module).items()
            if callable(v) and getattr(v, "__module__", None) == module.__name__
        )
        raise ValueError(
            f"{cfg.path} defines no function {cfg.factory!r}; set factory to one of: "
            f"{', '.join(defined) or '(none: define factory(n_features, n_classes, **params))'}"
        )
    check_signature(fn, cfg)
    return fn


def check_signature(fn: Callable[..., Any], cfg: Config) -> None:
    """``fn(n_features, n_classes, **params)`` must bind; name the parameter that does not."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins without a signature: the call itself will tell
    ps = list(sig.parameters.values())
    positional = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in ps)
    if len(positional) < 2 and not varargs:
        raise ValueError(
            f"factory {cfg.factory}{sig} in {cfg.path} has the wrong signature; "
            "it must be factory(n_features, n_classes, **params)"
        )
    keywords = {p.name for p in ps[2:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    if not any(p.kind == p.VAR_KEYWORD for p in ps):
        unknown = sorted(set(cfg.params) - keywords)
        if unknown:
            raise ValueError(
                f"factory {cfg.factory} in {cfg.path} does not take parameter {unknown[0]!r}; "
                f"it takes {', '.join(sorted(keywords)) or 'no parameters'}"
            )
    missing = [
        p.name
        for p in ps[2:]
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in cfg.params
    ]
    if missing:
        raise ValueError(
            f"factory {cfg.factory} in {cfg.path} needs parameter {missing[0]!r}; "
            "set it under the model's params"
        )


def _probe_rows(n_features: int, n_classes: int) -> int:
    """A probe batch size that cannot be mistaken for a feature or class count."""
    return next(b for b in range(3, 10) if b not in (n_features, n_classes))


@torch.no_grad()
def check_output(model: nn.Module, cfg: Config, n_features: int, n_classes: int) -> None:
    """Run a probe batch of zeros in eval mode; the output must be ``(batch, n_classes)``."""
    rows = _probe_rows(n_features, n_classes)
    was_training = model.training
    model.eval()
    try:
        out = model(torch.zeros(rows, n_features))
    except Exception as exc:
        raise ValueError(
            f"the model of {cfg.factory} in {cfg.path} fails on a probe batch of shape "
            f"({rows}, {n_features}) ({_first_line(exc)}); its forward must take float32 rows "
            "(batch, n_features)"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"the model of {cfg.factory} in {cfg.path} returns {type(out).__name__}; "
            "return one tensor of logits (batch, n_classes)"
        )
    if tuple(out.shape) != (rows, n_classes):
        raise ValueError(
            f"the model of {cfg.factory} in {cfg.path} returns shape {tuple(out.shape)} for "
            f"{rows} rows; expected ({rows}, {n_classes}): logits (batch, n_classes)"
        )


def build(cfg: Config, n_features: int, n_classes: int) -> nn.Module:
    """Import the file, call the factory, check the result on a probe batch."""
    fn = load_factory(cfg)
    try:
        model = fn(n_features, n_classes, **cfg.params)
    except Exception as exc:
        raise ValueError(
            f"factory {cfg.factory}(n_features={n_features}, n_classes={n_classes}, "
            f"**{cfg.params}) in {cfg.path} raised {_first_line(exc)}; fix the factory or its "
            "params"
        ) from None
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"factory {cfg.factory} in {cfg.path} returned {type(model).__name__}, not a "
            "torch.nn.Module; return the model"
        )
    check_output(model, cfg, n_features, n_classes)
    return model
