"""The one door to ``torch.ao.quantization``: its availability, its warnings, the int8 engines.

The int8 kinds (``ptq_dynamic``, ``ptq_static``, ``qat``) run on the int8 CPU kernels of
``torch.ao.quantization`` (``quantized::linear``, ``quantized::linear_relu``,
``quantized::conv1d_relu``, ``quantized::linear_dynamic``, ...). This package is the only place
of quantbench that imports it, so when upstream removes it (it is deprecated) only this package
changes: ``backend`` (here: whether torch.ao exists, its warnings, the engines), ``qconfigs``
(observers and QConfigs of the static kinds), ``dynamic`` (eager dynamic quantization, used by
``ptq_dynamic`` and the weight-only int8 path) and ``fx`` (FX graph mode prepare/convert, used by
``ptq_static``, ``qat`` and the engine probe). Each kind imports only the modules it runs, so an
edit to the FX code reruns the static kinds' jobs and not the dynamic or weight-only ones.

Importing these modules never imports ``torch.ao``: ``available()`` says whether it exists, and
every other function raises a ``RuntimeError`` naming the torch version and the fix when it does
not. Every call into ``torch.ao`` runs inside ``quiet()``, which swallows the warnings that API
is known to emit (its deprecation notice, the quantized-tensor and TypedStorage deprecations,
the "observer saw no data" notice while rebuilding) and logs one line the first time a
deprecation shows up. Unknown warnings pass through unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import importlib
import importlib.util
import logging
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
def torch_ao() -> ModuleType:
    """``torch.ao.quantization``, imported on first use."""
    if not available():
        raise RuntimeError(_missing_message())
    try:
        with quiet():
            return importlib.import_module("torch.ao.quantization")
    except ImportError as exc:
        raise RuntimeError(f"{_missing_message()} ({exc})") from None


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


def weight_qscheme(per_channel: bool) -> str:
    """How weights are quantized: symmetric qint8 per output row or per layer."""
    return "per_channel_symmetric" if per_channel else "per_tensor_symmetric"


def is_quantized_module(module: nn.Module, dynamic: bool | None = None) -> bool:
    """Whether ``module`` is one of torch.ao's quantized modules (``dynamic``: of that family)."""
    where = type(module).__module__
    if not where.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")):
        return False
    is_dynamic = ".dynamic" in where
    return dynamic is None or dynamic == is_dynamic


def without_keys(state: dict[str, Any], drop: Callable[[str], bool]) -> dict[str, Any]:
    """A copy of a ``state_dict`` without the keys ``drop`` selects, its ``_metadata`` kept
    (module versions: quantized layers read their state by it)."""
    out = collections.OrderedDict((k, v) for k, v in state.items() if not drop(k))
    out._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
    return out
