"""Checkpoint files: one self-describing dict per model, readable with ``weights_only=True``.

Layout of the saved dict::

    format        "quantbench-checkpoint"      format_version  1
    method        variant name ("fp32", "rtn_w4", ...)
    kind          "fp32" or a registered kind
    params        the variant's resolved parameters (plain dict)
    model         ModelSpec.to_dict(): architecture, its parameters, feature and class
                  counts (and a custom model file's sha256): what rebuilds the module
    feature_names list[str]                    class_names     list[str]
    torch_version str                          seed            int
    engine        (int8 kinds) the int8 engine it was quantized for, also params["engine"];
                  loading sets it before the module is rebuilt
    state         kind-specific tensors (packed low-bit weights stay packed)

Nothing in it is a pickled class, so a crafted file cannot run code on load: ``torch.load`` with
``weights_only=True`` refuses anything but tensors and plain containers.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from quantbench.core.files import atomic_path

FORMAT = "quantbench-checkpoint"
FORMAT_VERSION = 1
_REQUIRED = ("method", "kind", "params", "model", "feature_names", "class_names", "state")


class CheckpointError(ValueError):
    """A checkpoint that cannot or must not be used; the message says which file and why."""


def save_checkpoint(path: str | os.PathLike[str], meta: dict[str, Any], state: dict) -> None:
    """Write ``meta`` plus ``state`` atomically; ``meta`` must hold every required key."""
    missing = [k for k in _REQUIRED if k != "state" and k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {', '.join(missing)}")
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta, "state": state}
    payload.setdefault("torch_version", str(torch.__version__))
    # Through a buffer: torch names the archive's inner folder after the file, and the temporary
    # file's random name would otherwise make identical checkpoints differ byte for byte.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load the raw dict with ``weights_only=True``; refuse foreign or unsafe files clearly."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found; run the workflow to create it")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure of the weights-only unpickler means: do not use it
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{p}: refused to load: not a safe quantbench checkpoint ({first}); "
            "only files written by quantbench load, delete it and rerun the workflow"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a quantbench checkpoint; delete it and rerun")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{p}: checkpoint format {ckpt.get('format_version')} is not {FORMAT_VERSION}; "
            "delete it and rerun the workflow"
        )
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {', '.join(missing)}; delete it and rerun")
    return ckpt


def check_matches(
    meta: dict[str, Any], feature_names: list[str], class_names: list[str], path: Any
) -> None:
    """Refuse a checkpoint trained on other features or classes than the dataset at hand."""
    if list(meta["feature_names"]) != list(feature_names):
        raise CheckpointError(
            f"{path}: checkpoint features differ from the dataset's "
            f"({len(meta['feature_names'])} vs {len(feature_names)} columns); "
            "rerun the workflow so model and data match"
        )
    if list(meta["class_names"]) != list(class_names):
        raise CheckpointError(
            f"{path}: checkpoint classes {list(meta['class_names'])} differ from the dataset's "
            f"{list(class_names)}; rerun the workflow so model and data match"
        )


def tensor_bytes(obj: Any) -> int:
    """Bytes of every tensor inside nested dicts/lists/tuples (quantized tensors included)."""
    if isinstance(obj, torch.Tensor):
        n = obj.numel() * obj.element_size()
        if obj.is_quantized and obj.qscheme() in (
            torch.per_channel_affine,
            torch.per_channel_symmetric,
        ):
            n += (
                obj.q_per_channel_scales().numel() * 8 + obj.q_per_channel_zero_points().numel() * 8
            )
        return n
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0
