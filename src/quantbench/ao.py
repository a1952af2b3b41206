"""The one door to ``torch.ao.quantization``: engines, qconfigs, fuse/prepare/convert.

The int8 kinds (``ptq_dynamic``, ``ptq_static``, ``qat``) run on the int8 CPU kernels of
``torch.ao.quantization`` (``quantized::linear``, ``quantized::linear_relu``,
``quantized::conv1d_relu``, ``quantized::linear_dynamic``, ...). ``ptq_dynamic`` swaps modules
eagerly (``quantize_dynamic``: Linear, GRU, LSTM); ``ptq_static`` and ``qat`` use FX graph mode
(``prepare_fx``/``prepare_qat_fx``/``convert_fx``), which traces the model and finds fusion
patterns (Conv/Linear + ReLU) and observer places from its graph, so any traceable model works.
PT2E export, the other graph mode, is not shipped by torch 2.13 (it lives in torchao) and lowers
to int8 kernels only through ``torch.compile``. Upstream deprecated ``torch.ao.quantization``; no
other module of quantbench imports it, so when it disappears this is the only file that
changes. Importing this module never
imports ``torch.ao``: ``available()`` says whether it exists, and every other function raises a
``RuntimeError`` naming the torch version and the fix when it does not.

Every call into ``torch.ao`` runs inside ``quiet()``, which swallows the warnings that API is
known to emit (its deprecation notice, the quantized-tensor and TypedStorage deprecations, the
"observer saw no data" notice while rebuilding) and logs one line the first time a deprecation
shows up. Unknown warnings pass through unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import importlib
import importlib.util
import logging
import operator
import platform
import re
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import torch
from torch import nn

log = logging.getLogger("quantbench")

ENGINES: tuple[str, ...] = ("x86", "fbgemm", "qnnpack", "onednn")
ENGINE_CHOICES: tuple[str, ...] = ("auto", *ENGINES)
OBSERVERS: tuple[str, ...] = ("minmax", "moving_average", "histogram")
INT8_KINDS: tuple[str, ...] = ("ptq_dynamic", "ptq_static", "qat")

_ARM = ("arm64", "aarch64")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")
# x86/fbgemm kernels multiply u8 activations by s8 weights into int16 pairs; upstream keeps
# activations to 7 bits there (reduce_range) so CPUs without VNNI cannot saturate.
_REDUCED_RANGE_ENGINES = ("x86", "fbgemm")

# (pattern, is an upstream deprecation notice): warnings of torch.ao that quiet() swallows.
_KNOWN_WARNINGS: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"torch\.ao\.quantization is deprecated"), True),
    (re.compile(r"quantized tensor creation functions .* deprecated", re.S), True),
    (re.compile(r"TypedStorage is deprecated"), False),  # older than the torch.ao deprecation
    (re.compile(r"reduce_range will be deprecated"), False),
    (re.compile(r"must run observer before calling calculate_qparams"), False),
    (re.compile(r"qnnpack incorrectly ignores reduce_range"), False),
    # torch's generic caution on its dynamic Conv1d; the workflow measures the accuracy it gets
    (re.compile(r"DynamicQuantizedConv1d module has poor numerical accuracy"), False),
)
_announced = False


def available() -> bool:
    """Whether this torch still ships ``torch.ao.quantization`` (the int8 kinds need it)."""
    try:
        return importlib.util.find_spec("torch.ao.quantization") is not None
    except (ImportError, ValueError):
        return False


def _missing_message() -> str:
    return (
        f"the int8 kinds ({', '.join(INT8_KINDS)}) need torch.ao.quantization, which torch "
        f"{torch.__version__} does not ship; install torch>=2.2,<2.16 or remove the methods of "
        "those kinds from config.yaml (the rtn and gptq kinds do not need it)"
    )


@functools.cache
def _tq() -> ModuleType:
    """``torch.ao.quantization``, imported on first use."""
    if not available():
        raise RuntimeError(_missing_message())
    try:
        with quiet():
            return importlib.import_module("torch.ao.quantization")
    except ImportError as exc:
        raise RuntimeError(f"{_missing_message()} ({exc})") from None


def _nniqat() -> ModuleType:
    """The QAT fused modules (home of ``freeze_bn_stats``)."""
    with quiet():
        return importlib.import_module("torch.ao.nn.intrinsic.qat")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow torch.ao's known warnings in this block; log one line for its deprecation.

    Also usable around ``torch.load`` of a checkpoint holding quantized tensors (TypedStorage).
    """
    global _announced
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message)
        known = [dep for pattern, dep in _KNOWN_WARNINGS if pattern.search(text)]
        if not known:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        elif known[0] and not _announced:
            _announced = True
            log.warning(
                "torch.ao.quantization is deprecated upstream in torch %s; quantbench keeps "
                "using it for real int8 CPU kernels while it exists "
                "(docs/methods.md: int8 kinds and torch versions)",
                torch.__version__,
            )


