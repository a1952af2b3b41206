"""Model variants as data: ``{arch: ..., <that architecture's parameters>}`` -> ``nn.Module``.

An architecture is one module of this package exposing:

- ``Config``: a frozen dataclass of its parameters, validated in ``__post_init__``, with
  ``to_dict()``;
- ``build(cfg, n_features, n_classes) -> nn.Module``: float32 ``(batch, n_features)`` rows in,
  ``(batch, n_classes)`` logits out.

Adding an architecture is one module plus one line in ``_ARCHS``. A :class:`ModelSpec` is what a
checkpoint stores (``to_dict()``) and what the loader rebuilds the module from: the architecture,
its resolved parameters, the data's feature and class counts and, for ``custom``, the SHA-256 of
the model file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from torch import nn

from quantbench.models import cnn1d, custom, mlp, transformer

__all__ = ["ARCHS", "ModelSpec", "build_model", "get_arch", "make_config", "resolve"]

_ARCHS: dict[str, ModuleType] = {
    "mlp": mlp,
    "cnn1d": cnn1d,
    "transformer": transformer,
    "custom": custom,
}
ARCHS: tuple[str, ...] = tuple(_ARCHS)
# Keys of a checkpoint's ``model`` entry that are not architecture parameters.
_SPEC_KEYS = ("arch", "n_features", "n_classes", "sha256")


def get_arch(arch: Any) -> ModuleType:
    """The module implementing ``arch``; a ValueError lists the known architectures otherwise."""
    if arch not in _ARCHS:
        raise ValueError(f"unknown model arch {arch!r}; choose one of: {', '.join(ARCHS)}")
    return _ARCHS[arch]


def make_config(spec: Mapping[str, Any]) -> Any:
    """The architecture's ``Config`` from ``{arch: ..., **params}``.

    A mapping without ``arch`` is an MLP (the layout of the former single ``model:`` block).
    """
    arch = spec.get("arch", "mlp")
    cls = get_arch(arch).Config
    known = {f.name for f in fields(cls)}
    extra = sorted(set(spec) - known - {"arch"})
    if extra:
        raise ValueError(
            f"model arch {arch!r} does not take {', '.join(extra)}; "
            f"it takes {', '.join(sorted(known))}"
        )
    return cls(**{k: v for k, v in spec.items() if k != "arch"})


@dataclass(frozen=True)
class ModelSpec:
    """Everything it takes to rebuild a model's module (stored in every checkpoint)."""

    arch: str
    config: Any  # the architecture's Config
    n_features: int
    n_classes: int
    sha256: str | None = None  # custom: the model file's content when the spec was resolved

    def __post_init__(self) -> None:
        get_arch(self.arch)
        if not isinstance(self.config, get_arch(self.arch).Config):
            raise ValueError(f"config of arch {self.arch!r} must be its Config")
        for name in ("n_features", "n_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")

    def build(self) -> nn.Module:
        """A fresh module (initialised from the current torch RNG state)."""
        if self.arch == "custom" and self.sha256 is not None:
            now = custom.file_sha256(self.config.path)
            if now != self.sha256:
                raise ValueError(
                    f"model file {self.config.path} changed since this model was trained "
                    f"(sha256 {self.sha256[:12]}… then, {now[:12]}… now); rerun the workflow "
                    "to retrain it, or restore the file"
                )
        return get_arch(self.arch).build(self.config, self.n_features, self.n_classes)

    def to_dict(self) -> dict[str, Any]:
        d = {"arch": self.arch, **self.config.to_dict()}
        d |= {"n_features": self.n_features, "n_classes": self.n_classes}
        if self.sha256 is not None:
            d["sha256"] = self.sha256
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        """Inverse of :meth:`to_dict`; also reads the MLP layout of older checkpoints."""
        if "arch" not in d and "in_features" in d:  # {in_features, hidden, n_classes, dropout}
            d = {"arch": "mlp", "n_features": d["in_features"], "hidden": d["hidden"],
                 "dropout": d.get("dropout", 0.0), "n_classes": d["n_classes"]}  # fmt: skip
        params = {k: v for k, v in d.items() if k not in _SPEC_KEYS}
        return cls(
            arch=d["arch"],
            config=make_config({"arch": d["arch"], **params}),
            n_features=int(d["n_features"]),
            n_classes=int(d["n_classes"]),
            sha256=d.get("sha256"),
        )


def resolve(spec: Mapping[str, Any], n_features: int, n_classes: int) -> ModelSpec:
    """Validate a model spec for data of this shape (a custom file is hashed here)."""
    config = make_config(spec)
    arch = spec.get("arch", "mlp")
    sha = custom.file_sha256(config.path) if arch == "custom" else None
    return ModelSpec(arch, config, int(n_features), int(n_classes), sha)


def build_model(spec: Mapping[str, Any], n_features: int, n_classes: int) -> nn.Module:
    """``{arch: ..., **params}`` -> a fresh module for ``n_features`` inputs and ``n_classes``."""
    return resolve(spec, n_features, n_classes).build()
