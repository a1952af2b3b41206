"""Post-training static quantization: fixed int8 ranges for weights and activations.

The model is traced with FX graph mode (:mod:`quantbench.quant.ao`): fusion patterns (Conv1d+ReLU,
Linear+ReLU) and observer places come from its graph, then observers record activation ranges
on ``calibration_samples`` training rows (never validation or test rows). Conversion yields a
graph whose fused layers run ``quantized::linear_relu`` / ``quantized::conv1d_relu``, the others
``quantized::linear`` / ``quantized::conv1d``, int8 from the first quantize to the last
dequantize. Operations without an int8 kernel (products of two activations inside attention)
run FP32 between a dequantize and a quantize; the coverage record lists them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from quantbench.models import ModelSpec
from quantbench.quant import coverage
from quantbench.quant.ao import backend, fx, qconfigs
from quantbench.quant.base import CalibrationData, QuantizedModel
from quantbench.quant.coverage import Decision, Layer

EXECUTION = "int8 kernels (static, fused Linear+ReLU)"
# Quantized module class names -> the int8 operator they call.
_KERNELS = {
    "QuantizedLinear": "quantized::linear",
    "QuantizedLinearReLU": "quantized::linear_relu",
    "QuantizedConv1d": "quantized::conv1d",
    "QuantizedConvReLU1d": "quantized::conv1d_relu",
    "QuantizedConv2d": "quantized::conv2d",
    "QuantizedConvReLU2d": "quantized::conv2d_relu",
}


@dataclass(frozen=True)
class Params:
    calibration_samples: int = 2048  # training rows the observers see
    observer: str = "histogram"  # activation observer: minmax | moving_average | histogram
    per_channel: bool = True  # one weight scale per output row (else one per layer)
    engine: str = "auto"  # int8 engine (quantization.engine of the config)

    def __post_init__(self) -> None:
        n = self.calibration_samples
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"calibration_samples must be an integer >= 1, got {n!r}")
        qconfigs.check_observer(self.observer)
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be true or false, got {self.per_channel!r}")
        backend.check_engine_name(self.engine)


def execution(converted: nn.Module) -> str:
    """What ran: fused int8 kernels, and which layer types got them."""
    names = {m._get_name() for m in converted.modules()}
    fused = sorted(
        label
        for label, cls in (
            ("Linear+ReLU", "QuantizedLinearReLU"),
            ("Conv1d+ReLU", "QuantizedConvReLU1d"),
        )
        if cls in names
    )
    return f"int8 kernels (static, fused {', '.join(fused)})" if fused else "int8 kernels (static)"


def decide(converted: nn.Module, kept_fp32: set[str]):
    """Coverage verdicts for a converted FX graph: find each FP32 layer in it by name."""

    def verdict(layer: Layer, fp32_module: nn.Module) -> Decision:
        try:
            q = converted.get_submodule(layer.name)
        except AttributeError:  # fused away: batch norm folded into the convolution before it
            return Decision(True, "folded into the preceding layer's int8 weights", True)
        if backend.is_quantized_module(q, dynamic=False):
            name = q._get_name()
            if name in _KERNELS:
                return Decision(True, f"int8 weights and activations, {_KERNELS[name]}", True)
            return Decision(False, f"runs on int8 activations ({name}); its parameters stay FP32")
        if layer.name in kept_fp32:
            return Decision(False, fx.FP32_ELEMENTWISE)
        if layer.order < 0:
            return Decision(False, "never runs in the forward pass")
        return Decision(False, f"{layer.type}: the static int8 backend has no kernel for it")

    return verdict


def static_coverage(fp32_model: nn.Module, converted: nn.Module, n_features: int) -> dict:
    kept = set(fx.fp32_modules(fp32_model))
    return coverage.report(fp32_model, coverage.probe(n_features), decide(converted, kept))


def quantize(fp32_model: nn.Module, calib: CalibrationData, params: Params) -> QuantizedModel:
    """Calibrate on training rows, then convert to int8 kernels."""
    t0 = time.perf_counter()
    engine = backend.use_engine(params.engine)
    qconfig = qconfigs.static_qconfig(engine, params.observer, params.per_channel)
    n_features = int(calib.x_train.shape[1])
    prepared = fx.prepare_static(fp32_model.cpu().eval(), qconfig, n_features)
    rows = calib.calibration_rows(params.calibration_samples).cpu()
    fx.observe(prepared, rows)
    module = fx.convert(prepared)
    info: dict[str, Any] = {
        "bits": 8,
        "engine": engine,
        "execution": execution(module),
        "calibration_rows": int(rows.shape[0]),
        "calibration_split": "train",
        "observer": params.observer,
        "weight_qscheme": backend.weight_qscheme(params.per_channel),
        "activation_range": list(backend.activation_range(engine)),
        "coverage": static_coverage(fp32_model, module, n_features),
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module, state=module.state_dict(), info=info)


def rebuild(spec: ModelSpec, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable int8 module from checkpoint ``state`` (same trace/prepare/convert, no data)."""
    engine = backend.use_engine(params.engine)
    qconfig = qconfigs.static_qconfig(engine, params.observer, params.per_channel)
    module = fx.convert(fx.prepare_static(spec.build().eval(), qconfig, spec.n_features))
    return fx.load_state(module, state)
