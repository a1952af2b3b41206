"""Machinery shared by the weight-only kinds (``rtn`` and ``gptq``).

- parameter checks both kinds share (bits, group size, symmetry) and :func:`check_fits`;
- :func:`quantize_layers`: visit the Linear layers input to output, quantize each one on the
  inputs it receives from the already-quantized layers before it, and measure its output error;
- the packed checkpoint state (:func:`pack_state`) and the runnable module built from it
  (:func:`build_module`), so ``quantize()`` and the checkpoint loader build the same module.

Output error of a layer with weight ``W`` (out, in), quantized weight ``Ŵ`` and inputs ``X``
(n, in)::

    error = ‖X Wᵀ − X Ŵᵀ‖²_F / n        (sum over rows and outputs, divided by the row count)

``X`` is what the layer receives in the weight-only model: the rows passed through the layers
before it with *their quantized weights*, in float32 (so for GPTQ, the very inputs its Hessian
was built from). The bias cancels. It is reported on calibration rows (training rows only) and
on held-out rows (validation rows).

Packed state layout (``QuantizedModel.state``, stored in the checkpoint)::

    format "quantbench-weightonly"   version 1   bits int   group_size int
    layers {"layers.fc0": {"shape": [out, in],
                           "qweight": uint8 (bit-packed codes, row-major),
                           "scales":  float16 (out, groups),
                           "qzeros":  uint8 (bit-packed zero codes, (out, groups) row-major),
                           "bias":    float32 (out,),
                           "g_idx":   uint8 (bit-packed group of each input column, with
                                      ceil(log2(groups)) bits; int32 beyond 256 groups),
                                      only when act-order reordered the groups},
            ...}
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from quantbench.grid import (
    BITS,
    Grid,
    QuantizedWeight,
    check_group_size,
    contiguous_groups,
    group_count,
)
from quantbench.methods.base import QuantizedModel
from quantbench.model import MLP, ModelConfig
from quantbench.packing import pack, unpack

STATE_FORMAT = "quantbench-weightonly"
STATE_VERSION = 1
EXEC_INT8 = "int8 dynamic kernels (per-channel codes)"
EXEC_FP32 = "dequantized to fp32 at load (group-wise codes)"

# (layer name, W (out, in) float32, X (n, in) float32) -> the layer's weight on the grid
LayerQuantizer = Callable[[str, torch.Tensor, torch.Tensor], QuantizedWeight]
PackedLayers = dict[str, tuple[QuantizedWeight, torch.Tensor]]  # name -> (weight, bias)


# ---------------------------------------------------------------- parameter checks


def check_int(name: str, value: Any, allowed: str, ok: Callable[[int], bool]) -> None:
    """ValueError naming ``name``, the bad ``value`` and the ``allowed`` values."""
    if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_grid_params(bits: Any, group_size: Any, symmetric: Any) -> None:
    """The parameters every weight-only kind shares."""
    check_int("bits", bits, f"one of {list(BITS)}", lambda b: b in BITS)
    check_group_size(group_size)
    check_bool("symmetric", symmetric)


def check_fits(group_size: int, in_widths: list[int], names: list[str] | None = None) -> None:
    """Check that ``group_size`` can be used on layers of the given input widths.

    Rule: groups are consecutive runs of ``group_size`` input columns and the last group of a
    row may be shorter (ragged), so any positive group size fits any width; a layer narrower
    than ``group_size`` gets one group per row. Raises ValueError for a group size that is
    neither -1 nor positive, or for a width below 1, naming the layer.
    """
    check_group_size(group_size)
    names = names or [f"layer {i}" for i in range(len(in_widths))]
    for name, width in zip(names, in_widths, strict=True):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"{name}: input width must be a positive int, got {width!r}")


def linear_layers(model: MLP) -> list[tuple[str, nn.Linear]]:
    """``(qualified name, module)`` of every Linear layer, input to output."""
    return [
        (f"layers.{n}", m) for n, m in model.layers.named_children() if isinstance(m, nn.Linear)
    ]


def check_model_fits(model: MLP, group_size: int) -> None:
    """:func:`check_fits` on the model's own layers (names and input widths)."""
    layers = linear_layers(model)
    check_fits(group_size, [m.in_features for _, m in layers], [n for n, _ in layers])


