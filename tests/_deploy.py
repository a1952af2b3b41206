"""Checkpoints of every kind for the toy models, and ONNX Runtime helpers (deploy tests)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from quantbench.quant.loader import LoadedModel, load_model
from quantbench.quant.methods import registry
from quantbench.training.checkpoint import save_checkpoint
from tests import _toy

# The default variants of config.yaml, shrunk where they take time (QAT epochs).
KIND_PARAMS = {
    "fp32": {},
    "ptq_dynamic": {},
    "ptq_static": {"calibration_samples": 2048, "observer": "histogram"},
    "qat": {"epochs": 1, "lr": 1.0e-4},
    "gptq": {"bits": 4, "group_size": 16, "act_order": True},
    "rtn": {"bits": 4, "group_size": 16},
}
EVAL_ROWS = 4000


@functools.cache
def eval_rows() -> torch.Tensor:
    """Rows the parity tests score (fresh draws of the toy distribution, not training rows)."""
    return _toy.gaussian_mixture(EVAL_ROWS, seed=99)[0]


def checkpoint(tmp: Path, arch: str, kind: str, params: dict | None = None) -> LoadedModel:
    """Quantize the toy model of ``arch`` with ``kind`` and load it back from a checkpoint."""
    toy = _toy.toy(0, arch)
    params = dict(KIND_PARAMS[kind] if params is None else params)
    if kind == "fp32":
        state = toy.model.state_dict()
    else:
        qparams = registry.make_params(kind, params)
        state = registry.get_kind(kind).quantize(toy.model, toy.calib, qparams).state
    path = tmp / f"{arch}_{kind}.pt"
    save_checkpoint(path, _toy.checkpoint_meta(kind, params, toy.spec), state)
    return load_model(path)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def onnx_logits(model: onnx.ModelProto, x: torch.Tensor) -> np.ndarray:
    return session(model).run(["logits"], {"features": x.numpy()})[0]


@torch.no_grad()
def torch_logits(loaded: LoadedModel, x: torch.Tensor) -> np.ndarray:
    return loaded.module.eval()(x).numpy()


def op_types(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}
