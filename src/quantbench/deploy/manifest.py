"""The artifact's manifest (``manifest.json`` beside ``model.onnx``): what the graph expects.

It names the graph's inputs column by column (numeric, then categorical, in order), the
categorical vocabularies, the class names, the rules that read a raw CSV as the workflow read it
(preset, header, column names, duplicate-name policy, encoding, identifier and dropped columns,
the label column, the non-finite policy), the method (name, kind, parameters), the SHA-256 of
the source checkpoint and of the ONNX file, the opset, how each layer runs (the exporter's
per-layer record and notes, fallbacks with their reasons) and the tool versions.

Reading needs only the standard library: ``quantbench predict`` checks the format version and
the ONNX file's SHA-256 before it runs anything. :class:`ArtifactError` messages are one line
naming the file, the problem and the fix.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "quantbench-onnx-artifact"
FORMAT_VERSION = 1
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
OUTPUTS = ("logits", "probabilities", "label")
TOOLS = ("onnx", "onnxruntime", "torch", "quantbench", "scikit-learn")
# DataConfig fields (the data card's ``config``) that say how raw rows were read.
READER_KEYS = (
    "preset", "label_column", "header", "column_names", "duplicate_columns", "encoding",
    "exclude_columns", "drop_columns", "nonfinite", "chunk_rows",
)  # fmt: skip


class ArtifactError(ValueError):
    """An artifact that cannot be used; the message names the file, the problem and the fix."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools an artifact was made with (metadata only, no import)."""
    out = {}
    for name in TOOLS:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass(frozen=True)
class Reader:
    """How a raw CSV is read: the workflow's column rules for this artifact's data."""

    label_column: str
    header: bool = True
    column_names: tuple[str, ...] = ()
    duplicate_columns: str = "error"
    encoding: str = "auto"
    exclude_columns: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    nonfinite: str = "drop"
    chunk_rows: int = 50_000
    preset: str | None = None

    def __post_init__(self) -> None:
        for name in ("column_names", "exclude_columns", "drop_columns"):
            object.__setattr__(self, name, tuple(str(c) for c in getattr(self, name)))
        if self.nonfinite not in ("drop", "median", "error"):
            raise ValueError(f"reader.nonfinite {self.nonfinite!r} is unknown")


@dataclass(frozen=True)
class Manifest:
    """The parts of a manifest that running the artifact needs (the file holds more)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    vocabularies: dict[str, tuple[str, ...]]
    classes: tuple[str, ...]
    reader: Reader
    onnx_sha256: str
    method: str
    raw: dict[str, Any]

    def __post_init__(self) -> None:
        if set(self.vocabularies) != set(self.categorical):
            raise ValueError("vocabularies must name exactly the categorical columns")
        if len(self.classes) < 2:
            raise ValueError("an artifact needs two or more classes")


def reader_from_card(card: dict[str, Any]) -> dict[str, Any]:
    """The reader rules from a data card's ``config`` (the DataConfig the workflow used)."""
    cfg = card["config"]
    return {k: cfg[k] for k in READER_KEYS if k in cfg}


def _parse(raw: dict[str, Any]) -> Manifest:
    inputs = raw["inputs"]
    return Manifest(
        numeric=tuple(inputs["numeric"]),
        categorical=tuple(inputs["categorical"]),
        vocabularies={k: tuple(v) for k, v in raw["vocabularies"].items()},
        classes=tuple(raw["classes"]),
        reader=Reader(**raw["reader"]),
        onnx_sha256=str(raw["onnx_sha256"]),
        method=str(raw["method"]["name"]),
        raw=raw,
    )


def read_manifest(artifact: str | os.PathLike[str], verify: bool = True) -> Manifest:
    """The manifest of an artifact folder (or its ``model.onnx``/``manifest.json``), checked.

    With ``verify`` the ONNX file's SHA-256 must equal the manifest's.
    """
    folder = Path(artifact)
    if folder.is_file():
        folder = folder.parent
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{folder}: no {MANIFEST_FILE}; point at an artifact folder "
            "(results/deploy/<model>/<rep>/<method>/) made by the workflow (deploy.export)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not readable JSON ({exc}); re-export the artifact") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ArtifactError(f"{path}: not a quantbench artifact manifest; re-export the artifact")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version!r}, this quantbench reads version "
            f"{FORMAT_VERSION}; re-export the artifact with this quantbench (or use the "
            "quantbench that made it)"
        )
    try:
        manifest = _parse(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(
            f"{path}: incomplete manifest ({exc}); re-export the artifact"
        ) from None
    if verify:
        check_onnx_file(folder / MODEL_FILE, manifest.onnx_sha256)
    return manifest


def check_onnx_file(path: Path, expected: str) -> None:
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; re-export the artifact")
    actual = sha256_file(path)
    if actual != expected:
        raise ArtifactError(
            f"{path}: SHA-256 {actual[:12]}... differs from the manifest's {expected[:12]}... "
            "(the file was changed or replaced); re-export the artifact, do not edit its files"
        )
