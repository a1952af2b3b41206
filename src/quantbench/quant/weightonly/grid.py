"""The weight quantization grid shared by every weight-only kind (``rtn`` and ``gptq``).

A grid has ``2**bits`` levels. Each output row (or each group of ``group_size`` consecutive
input columns of a row) gets one ``scale`` and one integer ``zero``; a weight ``w`` becomes the
code ``q = clamp(round(w / scale) + zero, 0, maxq)`` and is read back as ``scale * (q - zero)``.

- asymmetric: the range ``[min(w, 0), max(w, 0)]`` is spread over the levels,
  ``zero = round(-min / scale)``;
- symmetric: ``scale = max|w| / (2**(bits-1) - 1)`` and ``zero = 2**(bits - 1)``, so ``±max|w|``
  are levels and code 0 is unused (the int8 convention, -127..127; 2 bits give 3 levels).

Scales are rounded to float16 *before* any weight is quantized, so the stored float16 scales
reproduce the quantized weights bit for bit; zeros are codes in ``[0, maxq]``.

Groups: group ``g`` of a layer of input width ``width`` covers columns
``[g * group_size, (g + 1) * group_size)``; the last group may be shorter (ragged), and a layer
narrower than ``group_size`` has one group per row. ``group_size = -1`` is one group per row
(per output channel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BITS = (2, 3, 4, 5, 6, 7, 8)
FP16_TINY = 2.0**-24  # smallest positive float16 (subnormal): scales never round to zero
FP16_MAX = 65504.0


@dataclass(frozen=True)
class Grid:
    """Bit width and symmetry of a quantization grid."""

    bits: int
    symmetric: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or isinstance(self.bits, bool) or self.bits not in BITS:
            raise ValueError(f"bits must be one of {list(BITS)}, got {self.bits!r}")
        if not isinstance(self.symmetric, bool):
            raise ValueError(f"symmetric must be true or false, got {self.symmetric!r}")

    @property
    def maxq(self) -> int:
        """Largest code."""
        return (1 << self.bits) - 1


def fit(x: torch.Tensor, grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero for each row of ``x`` (rows, cols), both float32 ``(rows,)``.

    ``scale`` holds float16-representable values; ``zero`` holds integers in ``[0, maxq]``.
    """
    x = x.float()
    zeros = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    xmin = torch.minimum(x.min(dim=1).values, zeros)  # (rows,)
    xmax = torch.maximum(x.max(dim=1).values, zeros)  # (rows,)
    if grid.symmetric:
        xmax = torch.maximum(xmin.abs(), xmax)
        xmin = torch.where(xmin < 0, -xmax, xmin)
    empty = (xmin == 0) & (xmax == 0)
    xmin = torch.where(empty, -1.0, xmin)
    xmax = torch.where(empty, 1.0, xmax)
    if grid.symmetric:
        half = (grid.maxq + 1) // 2  # 2**(bits-1)
        scale = _fp16(xmax / (half - 1))
        return scale, torch.full_like(scale, float(half))
    scale = _fp16((xmax - xmin) / grid.maxq)
    return scale, torch.round(-xmin / scale).clamp(0, grid.maxq)


def _fp16(scale: torch.Tensor) -> torch.Tensor:
    """Scales rounded to float16 values (kept positive and finite), as float32."""
    return scale.clamp(FP16_TINY, FP16_MAX).half().float()


def quantize(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Codes of ``x`` as float32 integers in ``[0, maxq]`` (``scale``/``zero`` broadcast to x)."""
    return torch.clamp(torch.round(x / scale) + zero, 0, grid.maxq)


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """Float32 values of ``codes`` (``scale``/``zero`` broadcast to codes)."""
    return scale * (codes.float() - zero)


def check_group_size(group_size: int) -> None:
    """``group_size`` must be -1 (per output channel) or a positive int."""
    if (
        not isinstance(group_size, int)
        or isinstance(group_size, bool)
        or (group_size != -1 and group_size < 1)
    ):
        raise ValueError(
            f"group_size must be -1 (one group per output channel) or a positive int, "
            f"got {group_size!r}"
        )


def group_count(width: int, group_size: int) -> int:
    """Groups per row of a layer with ``width`` inputs (the last one may be ragged)."""
    return 1 if group_size == -1 else math.ceil(width / group_size)


def contiguous_groups(width: int, group_size: int, device: torch.device | str = "cpu"):
    """Group of each input column when groups are consecutive columns: ``(width,)`` int64."""
    cols = torch.arange(width, device=device)
    return torch.zeros_like(cols) if group_size == -1 else cols // group_size


@dataclass
class QuantizedWeight:
    """One layer's weight on the grid.

    ``codes`` (out, in) uint8 in ``[0, maxq]``; ``scales`` (out, groups) float32 holding float16
    values; ``zeros`` (out, groups) uint8 codes; ``g_idx`` (in,) int64, the group of each input
    column (consecutive unless GPTQ's act-order reordered the groups).
    """

    codes: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    grid: Grid
    group_size: int

    def dequantize(self) -> torch.Tensor:
        """Float32 weight (out, in): ``scale * (code - zero)`` of each column's group."""
        return dequantize(self.codes, self.scales[:, self.g_idx], self.zeros[:, self.g_idx].float())

    @property
    def groups_contiguous(self) -> bool:
        """True when ``g_idx`` is the default layout, so it need not be stored."""
        default = contiguous_groups(self.codes.shape[1], self.group_size, self.g_idx.device)
        return bool(torch.equal(self.g_idx, default))


def quantize_weight(W: torch.Tensor, grid: Grid, group_size: int) -> QuantizedWeight:
    """Round-to-nearest: each group of ``W`` (out, in) fitted and rounded independently."""
    check_group_size(group_size)
    W = W.float()
    width = W.shape[1]
    span = width if group_size == -1 else group_size
    scales, zeros, codes = [], [], []
    for start in range(0, width, span):
        block = W[:, start : start + span]  # (out, <= span)
        scale, zero = fit(block, grid)
        scales.append(scale)
        zeros.append(zero)
        codes.append(quantize(block, scale[:, None], zero[:, None], grid))
    return QuantizedWeight(
        codes=torch.cat(codes, dim=1).to(torch.uint8),
        scales=torch.stack(scales, dim=1),
        zeros=torch.stack(zeros, dim=1).to(torch.uint8),
        g_idx=contiguous_groups(width, group_size, W.device),
        grid=grid,
        group_size=group_size,
    )
