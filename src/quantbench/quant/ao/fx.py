"""FX graph mode (``ptq_static``, ``qat`` and the engine probe): trace, fuse, place observers or
fake quantizers, convert to int8.

``prepare_fx``/``prepare_qat_fx``/``convert_fx`` trace the model and find fusion patterns
(Conv/Linear + ReLU) and observer places from its graph, so any traceable model works. PT2E
export, the other graph mode, is not shipped by torch 2.13 (it lives in torchao) and lowers to
int8 kernels only through ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.util
import operator
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch
from torch import nn

from quantbench.quant.ao.backend import quiet, torch_ao

# Layer types FX graph mode knows how to quantize or to leave FP32 on its own.
_FX_LAYER_TYPES: tuple[type, ...] = (
    nn.Linear,
    nn.modules.conv._ConvNd,
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.Embedding,
    nn.EmbeddingBag,
    nn.RNNBase,
    nn.MultiheadAttention,
)
FP32_ELEMENTWISE = (
    "a module using its own parameters element-wise (as an embedding does): kept FP32, since "
    "static quantization would round those parameters like activations"
)
STATIC_KINDS_NOTE = "ptq_dynamic, rtn and gptq need no graph and still work for it"
# Products of two activations and softmax stay FP32 in the static kinds: torch's
# quantized::matmul dequantizes and multiplies in float on builds without ruy (every x86 build),
# so quantizing around it would only add rounding and conversions.
_FP32_OPS: tuple[Any, ...] = (
    torch.matmul,
    torch.bmm,
    operator.matmul,
    "matmul",
    "bmm",
    torch.softmax,
    nn.functional.softmax,
    nn.Softmax,
    "softmax",
)


class UntraceableModel(ValueError):
    """FX graph mode cannot trace the model: the static kinds cannot quantize it."""


def fp32_modules(model: nn.Module) -> list[str]:
    """Modules FX mode keeps FP32: leaf modules owning parameters that are no known layer type.

    Their parameters take part in element-wise arithmetic (a feature tokenizer, a learned class
    token); FX would otherwise quantize them with activation observers, per tensor.
    """
    names = []
    for name, m in model.named_modules():
        owns = any(p is not None for p in m._parameters.values())
        leaf = not any(True for _ in m.children())
        if name and owns and leaf and not isinstance(m, _FX_LAYER_TYPES):
            names.append(name)
    return names


def _qconfig_mapping(model: nn.Module, qconfig: Any, qat: bool, engine: str) -> Any:
    """The backend's default mapping (fixed-range ops, reshape...) with our global qconfig."""
    from torch.ao.quantization import qconfig_mapping as qm

    default = qm.get_default_qat_qconfig_mapping if qat else qm.get_default_qconfig_mapping
    mapping = default(engine).set_global(qconfig)
    for op in _FP32_OPS:
        mapping.set_object_type(op, None)
    for name in fp32_modules(model):
        mapping.set_module_name(name, None)
    return mapping


@contextlib.contextmanager
def _no_stack_traces() -> Iterator[None]:
    """Trace without recording a Python stack trace per graph node.

    The traces are debugging metadata only, and recording the first one imports torch's
    compiler stack (about 1.5 s per process), which every int8 job would otherwise pay.
    """
    config = getattr(torch.fx, "config", None)
    if config is None or not hasattr(config, "do_not_emit_stack_traces"):
        yield
        return
    before = config.do_not_emit_stack_traces
    config.do_not_emit_stack_traces = True
    try:
        yield
    finally:
        config.do_not_emit_stack_traces = before


def _prepare_fx(model: nn.Module, qconfig: Any, n_features: int, qat: bool) -> nn.Module:
    from torch.ao.quantization import quantize_fx

    engine = str(torch.backends.quantized.engine)
    mapping = _qconfig_mapping(model, qconfig, qat, engine)
    prepare = quantize_fx.prepare_qat_fx if qat else quantize_fx.prepare_fx
    example = (torch.zeros(2, n_features),)
    try:
        with quiet(), _no_stack_traces():
            return prepare(model, mapping, example)
    except Exception as exc:  # any tracing failure: the model's forward is not a static graph
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "qat" if qat else "ptq_static"
        raise UntraceableModel(
            f"{kind} needs a model torch.fx can trace, and this one cannot be traced "
            f"({type(exc).__name__}: {first}); {STATIC_KINDS_NOTE}"
        ) from None


def prepare_static(model: nn.Module, qconfig: Any, n_features: int) -> nn.Module:
    """Copy, trace (FX graph mode), fuse Conv/Linear+ReLU and place observers; eval mode.

    Fusion patterns and observer places are found from the traced graph, not from names.
    """
    torch_ao()
    return _prepare_fx(copy.deepcopy(model).eval(), qconfig, n_features, qat=False)


def prepare_qat(model: nn.Module, qconfig: Any, n_features: int) -> nn.Module:
    """Copy, trace, fuse and swap in fake-quantized layers (train mode).

    The fake-quantized layers keep the weights of ``model``: fine-tuning starts from them.
    """
    torch_ao()
    return _prepare_fx(copy.deepcopy(model).train(), qconfig, n_features, qat=True)


@torch.no_grad()
def observe(prepared: nn.Module, rows: torch.Tensor, batch_size: int = 1024) -> None:
    """Run ``rows`` through a prepared module in eval mode so its observers record them."""
    prepared.eval()
    with quiet():
        for start in range(0, rows.shape[0], batch_size):
            prepared(rows[start : start + batch_size])


def convert(prepared: nn.Module) -> nn.Module:
    """Observed or fake-quantized graph -> int8 graph module (CPU, eval); ``prepared`` is kept."""
    torch_ao()
    from torch.ao.quantization import quantize_fx

    with quiet(), _no_stack_traces():
        return quantize_fx.convert_fx(copy.deepcopy(prepared).cpu().eval())


def load_state(module: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Load a converted module's ``state_dict`` (packed for the current engine); eval mode."""
    with quiet():
        module.load_state_dict(state)
    return module.eval()


def set_observers(module: nn.Module, enabled: bool) -> None:
    """Let fake quantizers keep updating their ranges (``True``) or freeze them (``False``)."""
    tq = torch_ao()
    module.apply(tq.enable_observer if enabled else tq.disable_observer)


def freeze_batch_stats(module: nn.Module) -> None:
    """Stop batch-norm statistics from updating (call after every ``train()``).

    Covers fused QAT conv-bn modules and plain BatchNorm layers; a model without batch norm is
    unchanged.
    """
    freeze = getattr(_nniqat(), "freeze_bn_stats", None)
    if freeze is not None:
        module.apply(freeze)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _nniqat() -> ModuleType:
    """The QAT fused modules (home of ``freeze_bn_stats``)."""
    with quiet():
        return importlib.import_module("torch.ao.nn.intrinsic.qat")
