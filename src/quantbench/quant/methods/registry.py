"""Registry of quantization kinds.

A kind is one module exposing:

- ``Params``: a frozen dataclass of the variant's parameters, validated in ``__post_init__``;
- ``quantize(fp32_model, calib, params) -> QuantizedModel``: any ``nn.Module`` mapping
  ``(batch, n_features)`` rows to logits; its ``info`` carries a ``coverage`` record
  (:mod:`quantbench.quant.coverage`) naming every layer it quantized and every one it left FP32, and
  why;
- ``rebuild(spec, state, params) -> nn.Module``: the runnable module from checkpoint state and
  the model's :class:`quantbench.models.ModelSpec`.

Adding a kind is one module plus one line in ``_KINDS``.
"""

from __future__ import annotations

import importlib
from dataclasses import fields
from types import ModuleType
from typing import Any

from quantbench.quant.base import CalibrationData, QuantizedModel

__all__ = ["KINDS", "CalibrationData", "QuantizedModel", "get_kind", "make_params"]

# kind name -> module path (imported lazily: torch.ao is only loaded by the kinds that use it)
_KINDS: dict[str, str] = {
    "ptq_dynamic": "quantbench.quant.methods.ptq_dynamic",
    "ptq_static": "quantbench.quant.methods.ptq_static",
    "qat": "quantbench.quant.methods.qat",
    "rtn": "quantbench.quant.methods.rtn",
    "gptq": "quantbench.quant.methods.gptq",
}
KINDS: tuple[str, ...] = tuple(_KINDS)


def get_kind(kind: str) -> ModuleType:
    """The module implementing ``kind``; a ValueError lists the known kinds otherwise."""
    if kind not in _KINDS:
        raise ValueError(f"unknown method kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return importlib.import_module(_KINDS[kind])


def make_params(kind: str, params: dict[str, Any]) -> Any:
    """Build the kind's ``Params`` from a config mapping (the ``kind`` key itself is ignored)."""
    cls = get_kind(kind).Params
    known = {f.name for f in fields(cls)}
    extra = sorted(set(params) - known - {"kind"})
    if extra:
        raise ValueError(
            f"kind {kind!r} does not take {', '.join(extra)}; it takes {', '.join(sorted(known))}"
        )
    return cls(**{k: v for k, v in params.items() if k != "kind"})