# ---------------------------------------------------------------- layer-by-layer quantization


def output_error(X: torch.Tensor, W: torch.Tensor, W_hat: torch.Tensor) -> float:
    """``‖X Wᵀ − X Ŵᵀ‖²_F / n`` in float64; X (n, in), W and Ŵ (out, in)."""
    D = (W.double() - W_hat.double()).T  # (in, out)
    return float((X.double() @ D).pow(2).sum() / max(X.shape[0], 1))


@torch.no_grad()
def quantize_layers(
    fp32_model: MLP, x_calib: torch.Tensor, x_heldout: torch.Tensor, quantize_layer: LayerQuantizer
) -> tuple[PackedLayers, list[dict[str, Any]]]:
    """Quantize every Linear in order, each on the inputs the quantized layers before it give.

    Returns the layers (on CPU) and ``[{"layer", "calib", "heldout"}, ...]`` output errors.
    Runs on the device of ``x_calib``; ``fp32_model`` itself is left untouched.
    """
    model = copy.deepcopy(fp32_model).eval().to(x_calib.device)
    x_heldout = x_heldout.to(x_calib.device)
    layers: PackedLayers = {}
    errors: list[dict[str, Any]] = []
    for short, child in model.layers.named_children():
        if isinstance(child, nn.Linear):
            name = f"layers.{short}"
            W = child.weight.detach().clone()  # (out, in)
            qw = quantize_layer(name, W, x_calib)
            W_hat = qw.dequantize()  # (out, in)
            errors.append(
                {
                    "layer": name,
                    "calib": output_error(x_calib, W, W_hat),
                    "heldout": output_error(x_heldout, W, W_hat),
                }
            )
            child.weight.copy_(W_hat)
            layers[name] = (to_cpu(qw), child.bias.detach().float().cpu().clone())
        x_calib, x_heldout = child(x_calib), child(x_heldout)
    return layers, errors


def to_cpu(qw: QuantizedWeight) -> QuantizedWeight:
    return QuantizedWeight(
        codes=qw.codes.cpu(),
        scales=qw.scales.cpu(),
        zeros=qw.zeros.cpu(),
        g_idx=qw.g_idx.cpu(),
        grid=qw.grid,
        group_size=qw.group_size,
    )


# ---------------------------------------------------------------- packed state


def pack_layer(qw: QuantizedWeight, bias: torch.Tensor) -> dict[str, Any]:
    """One layer's checkpoint entry (see the module docstring)."""
    entry: dict[str, Any] = {
        "shape": [int(s) for s in qw.codes.shape],
        "qweight": pack(qw.codes, qw.grid.bits),
        "scales": qw.scales.to(torch.float16).contiguous(),
        "qzeros": pack(qw.zeros, qw.grid.bits),
        "bias": bias.float().contiguous(),
    }
    if not qw.groups_contiguous:
        entry["g_idx"] = pack_g_idx(qw.g_idx, qw.scales.shape[1])
    return entry


def g_idx_bits(groups: int) -> int:
    """Bits per packed group index: enough for ``groups - 1``, at least 1."""
    return max(1, (groups - 1).bit_length())


def pack_g_idx(g_idx: torch.Tensor, groups: int) -> torch.Tensor:
    """Group index (in,) bit-packed into uint8 (up to 256 groups), else int32."""
    bits = g_idx_bits(groups)
    return pack(g_idx, bits) if bits <= 8 else g_idx.to(torch.int32).contiguous()


