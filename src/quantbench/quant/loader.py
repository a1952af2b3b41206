"""Rebuild the runnable module of any checkpoint: FP32, or any registered quantization kind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.data.dataset import Dataset
from quantbench.models import ModelSpec
from quantbench.quant.ao.backend import quiet
from quantbench.quant.methods import registry as methods
from quantbench.training.checkpoint import CheckpointError, check_matches, read_checkpoint


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    meta: dict[str, Any]  # every top-level key of the checkpoint but ``state``
    state: dict[str, Any]  # the stored tensors, as on disk (packed weights stay packed)

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec.from_dict(self.meta["model"])


def build_fp32(spec: ModelSpec, state: dict[str, torch.Tensor]) -> nn.Module:
    """The FP32 module of ``spec`` with the checkpoint's weights (the torch RNG is untouched)."""
    with torch.random.fork_rng(devices=[]):
        model = spec.build()
    model.load_state_dict(state)
    return model.eval()


def model_spec(meta: dict[str, Any], path: Any) -> ModelSpec:
    """The checkpoint's model spec; a CheckpointError names the file and what is wrong."""
    try:
        return ModelSpec.from_dict(meta["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: model entry unusable ({exc}); rerun the workflow") from None


def load_model(path: str | os.PathLike[str], expect: Dataset | None = None) -> LoadedModel:
    """Read with ``weights_only=True`` and rebuild; a CheckpointError names what is wrong.

    With ``expect``, the checkpoint is refused (one line) before it is rebuilt unless it was
    trained on that dataset's features and classes: every step that runs a model on data loads
    it this way. A custom model is rebuilt from its file, which must still have the content it
    was trained with (its SHA-256 is in the checkpoint).
    """
    with quiet():  # int8 checkpoints make torch warn about quantized tensors and storages
        ckpt = read_checkpoint(path)
        meta = {k: v for k, v in ckpt.items() if k != "state"}
        spec = model_spec(meta, path)
        if expect is not None:
            check_matches(meta, list(expect.feature_names), list(expect.class_names), path)
        try:
            if meta["kind"] == "fp32":
                return LoadedModel(build_fp32(spec, ckpt["state"]), meta, ckpt["state"])
            params = methods.make_params(meta["kind"], meta["params"])
            module = methods.get_kind(meta["kind"]).rebuild(spec, ckpt["state"], params)
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
    return LoadedModel(module.eval(), meta, ckpt["state"])
