"""Memory at run time: the bytes a model's weights occupy once loaded, and the process's RSS.

``resident_weight_bytes(module)`` counts what the module holds to run, once each:

- every parameter and buffer (persistent or not) at the size of the storage it lives in, each
  storage once (tied or shared tensors are not counted twice);
- int8 packed parameters (the opaque objects behind ``quantized::linear``,
  ``quantized::linear_dynamic`` and quantized convolutions) unpacked with ``_weight_bias()``:
  the int8 weight at 1 byte per element (2 for float16 packed weights), its quantization
  parameters as torch returns them (per channel: float64 scales and int64 zero points, 16 bytes
  per output channel; per tensor: 16 bytes), and the bias at its dtype. The engine's packed copy
  may add padding and row offsets that torch does not expose; those are not counted;
- quantized tensors held as buffers: their integer representation plus their parameters as
  above;
- int4 kernel layers (:class:`quantbench.quant.weightonly.int4.Int4Linear`): their buffers, i.e.
  the packed 4-bit weight, the bfloat16 scales and offsets, the float32 bias and the input
  reordering index (int64) where act-order needs one.

Not counted: Python numbers kept as attributes (the output scale and zero point of a quantized
layer), activations, and the framework's own memory. A packed object that offers no
``_weight_bias()`` stops the count with a ValueError naming it, rather than being left out.

RSS: :func:`peak_rss_bytes` is the process's high-water mark (``VmHWM`` on Linux, else
``resource.getrusage``), since the start or since the last :func:`reset_peak_rss` (Linux only),
so a timing job can report the peak over its timed section alone.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

_QPARAM_BYTES_PER_TENSOR = 16  # one float64 scale and one int64 zero point
_PER_CHANNEL = (
    torch.per_channel_affine,
    torch.per_channel_symmetric,
    torch.per_channel_affine_float_qparams,
)


def quantized_tensor_bytes(t: torch.Tensor) -> int:
    """Integer representation plus quantization parameters of a quantized tensor."""
    n = t.numel() * t.element_size()
    if t.qscheme() in _PER_CHANNEL:
        scales, zero_points = t.q_per_channel_scales(), t.q_per_channel_zero_points()
        return (
            n
            + scales.numel() * scales.element_size()
            + (zero_points.numel() * zero_points.element_size())
        )
    return n + _QPARAM_BYTES_PER_TENSOR


def _is_packed(obj: Any) -> bool:
    return isinstance(obj, torch._C.ScriptObject)


def _packed_bytes(name: str, module: nn.Module) -> int:
    """Bytes of a module's int8 packed parameters, unpacked (see the module docstring)."""
    unpack = getattr(module, "_weight_bias", None)
    if unpack is None:
        raise ValueError(
            f"{name or 'model'} ({type(module).__name__}) holds packed parameters without "
            "_weight_bias(); resident_weight_bytes cannot count them"
        )
    weight, bias = unpack()
    if weight.is_quantized:
        n = quantized_tensor_bytes(weight)
    else:  # float16 packed weights unpack to float32
        packed_dtype = getattr(module, "dtype", weight.dtype)
        n = weight.numel() * torch.empty((), dtype=packed_dtype).element_size()
    return n + (0 if bias is None else bias.numel() * bias.element_size())


def _tensor_key_bytes(t: torch.Tensor) -> tuple[Any, int]:
    """(identity of the memory, its bytes): the whole storage for plain tensors."""
    if t.is_quantized:
        return ("q", id(t)), quantized_tensor_bytes(t)
    storage = t.untyped_storage()
    return ("s", storage.data_ptr(), t.device), storage.nbytes()


def resident_weight_bytes(module: nn.Module) -> int:
    """Bytes the weights of ``module`` occupy once loaded and ready to run (documented above)."""
    seen: dict[Any, int] = {}
    tensors = [t for _, t in module.named_parameters(remove_duplicate=True)]
    tensors += [t for _, t in module.named_buffers(remove_duplicate=True) if t is not None]
    for t in tensors:
        key, n = _tensor_key_bytes(t)
        seen.setdefault(key, n)
    for name, m in module.named_modules():
        packed = getattr(m, "_packed_params", None)
        if _is_packed(packed):
            seen.setdefault(("p", id(packed)), _packed_bytes(name, m))
    return sum(seen.values())


def peak_rss_bytes() -> int | None:
    """The process's peak resident set size in bytes; None where the OS does not say.

    Linux: ``VmHWM`` of ``/proc/self/status``, which is never below the current RSS
    (``getrusage`` updates its figure lazily and can lag the current RSS by a few pages).
    Elsewhere: ``resource.getrusage`` (bytes on macOS, KiB on the BSDs).
    """
    hwm = _status_kib("VmHWM:")
    if hwm is not None:
        return hwm * 1024
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def reset_peak_rss() -> bool:
    """Restart the peak RSS count from the current RSS (Linux ``clear_refs``); True if done."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kib(key: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (Linux), else None."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return None


def current_rss_bytes() -> int | None:
    """The process's resident set size now (Linux ``/proc/self/status``), else None."""
    rss = _status_kib("VmRSS:")
    return None if rss is None else rss * 1024
