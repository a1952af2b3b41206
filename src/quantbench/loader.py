"""Rebuild the runnable module of any checkpoint: FP32, or any registered quantization kind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench import methods
from quantbench.ao import quiet
from quantbench.checkpoint import CheckpointError, read_checkpoint
from quantbench.model import MLP, ModelConfig


@dataclass(frozen=True)
class LoadedModel:
    module: nn.Module
    meta: dict[str, Any]  # every top-level key of the checkpoint but ``state``
    state: dict[str, Any]  # the stored tensors, as on disk (packed weights stay packed)

    @property
    def model_cfg(self) -> ModelConfig:
        return ModelConfig.from_dict(self.meta["model"])


def build_fp32(model_cfg: ModelConfig, state: dict[str, torch.Tensor]) -> MLP:
    model = MLP(model_cfg)
    model.load_state_dict(state)
    return model.eval()


def load_model(path: str | os.PathLike[str]) -> LoadedModel:
    """Read with ``weights_only=True`` and rebuild; a CheckpointError names what is wrong."""
    with quiet():  # int8 checkpoints make torch warn about quantized tensors and storages
        ckpt = read_checkpoint(path)
        meta = {k: v for k, v in ckpt.items() if k != "state"}
        model_cfg = ModelConfig.from_dict(meta["model"])
        if meta["kind"] == "fp32":
            return LoadedModel(build_fp32(model_cfg, ckpt["state"]), meta, ckpt["state"])
        try:
            params = methods.make_params(meta["kind"], meta["params"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        module = methods.get_kind(meta["kind"]).rebuild(model_cfg, ckpt["state"], params)
    return LoadedModel(module.eval(), meta, ckpt["state"])