def unpack_g_idx(stored: torch.Tensor, groups: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_g_idx`: the (in,) int64 group index."""
    if stored.dtype == torch.uint8:
        return unpack(stored, g_idx_bits(groups), (width,)).long()
    return stored.long()


def unpack_layer(entry: dict[str, Any], grid: Grid, group_size: int) -> QuantizedWeight:
    """The layer's weight on the grid from its checkpoint entry."""
    out, width = (int(s) for s in entry["shape"])
    groups = group_count(width, group_size)
    g_idx = entry.get("g_idx")
    return QuantizedWeight(
        codes=unpack(entry["qweight"], grid.bits, (out, width)),
        scales=entry["scales"].float().reshape(out, groups),
        zeros=unpack(entry["qzeros"], grid.bits, (out, groups)),
        g_idx=(
            contiguous_groups(width, group_size)
            if g_idx is None
            else unpack_g_idx(g_idx, groups, width)
        ),
        grid=grid,
        group_size=group_size,
    )


def pack_state(layers: PackedLayers, bits: int, group_size: int) -> dict[str, Any]:
    """The checkpoint ``state`` of a weight-only model (plain containers and tensors only)."""
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "bits": int(bits),
        "group_size": int(group_size),
        "layers": {name: pack_layer(qw, bias) for name, (qw, bias) in layers.items()},
    }


def execution(group_size: int) -> str:
    """How the packed codes run: int8 kernels when per-channel, else dequantized float32."""
    return EXEC_INT8 if group_size == -1 else EXEC_FP32


# ---------------------------------------------------------------- runnable module


def int8_dynamic_linear(qw: QuantizedWeight, bias: torch.Tensor) -> nn.Module:
    """A dynamic quantized Linear whose qint8 weight dequantizes exactly to ``qw``.

    Per-channel codes only (one group per row). The int8 value of code ``q`` is
    ``q - 2**(bits-1)`` and its zero point ``zero - 2**(bits-1)``, so
    ``scale * (int8 - zero_point) == scale * (q - zero)`` bit for bit.
    """
    from quantbench import ao

    if qw.scales.shape[1] != 1:
        raise ValueError("int8 kernels need per-channel codes (one group per row)")
    offset = 1 << (qw.grid.bits - 1)
    scales = qw.scales[:, 0].double()
    zero_points = qw.zeros[:, 0].long() - offset
    layer, int8 = ao.per_channel_dynamic_linear(qw.dequantize(), scales, zero_points, bias)
    if not torch.equal(int8.long(), qw.codes.long() - offset):
        raise RuntimeError("int8 weight does not reproduce the quantized codes exactly")
    return layer


def check_state(state: dict[str, Any], bits: int, group_size: int) -> None:
    """Refuse a state of another format, bit width or group size than the parameters say."""
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise ValueError(
            f"state is not {STATE_FORMAT} version {STATE_VERSION} "
            f"(got {state.get('format')!r} version {state.get('version')!r})"
        )
    if (state.get("bits"), state.get("group_size")) != (bits, group_size):
        raise ValueError(
            f"state holds bits={state.get('bits')}, group_size={state.get('group_size')} but "
            f"the parameters say bits={bits}, group_size={group_size}"
        )


@torch.no_grad()
def build_module(model_cfg: ModelConfig, state: dict[str, Any], grid: Grid) -> nn.Module:
    """The runnable CPU module of a packed state (int8 kernels or dequantized float32)."""
    group_size = int(state["group_size"])
    with torch.random.fork_rng(devices=[]):
        model = MLP(model_cfg)
    layers = dict(linear_layers(model))
    if sorted(layers) != sorted(state["layers"]):
        raise ValueError(f"state has layers {sorted(state['layers'])}, model has {sorted(layers)}")
    for name, entry in state["layers"].items():
        qw = unpack_layer(entry, grid, group_size)
        if execution(group_size) == EXEC_INT8:
            setattr(model.layers, name.split(".", 1)[1], int8_dynamic_linear(qw, entry["bias"]))
        else:
            layers[name].weight.copy_(qw.dequantize())
            layers[name].bias.copy_(entry["bias"].float())
    return model.eval()


def finish(
    model_cfg: ModelConfig,
    layers: PackedLayers,
    grid: Grid,
    group_size: int,
    layer_error: list[dict[str, Any]],
    t0: float,
    extra: dict[str, Any],
) -> QuantizedModel:
    """Pack the layers, build the module from the packed state and describe the result."""
    state = pack_state(layers, grid.bits, group_size)
    module = build_module(model_cfg, state, grid)
    info = {
        "bits": grid.bits,
        "group_size": group_size,
        "symmetric": grid.symmetric,
        "execution": execution(group_size),
        "layer_error": layer_error,
        "g_idx_stored": [n for n, e in state["layers"].items() if "g_idx" in e],
        **extra,
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module, state=state, info=info)