def supported_engines() -> list[str]:
    """The int8 engines this torch build offers, among ``ENGINES``."""
    return [e for e in torch.backends.quantized.supported_engines if e in ENGINES]


def select_engine(requested: str = "auto") -> str:
    """The int8 engine: ``auto`` is x86 (else fbgemm) on x86-64 and qnnpack on ARM.

    An explicit name must be one this torch build supports; a ValueError lists them otherwise.
    """
    supported = supported_engines()
    if requested != "auto":
        if requested not in supported:
            raise ValueError(
                f"quantization engine {requested!r} is not supported by this torch build; "
                f"choose auto or one of {', '.join(supported) or '(none)'}"
            )
        return requested
    machine = platform.machine().lower()
    if machine in _ARM or machine.startswith("arm"):
        preferred: tuple[str, ...] = ("qnnpack",)
    elif machine in _X86:
        preferred = ("x86", "fbgemm")
    else:
        preferred = ("qnnpack", "x86", "fbgemm")
    for engine in preferred:
        if engine in supported:
            return engine
    raise ValueError(
        f"no int8 engine for machine {machine!r}: this torch build supports "
        f"{', '.join(supported) or 'none'}; set quantization.engine to one of them"
    )


def use_engine(name: str = "auto") -> str:
    """Set the process-wide int8 engine (resolving ``auto``); return the engine now in use."""
    engine = select_engine(name)
    torch.backends.quantized.engine = engine
    return engine


def activation_range(engine: str) -> tuple[int, int]:
    """quint8 range of activations on ``engine``: 7 bits on x86/fbgemm, 8 bits elsewhere."""
    return (0, 127) if engine in _REDUCED_RANGE_ENGINES else (0, 255)


def check_engine_name(engine: str) -> None:
    """ValueError unless ``engine`` is ``auto`` or a known engine name (support is checked later,
    on the machine that runs the model, by ``select_engine``)."""
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, got {engine!r}")


def check_observer(observer: str) -> None:
    """ValueError unless ``observer`` names an activation observer of ``OBSERVERS``."""
    if observer not in OBSERVERS:
        raise ValueError(f"observer must be one of {', '.join(OBSERVERS)}, got {observer!r}")


def weight_qscheme(per_channel: bool) -> str:
    """How weights are quantized: symmetric qint8 per output row or per layer."""
    return "per_channel_symmetric" if per_channel else "per_tensor_symmetric"


def _observer_class(observer: str) -> type:
    check_observer(observer)
    names = {
        "minmax": "MinMaxObserver",
        "moving_average": "MovingAverageMinMaxObserver",
        "histogram": "HistogramObserver",
    }
    return getattr(_tq(), names[observer])


def _weight_observer(per_channel: bool) -> tuple[type, dict[str, Any]]:
    """Symmetric qint8 weights, one scale per output row when ``per_channel``."""
    tq = _tq()
    if per_channel:
        kwargs = {"dtype": torch.qint8, "qscheme": torch.per_channel_symmetric, "ch_axis": 0}
        return tq.PerChannelMinMaxObserver, kwargs
    return tq.MinMaxObserver, {"dtype": torch.qint8, "qscheme": torch.per_tensor_symmetric}


def static_qconfig(engine: str, observer: str, per_channel: bool) -> Any:
    """QConfig for post-training static quantization: activation observer + weight observer."""
    tq = _tq()
    lo, hi = activation_range(engine)
    activation = _observer_class(observer).with_args(
        dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=lo, quant_max=hi
    )
    weight_cls, weight_kwargs = _weight_observer(per_channel)
    return tq.QConfig(activation=activation, weight=weight_cls.with_args(**weight_kwargs))


def qat_qconfig(engine: str, observer: str, per_channel: bool) -> Any:
    """QConfig for QAT: fake quantizers driven by the same observers as ``static_qconfig``."""
    tq = _tq()
    lo, hi = activation_range(engine)
    activation = tq.FakeQuantize.with_args(
        observer=_observer_class(observer),
        quant_min=lo,
        quant_max=hi,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
    )
    weight_cls, weight_kwargs = _weight_observer(per_channel)
    weight = tq.FakeQuantize.with_args(
        observer=weight_cls, quant_min=-128, quant_max=127, **weight_kwargs
    )
    return tq.QConfig(activation=activation, weight=weight)


# Recurrent layer types torch quantizes dynamically (their weights are per tensor).
_DYNAMIC_RNN = (nn.GRU, nn.LSTM)


def quantize_dynamic(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """Every Linear, Conv1d, GRU and LSTM to int8 dynamic kernels (``quantized::
    linear_dynamic``, ``quantized::conv1d_dynamic``, ``aten::quantized_gru``/``_lstm``);
    ``model`` is not modified. torch's default dynamic mapping leaves convolutions out; its
    dynamic ``Conv1d`` module is added here."""
    tq = _tq()
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
    )

    weights = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
    spec: dict[type, Any] = {nn.Linear: weights, nn.Conv1d: weights}
    spec |= dict.fromkeys(_DYNAMIC_RNN, tq.default_dynamic_qconfig)
    mapping = {**get_default_dynamic_quant_module_mappings(), nn.Conv1d: nnqd.Conv1d}
    with quiet():
        return tq.quantize_dynamic(copy.deepcopy(model).eval(), spec, mapping=mapping)


