"""The packed checkpoint state of a weight-only model.

Packed state layout (``QuantizedModel.state``, stored in the checkpoint)::

    format "quantbench-weightonly"   version 1   bits int   group_size int
    layers {"layers.fc0": {"shape": weight shape, [out, in] or [out, C, k] (Conv1d),
                           "qweight": uint8 (bit-packed codes, row-major),
                           "scales":  float16 (out, groups),
                           "qzeros":  uint8 (bit-packed zero codes, (out, groups) row-major),
                           "bias":    float32 (out,),
                           "g_idx":   uint8 (bit-packed group of each input column, with
                                      ceil(log2(groups)) bits; int32 beyond 256 groups),
                                      only when act-order reordered the groups},
            ...}
    fp32   {state_dict key: tensor} of every parameter and buffer outside those layers
           (LayerNorm, embeddings, ...), only when there is any
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from quantbench.quant.ao import backend
from quantbench.quant.weightonly.grid import (
    Grid,
    QuantizedWeight,
    contiguous_groups,
    group_count,
)
from quantbench.quant.weightonly.layers import PackedLayers
from quantbench.quant.weightonly.packing import pack, unpack

STATE_FORMAT = "quantbench-weightonly"


STATE_VERSION = 1


def pack_layer(
    qw: QuantizedWeight, bias: torch.Tensor | None, shape: list[int] | None = None
) -> dict[str, Any]:
    """One layer's checkpoint entry (see the module docstring); ``shape``: the weight's own
    shape when it is not the matrix's (a Conv1d's (out, C, k))."""
    entry: dict[str, Any] = {
        "shape": [int(s) for s in (shape or qw.codes.shape)],
        "qweight": pack(qw.codes, qw.grid.bits),
        "scales": qw.scales.to(torch.float16).contiguous(),
        "qzeros": pack(qw.zeros, qw.grid.bits),
    }
    if bias is not None:
        entry["bias"] = bias.float().contiguous()
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
    """The layer's weight on the grid (as the matrix (out, in)) from its checkpoint entry."""
    out, width = int(entry["shape"][0]), math.prod(int(s) for s in entry["shape"][1:])
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


def packed_keys(layers: dict[str, Any]) -> set[str]:
    return {f"{name}.{p}" for name in layers for p in ("weight", "bias")}


def pack_state(
    layers: PackedLayers, bits: int, group_size: int, fp32_model: nn.Module
) -> dict[str, Any]:
    """The checkpoint ``state`` of a weight-only model (plain containers and tensors only).

    Parameters and buffers of ``fp32_model`` outside the packed layers are kept as they are.
    """
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "bits": int(bits),
        "group_size": int(group_size),
        "layers": {n: pack_layer(qw, bias, shape) for n, (qw, bias, shape) in layers.items()},
    }
    packed = packed_keys(layers)
    rest = backend.without_keys(fp32_model.state_dict(), lambda k: k in packed)
    if rest:
        state["fp32"] = rest
    return state


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
