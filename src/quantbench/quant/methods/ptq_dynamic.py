"""Post-training dynamic quantization: int8 weights, activations quantized per batch at run time.

Every ``nn.Linear`` becomes a dynamic int8 Linear (``quantized::linear_dynamic``), every
``nn.Conv1d`` a dynamic int8 convolution (``quantized::conv1d_dynamic``) and every
``nn.GRU``/``nn.LSTM`` a dynamic int8 recurrent layer (``aten::quantized_gru``/``_lstm``), by
module type wherever they sit in the model (no tracing needed). torch cautions that its dynamic
Conv1d has poor numerical accuracy; quantbench silences that generic warning and measures the
accuracy instead (the summary has it). Linear weights are stored as
symmetric qint8, one scale per layer by default (torch's own default for dynamic quantization;
torch stores per-channel scales as float64, which makes the file about 10% larger), or one per
output row with ``per_channel`` where the engine supports it; recurrent weights are per layer.
Each call measures its input's range and quantizes it on the fly, so no calibration data is
used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.models import ModelSpec
from quantbench.quant import coverage
from quantbench.quant.ao import backend, dynamic
from quantbench.quant.base import CalibrationData, QuantizedModel
from quantbench.quant.coverage import Decision, Layer

EXECUTION = "int8 kernels (dynamic: int8 weights, activations quantized per batch)"


@dataclass(frozen=True)
class Params:
    # One weight scale per output row where the engine supports it. Per-tensor weights make the
    # checkpoint ~3% of FP32 smaller (torch stores per-row scales as float64 + int64 zero points).
    per_channel: bool = False
    engine: str = "auto"  # int8 engine (quantization.engine of the config): auto | x86 | ...

    def __post_init__(self) -> None:
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be true or false, got {self.per_channel!r}")
        backend.check_engine_name(self.engine)


def _quantize_module(model: nn.Module, params: Params) -> tuple[nn.Module, bool]:
    engine = torch.backends.quantized.engine
    per_channel = params.per_channel and dynamic.per_channel_dynamic_supported(engine)
    return dynamic.quantize_dynamic(model, per_channel=per_channel), per_channel


def fp32_reason(module: nn.Module) -> str:
    """Why dynamic quantization leaves a layer of this type FP32."""
    if isinstance(module, nn.Conv1d):
        return f"Conv1d with padding_mode={module.padding_mode!r}: not converted by torch"
    if isinstance(module, nn.modules.conv._ConvNd):
        return (
            f"{type(module).__name__}: ptq_dynamic converts Conv1d only "
            "(ptq_static and qat have kernels for 2-D and 3-D convolutions)"
        )
    mha = (nn.MultiheadAttention, nn.modules.linear.NonDynamicallyQuantizableLinear)
    if isinstance(module, mha):
        return "inside nn.MultiheadAttention, which torch's dynamic quantization leaves FP32"
    if isinstance(module, (nn.Linear, nn.RNNBase)):
        return f"{type(module).__name__}: torch converts exactly nn.Linear, nn.GRU and nn.LSTM"
    return coverage.fp32_reason(module)


def _kernel(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return "quantized::linear_dynamic"
    if isinstance(module, nn.Conv1d):  # torch warns its numerics are poor: accuracy is measured
        return "quantized::conv1d_dynamic"
    return f"aten::quantized_{type(module).__name__.lower()}"


def decide(converted: nn.Module):
    """Coverage verdicts: the eager module swap keeps every layer's name."""

    def verdict(layer: Layer, fp32_module: nn.Module) -> Decision:
        q = converted.get_submodule(layer.name)
        if backend.is_quantized_module(q, dynamic=True):
            return Decision(True, f"int8 weights, {_kernel(fp32_module)}", int8_kernel=True)
        return Decision(False, fp32_reason(fp32_module))

    return verdict


def quantize(fp32_model: nn.Module, calib: CalibrationData, params: Params) -> QuantizedModel:
    """Dynamic int8 copy of ``fp32_model``; ``calib`` is not needed (ranges are per batch)."""
    t0 = time.perf_counter()
    engine = backend.use_engine(params.engine)
    fp32_model = fp32_model.cpu().eval()
    module, per_channel = _quantize_module(fp32_model, params)
    x = coverage.probe(int(calib.x_train.shape[1]))
    info: dict[str, Any] = {
        "bits": 8,
        "engine": engine,
        "execution": EXECUTION,
        "weight_qscheme": backend.weight_qscheme(per_channel),
        "coverage": coverage.report(fp32_model, x, decide(module)),
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module.eval(), state=dynamic.dynamic_state(module), info=info)


def rebuild(spec: ModelSpec, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable dynamic int8 module from checkpoint ``state``."""
    backend.use_engine(params.engine)
    module, _ = _quantize_module(spec.build().eval(), params)
    return dynamic.load_dynamic_state(module, state)
