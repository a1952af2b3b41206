"""Post-training static quantization: fixed int8 ranges for weights and activations.

Linear+ReLU pairs are fused, the MLP is wrapped between a quantize and a dequantize stub, and
observers record activation ranges on ``calibration_samples`` training rows (never validation or
test rows). Conversion yields a model whose hidden layers run ``quantized::linear_relu`` and
whose head runs ``quantized::linear``, int8 from the input stub to the output stub.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from torch import nn

from quantbench import ao
from quantbench.methods.base import CalibrationData, QuantizedModel
from quantbench.model import MLP, ModelConfig

EXECUTION = "int8 kernels (static, fused Linear+ReLU)"


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
        ao.check_observer(self.observer)
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be true or false, got {self.per_channel!r}")
        ao.check_engine_name(self.engine)


def quantize(fp32_model: MLP, calib: CalibrationData, params: Params) -> QuantizedModel:
    """Calibrate on training rows, then convert to int8 kernels."""
    t0 = time.perf_counter()
    engine = ao.use_engine(params.engine)
    qconfig = ao.static_qconfig(engine, params.observer, params.per_channel)
    prepared = ao.prepare_static(fp32_model.cpu().eval(), qconfig)
    rows = calib.calibration_rows(params.calibration_samples).cpu()
    ao.observe(prepared, rows)
    module = ao.convert(prepared)
    info: dict[str, Any] = {
        "bits": 8,
        "engine": engine,
        "execution": EXECUTION,
        "calibration_rows": int(rows.shape[0]),
        "calibration_split": "train",
        "observer": params.observer,
        "weight_qscheme": ao.weight_qscheme(params.per_channel),
        "activation_range": list(ao.activation_range(engine)),
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module, state=module.state_dict(), info=info)


def rebuild(model_cfg: ModelConfig, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable int8 module from checkpoint ``state`` (same fuse/prepare/convert, no data)."""
    engine = ao.use_engine(params.engine)
    qconfig = ao.static_qconfig(engine, params.observer, params.per_channel)
    module = ao.convert(ao.prepare_static(MLP(model_cfg).eval(), qconfig))
    return ao.load_state(module, state)
