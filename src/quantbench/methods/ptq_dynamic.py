"""Post-training dynamic quantization: int8 weights, activations quantized per batch at run time.

Every Linear becomes a dynamic int8 Linear (``quantized::linear_dynamic``): weights are stored as
symmetric qint8, one scale per layer by default (torch's own default for dynamic quantization;
torch stores per-channel scales as float64, which makes the file about 10% larger), or one per
output row with ``per_channel`` where the engine supports it;
each call measures its input's range and quantizes it on the fly, so no calibration data is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench import ao
from quantbench.methods.base import CalibrationData, QuantizedModel
from quantbench.model import MLP, ModelConfig


@dataclass(frozen=True)
class Params:
    # One weight scale per output row where the engine supports it. Per-tensor weights make the
    # checkpoint ~3% of FP32 smaller (torch stores per-row scales as float64 + int64 zero points).
    per_channel: bool = False
    engine: str = "auto"  # int8 engine (quantization.engine of the config): auto | x86 | ...

    def __post_init__(self) -> None:
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be true or false, got {self.per_channel!r}")
        ao.check_engine_name(self.engine)


def _quantize_module(model: MLP, params: Params) -> tuple[nn.Module, bool]:
    engine = torch.backends.quantized.engine
    per_channel = params.per_channel and ao.per_channel_dynamic_supported(engine)
    return ao.quantize_dynamic(model, per_channel=per_channel), per_channel


def quantize(fp32_model: MLP, calib: CalibrationData, params: Params) -> QuantizedModel:
    """Dynamic int8 copy of ``fp32_model``; ``calib`` is not needed (ranges are per batch)."""
    t0 = time.perf_counter()
    engine = ao.use_engine(params.engine)
    module, per_channel = _quantize_module(fp32_model.cpu().eval(), params)
    info: dict[str, Any] = {
        "bits": 8,
        "engine": engine,
        "execution": "int8 kernels (dynamic: int8 weights, activations quantized per batch)",
        "weight_qscheme": ao.weight_qscheme(per_channel),
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module.eval(), state=module.state_dict(), info=info)


def rebuild(model_cfg: ModelConfig, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable dynamic int8 module from checkpoint ``state``."""
    ao.use_engine(params.engine)
    module, _ = _quantize_module(MLP(model_cfg).eval(), params)
    return ao.load_state(module, state)
