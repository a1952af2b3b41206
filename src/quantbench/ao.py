"""The one door to ``torch.ao.quantization``: engines, qconfigs, fuse/prepare/convert.

The int8 kinds (``ptq_dynamic``, ``ptq_static``, ``qat``) run on the eager-mode int8 CPU kernels
of ``torch.ao.quantization`` (``quantized::linear``, ``quantized::linear_relu``,
``quantized::linear_dynamic``). Upstream deprecated that API; no other module of quantbench
imports it, so when it disappears this is the only file that changes. Importing this module never
imports ``torch.ao``: ``available()`` says whether it exists, and every other function raises a
``RuntimeError`` naming the torch version and the fix when it does not.

Every call into ``torch.ao`` runs inside ``quiet()``, which swallows the warnings that API is
known to emit (its deprecation notice, the quantized-tensor and TypedStorage deprecations, the
"observer saw no data" notice while rebuilding) and logs one line the first time a deprecation
shows up. Unknown warnings pass through unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import importlib.util
import logging
import platform
import re
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch
from torch import nn

from quantbench.model import MLP

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
                "(README: int8 kinds and torch versions)",
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


def quantize_dynamic(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """Every Linear to int8 dynamic (``quantized::linear_dynamic``); ``model`` is not modified."""
    tq = _tq()
    qconfig = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
    with quiet():
        return tq.quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear: qconfig})


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
def per_channel_dynamic_supported(engine: str) -> bool:
    """Whether ``engine`` (the one in use) runs dynamic Linear with per-channel int8 weights."""
    probe = nn.Sequential(nn.Linear(4, 2))
    try:
        with quiet():
            quantize_dynamic(probe, per_channel=True)(torch.ones(1, 4))
    except (RuntimeError, AssertionError, NotImplementedError):
        return False
    return True


def prepare_static(model: MLP, qconfig: Any) -> nn.Module:
    """Copy, fuse Linear+ReLU, wrap in quant/dequant stubs and attach observers (eval mode)."""
    tq = _tq()
    fused = copy.deepcopy(model).eval()
    with quiet():
        tq.fuse_modules(fused, model.fusion_groups(), inplace=True)
        wrapped = tq.QuantWrapper(fused)
        wrapped.qconfig = qconfig
        return tq.prepare(wrapped.eval(), inplace=False)


def prepare_qat(model: MLP, qconfig: Any) -> nn.Module:
    """Copy, fuse Linear+ReLU, wrap in stubs and swap in fake-quantized modules (train mode).

    The fake-quantized layers keep the weights of ``model``: fine-tuning starts from them.
    """
    tq = _tq()
    fused = copy.deepcopy(model).train()
    fuse = getattr(tq, "fuse_modules_qat", tq.fuse_modules)
    with quiet():
        fuse(fused, model.fusion_groups(), inplace=True)
        wrapped = tq.QuantWrapper(fused)
        wrapped.qconfig = qconfig
        return tq.prepare_qat(wrapped.train(), inplace=False)


@torch.no_grad()
def observe(prepared: nn.Module, rows: torch.Tensor, batch_size: int = 1024) -> None:
    """Run ``rows`` through a prepared module in eval mode so its observers record them."""
    prepared.eval()
    with quiet():
        for start in range(0, rows.shape[0], batch_size):
            prepared(rows[start : start + batch_size])


def convert(prepared: nn.Module) -> nn.Module:
    """Observed or fake-quantized module -> int8 module (CPU, eval); ``prepared`` is kept."""
    tq = _tq()
    with quiet():
        return tq.convert(copy.deepcopy(prepared).cpu().eval(), inplace=False)


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

    Covers fused QAT conv-bn modules and plain BatchNorm layers; the MLP has neither, so for it
    this changes nothing, but a model that adds batch norm gets the configured schedule.
    """
    freeze = getattr(_nniqat(), "freeze_bn_stats", None)
    if freeze is not None:
        module.apply(freeze)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