def is_quantized_module(module: nn.Module, dynamic: bool | None = None) -> bool:
    """Whether ``module`` is one of torch.ao's quantized modules (``dynamic``: of that family)."""
    where = type(module).__module__
    if not where.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")):
        return False
    is_dynamic = ".dynamic" in where
    return dynamic is None or dynamic == is_dynamic


RNN_STATE = "quantized_rnn_weights"  # state key of a dynamic GRU/LSTM's int8 weights


def _rnn_key(name: str) -> str:
    return f"{name}.{RNN_STATE}" if name else RNN_STATE


def _dynamic_rnns(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in module.named_modules()
        if is_quantized_module(m, dynamic=True) and hasattr(m, "_all_weight_values")
    ]


def without_keys(state: dict[str, Any], drop: Callable[[str], bool]) -> dict[str, Any]:
    """A copy of a ``state_dict`` without the keys ``drop`` selects, its ``_metadata`` kept
    (module versions: quantized layers read their state by it)."""
    out = collections.OrderedDict((k, v) for k, v in state.items() if not drop(k))
    out._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    return out


def dynamic_state(module: nn.Module) -> dict[str, Any]:
    """``state_dict`` of a dynamic int8 module, loadable with ``weights_only=True``.

    torch packs dynamic GRU/LSTM weights into script objects the weights-only unpickler refuses;
    their int8 weights and float biases are stored as plain tensors under
    ``<name>.quantized_rnn_weights`` instead.
    """
    state = module.state_dict()
    for name, m in _dynamic_rnns(module):
        prefix = f"{name}._all_weight_values." if name else "_all_weight_values."
        state = without_keys(state, lambda k, prefix=prefix: k.startswith(prefix))
        state[_rnn_key(name)] = {**m.get_weight(), **m.get_bias()}
    return state


def load_dynamic_state(module: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Inverse of :func:`dynamic_state` on a freshly quantized module of the same model."""
    rnns = dict(_dynamic_rnns(module))
    keys = {_rnn_key(name) for name in rnns}
    rest = without_keys(state, lambda k: k in keys)
    own = module.state_dict()  # the fresh module's packed RNN weights: placeholders, replaced
    for name in rnns:
        prefix = f"{name}._all_weight_values." if name else "_all_weight_values."
        rest |= {k: v for k, v in own.items() if k.startswith(prefix)}
    with quiet():
        module.load_state_dict(rest)
        for name, m in rnns.items():
            m.set_weight_bias(state[_rnn_key(name)])
    return module.eval()


def per_channel_dynamic_linear(
    weight: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor, bias: torch.Tensor
) -> tuple[nn.Module, torch.Tensor]:
    """A dynamic int8 Linear (``quantized::linear_dynamic``) from a float weight already on a
    per-output-channel int8 grid; returns the module and the int8 codes it holds.

    weight: (out, in) float; scales: (out,) float64; zero_points: (out,) int64 in [-128, 127].
    """
    _tq()  # a clear error when torch.ao is gone
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    with quiet():
        qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        layer = DynamicLinear(weight.shape[1], weight.shape[0], bias_=True, dtype=torch.qint8)
        layer.set_weight_bias(qweight, bias.float())
    return layer, qweight.int_repr()


@functools.cache
def per_channel_dynamic_supported(engine: str, asymmetric: bool = False) -> bool:
    """Whether ``engine`` (the one in use) runs dynamic Linear with per-channel int8 weights;
    with ``asymmetric``, weights whose zero points are not all 0 (``onednn`` takes only
    symmetric weights)."""
    try:
        with quiet():
            if asymmetric:
                codes = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 2)
                zero_points = torch.tensor([0, 1])
                layer, _ = per_channel_dynamic_linear(
                    codes - zero_points[:, None], torch.ones(2).double(), zero_points,
                    torch.zeros(2),
                )  # fmt: skip
            else:
                layer = quantize_dynamic(nn.Sequential(nn.Linear(4, 2)), per_channel=True)
            layer(torch.ones(1, 4))
    except (RuntimeError, AssertionError, NotImplementedError):
        return False
    return True


# ---------------------------------------------------------------- FX graph mode (static, QAT)

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
    _tq()
    return _prepare_fx(copy.deepcopy(model).eval(), qconfig, n_features, qat=False)


def prepare_qat(model: nn.Module, qconfig: Any, n_features: int) -> nn.Module:
    """Copy, trace, fuse and swap in fake-quantized layers (train mode).

    The fake-quantized layers keep the weights of ``model``: fine-tuning starts from them.
    """
    _tq()
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
    _tq()
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
    tq = _tq()
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
