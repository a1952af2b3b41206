"""What a weight-only kind returns: the packed state, the module built from it (the same one
the checkpoint loader builds), the info record and the coverage verdicts."""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from quantbench.core.config import resolved_execution
from quantbench.quant import coverage
from quantbench.quant.base import QuantizedModel
from quantbench.quant.coverage import Decision, Layer
from quantbench.quant.weightonly.execution import build_module
from quantbench.quant.weightonly.grid import (
    Grid,
)
from quantbench.quant.weightonly.layers import PackedLayers, unsupported
from quantbench.quant.weightonly.params import EXEC_TEXT, execution_text, layer_path
from quantbench.quant.weightonly.state import pack_state


def decide(state: dict[str, Any], grid: Grid, execution: str = "auto"):
    """Coverage verdicts of a weight-only model: the packed layers are the quantized ones."""
    group_size = int(state["group_size"])
    where = "per output channel" if group_size == -1 else f"groups of {group_size}"

    def verdict(layer: Layer, fp32_module: nn.Module) -> Decision:
        entry = state["layers"].get(layer.name)
        if entry is not None:
            path = layer_path(execution, group_size, entry["shape"])
            return Decision(
                True,
                f"{grid.bits}-bit codes, {where}; {EXEC_TEXT[path]}",
                int8_kernel=path != "dequantized",
            )
        return Decision(False, fp32_reason(layer, fp32_module))

    return verdict


def fp32_reason(layer: Layer, module: nn.Module) -> str:
    """Why the weight-only kinds leave this layer FP32."""
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        if layer.order < 0:
            return (
                "not called as a module in the forward pass (its parent uses the weight "
                "directly, as nn.MultiheadAttention does): no inputs to calibrate on"
            )
        return unsupported(module) or "not a matrix layer"
    if isinstance(module, (nn.RNNBase, nn.modules.conv._ConvNd)):
        return (
            f"{type(module).__name__}: the weight-only kinds quantize Linear and Conv1d layers "
            "(ptq_dynamic has int8 GRU/LSTM kernels, ptq_static and qat convolution kernels)"
        )
    return coverage.fp32_reason(module)


def finish(
    fp32_model: nn.Module,
    layers: PackedLayers,
    grid: Grid,
    group_size: int,
    layer_error: list[dict[str, Any]],
    t0: float,
    extra: dict[str, Any],
    n_features: int,
    path: str = "auto",
    engine: str = "auto",
) -> QuantizedModel:
    """Pack the layers, build the module from the packed state (on the ``path`` execution
    path, with ``engine`` on the int8 path) and describe the result."""
    fp32_model = fp32_model.cpu().eval()
    state = pack_state(layers, grid.bits, group_size, fp32_model)
    module = build_module(copy.deepcopy(fp32_model), state, grid, path, engine)
    shapes = [entry["shape"] for entry in state["layers"].values()]
    verdicts = decide(state, grid, path)
    info = {
        "bits": grid.bits,
        "group_size": group_size,
        "symmetric": grid.symmetric,
        "execution": execution_text(group_size, shapes, path),
        "execution_path": resolved_execution(path, group_size),
        # build_module set the engine the int8 path runs on (the run's, or the fallback)
        "engine": (
            str(torch.backends.quantized.engine)
            if resolved_execution(path, group_size) == "int8"
            else None
        ),
        "layer_error": layer_error,
        "g_idx_stored": [n for n, e in state["layers"].items() if "g_idx" in e],
        "coverage": coverage.report(fp32_model, coverage.probe(n_features), verdicts),
        **extra,
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module, state=state, info=info)
