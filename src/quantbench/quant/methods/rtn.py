"""Kind ``rtn``: round-to-nearest weight-only quantization on the shared grid, bit-packed.

Each weight of every Linear and Conv1d layer is rounded to the nearest level of its group's grid
(:mod:`quantbench.quant.weightonly.grid`), with no calibration. It shares the grid, the packing and
the per-layer error report with ``gptq``, so ``rtn_wN`` against ``gptq_wN`` isolates the algorithm.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.models import ModelSpec
from quantbench.quant.ao import backend
from quantbench.quant.base import CalibrationData, QuantizedModel
from quantbench.quant.weightonly.execution import build_module
from quantbench.quant.weightonly.grid import Grid, quantize_weight
from quantbench.quant.weightonly.layers import check_model_fits, quantize_layers, require_kernels
from quantbench.quant.weightonly.params import check_execution, check_grid_params
from quantbench.quant.weightonly.params import check_fits as check_group_fits
from quantbench.quant.weightonly.result import finish
from quantbench.quant.weightonly.state import check_state

# Rows for the calibration-side error report: gptq's default calibration_samples, drawn the
# same way (calib.calibration_rows), so the two kinds are measured on the same rows by default.
ERROR_ROWS = 2048


@dataclass(frozen=True)
class Params:
    """``bits`` per code (2..8); ``group_size`` columns per scale/zero (-1 = per output
    channel); ``symmetric`` grid or asymmetric; ``execution``: the path the codes run on at
    load (``auto``, ``dequantized``, ``int4``, ``int8``; see :mod:`quantbench.quant.weightonly`)."""

    bits: int = 4
    group_size: int = 32
    symmetric: bool = False
    execution: str = "auto"
    engine: str = "auto"  # int8 engine of the int8 path (quantization.engine, resolved)

    def __post_init__(self) -> None:
        check_grid_params(self.bits, self.group_size, self.symmetric)
        check_execution(self.execution, self.bits, self.group_size)
        backend.check_engine_name(self.engine)

    @property
    def grid(self) -> Grid:
        return Grid(self.bits, self.symmetric)


def check_fits(params: Params, in_widths: list[int]) -> None:
    """Raise ValueError if ``params.group_size`` cannot be used on these layer input widths."""
    check_group_fits(params.group_size, in_widths)


def quantize(fp32_model: nn.Module, calib: CalibrationData, params: Params) -> QuantizedModel:
    """Round every Linear and Conv1d weight to the grid; report per-layer output errors."""
    t0 = time.perf_counter()
    n_features = int(calib.x_train.shape[1])
    check_model_fits(fp32_model, params.group_size, n_features)
    require_kernels(fp32_model, params.execution, params.bits, params.group_size, n_features)
    device = torch.device(calib.device)
    x_calib = calib.calibration_rows(ERROR_ROWS).to(device)

    def quantize_layer(name: str, W: torch.Tensor, X: torch.Tensor):
        return quantize_weight(W, params.grid, params.group_size)

    layers, errors = quantize_layers(fp32_model, x_calib, calib.x_val, quantize_layer)
    extra: dict[str, Any] = {
        "calibration_rows": int(x_calib.shape[0]),
        "heldout_rows": int(calib.x_val.shape[0]),
        "device": str(device),
    }
    return finish(
        fp32_model,
        layers,
        params.grid,
        params.group_size,
        errors,
        t0,
        extra,
        n_features,
        params.execution,
        params.engine,
    )


def rebuild(spec: ModelSpec, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable module of a checkpoint's packed state."""
    check_state(state, params.bits, params.group_size)
    with torch.random.fork_rng(devices=[]):
        skeleton = spec.build()
    return build_module(skeleton, state, params.grid, params.execution, params.engine)
