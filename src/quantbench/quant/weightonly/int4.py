"""Weight-only codes of up to 4 bits on torch's CPU int4 kernel (bfloat16 activations).

The kernel (``aten._convert_weight_to_int4pack_for_cpu`` + ``aten._weight_int4pack_mm_for_cpu``,
ATen's ``int4mm_kernel.cpp``) computes ``C = A Wᵀ`` with

- ``A`` (M, K) bfloat16, contiguous; ``C`` (M, N) bfloat16, accumulated in float32;
- the weight packed from codes ``q`` (N, K) int32 in [0, 15]. The packed bytes are laid out for
  the CPU code path (AVX-512, AVX2, NEON or scalar) of the process that packs them, so they are
  built at load from the checkpoint's codes and never stored;
- ``scales_and_zeros`` (K / group, N, 2) bfloat16: scale ``s`` and offset ``o`` of each group of
  ``group`` consecutive columns, with the kernel's weight ``w = s * (q - 8) + o``;
- limits: N a multiple of 16, K a multiple of ``group``, ``group`` one of 32, 64, 128, 256.

quantbench's grid reads a code back as ``scale * (q - zero)``
(:mod:`quantbench.quant.weightonly.grid`), so ``s = scale`` and ``o = scale * (8 - zero)``, both
rounded to bfloat16 (8 significant bits where the stored float16 scales have 11). As
``|q - 8| <= 8`` and ``|8 - zero| <= 8``, the kernel's weight differs from
``QuantizedWeight.dequantize()`` by at most ``scale / 32`` (a sixteenth of the grid's own worst
rounding error, ``scale / 2``); codes of fewer than 4 bits run the same way.

Layout built at load (:func:`plan_layout`): each stored group's columns are placed side by side,
groups in order of their index, each padded with zero columns to a multiple of the kernel group;
rows are padded to a multiple of 16 and sliced off the output. GPTQ's act-order (a
non-consecutive ``g_idx``) thus becomes consecutive groups, and the activations' columns are put
in the same order once per call (one ``index_select``). A layer whose inputs need no reordering
and no padding pays only the cast to bfloat16.

The kernel groups are chosen per layer: the one of 32, 64, 128, 256 that pads least (ties: the
larger). A stored group size must be -1 (one group per row) or a multiple of 32, so that no
group is padded inside; only the ragged last group and the layer's width are.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from quantbench.machine.kernels import INT4_OP
from quantbench.quant.weightonly.grid import Grid, QuantizedWeight, quantize_weight

KERNEL_GROUPS: tuple[int, ...] = (32, 64, 128, 256)
ROW_MULTIPLE = 16
MAX_BITS = 4
MIDPOINT = 8  # the kernel reads code q as q - 8
ALTERNATIVES = "use execution: dequantized, or execution: int8 with group_size: -1"
KERNEL_OP = INT4_OP


class Int4Unavailable(RuntimeError, ValueError):
    """The int4 kernel cannot run a layer here; the one-line message names the alternatives.

    Also a ValueError: the fix is the user's (another execution path), so a workflow step ends
    with this one line rather than a traceback.
    """


# ---------------------------------------------------------------- availability


def _ops_present() -> bool:
    aten = torch.ops.aten
    return all(
        hasattr(aten, op)
        for op in ("_convert_weight_to_int4pack_for_cpu", "_weight_int4pack_mm_for_cpu")
    )


@functools.cache
def kernel_problem() -> str | None:
    """Why this torch build and CPU cannot run the int4 kernel, or None when they can.

    Probed once per process: a seeded 16 x 64 layer (groups of 32) is packed and run, and its
    output compared with the dequantized weight's; a build without the ops, a kernel that fails
    on this CPU or one that gives wrong results is reported.
    """
    if not _ops_present():
        return f"torch {torch.__version__} has no CPU int4 kernel ({KERNEL_OP}; torch >= 2.5)"
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(16, 64, generator=gen)
    x = torch.randn(4, 64, generator=gen)
    qw = quantize_weight(W, Grid(4), 32)
    try:
        with torch.inference_mode():
            got = Int4Linear(qw, None)(x)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"torch {torch.__version__}'s CPU int4 kernel fails on this CPU ({first})"
    want = x.bfloat16().float() @ qw.dequantize().T
    err = float((got - want).abs().max())
    if not err <= 0.05 * float(want.abs().max()):
        return f"torch {torch.__version__}'s CPU int4 kernel gives wrong results here ({err:.3g})"
    return None


def code_problem(group_size: int, bits: int) -> str | None:
    """Why codes of these bits and group size cannot run on the int4 kernel, or None (no torch
    needed: the method's parameters alone decide it)."""
    if bits > MAX_BITS:
        return f"the int4 kernel holds codes of at most {MAX_BITS} bits, got bits: {bits}"
    if group_size != -1 and (group_size < 1 or group_size % KERNEL_GROUPS[0]):
        return (
            f"group_size {group_size} is not -1 or a multiple of {KERNEL_GROUPS[0]} (the int4 "
            f"kernel's groups are {', '.join(map(str, KERNEL_GROUPS))} columns)"
        )
    return None


def layer_problem(in_features: int, out_features: int, group_size: int, bits: int) -> str | None:
    """Why a layer of these dimensions and codes cannot run on the int4 kernel, or None."""
    problem = code_problem(group_size, bits)
    if problem:
        return problem
    if in_features < 1 or out_features < 1:
        return f"layer of {in_features} inputs and {out_features} outputs"
    return kernel_problem()


def int4_supported(in_features: int, out_features: int, group_size: int, bits: int = 4) -> bool:
    """Whether this torch build and CPU run such a layer on the int4 kernel."""
    return layer_problem(in_features, out_features, group_size, bits) is None


def require_int4(layers: list[tuple[str, int, int]], group_size: int, bits: int) -> None:
    """Raise :class:`Int4Unavailable` (one line) unless every ``(name, in, out)`` layer runs.

    Needs only the shapes and the method's parameters, so a job calls it before any work.
    """
    for name, in_features, out_features in layers:
        problem = layer_problem(in_features, out_features, group_size, bits)
        if problem is not None:
            raise Int4Unavailable(f"{name}: no int4 kernel: {problem}; {ALTERNATIVES}")


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class Int4Layout:
    """Where each input column and each stored group go in the kernel's padded layout.

    ``slot`` (in,) int64: the kernel column of each input column; ``group_of`` (padded_in /
    kernel_group,) int64: the stored group each kernel group reads its scale and zero from.
    """

    in_features: int
    out_features: int
    kernel_group: int
    padded_in: int
    padded_out: int
    slot: torch.Tensor
    group_of: torch.Tensor

    @property
    def kernel_groups(self) -> int:
        return self.padded_in // self.kernel_group


def _kernel_group(counts: torch.Tensor) -> int:
    """The kernel group that pads the stored groups of ``counts`` columns least (ties: larger)."""

    def width(k: int) -> int:
        return k * int(torch.div(counts + k - 1, k, rounding_mode="floor").sum())

    return min(KERNEL_GROUPS, key=lambda k: (width(k), -k))


def plan_layout(g_idx: torch.Tensor, groups: int, out_features: int) -> Int4Layout:
    """The kernel layout of a layer whose input column ``c`` is in stored group ``g_idx[c]``."""
    g_idx = g_idx.long().cpu()
    counts = torch.bincount(g_idx, minlength=groups)  # (groups,) columns of each stored group
    k = _kernel_group(counts)
    blocks = torch.div(counts + k - 1, k, rounding_mode="floor")  # kernel groups per group
    start = k * (torch.cumsum(blocks, 0) - blocks)  # (groups,) first kernel column of each
    order = torch.argsort(g_idx, stable=True)  # input columns, grouped, in index order
    first = torch.cumsum(counts, 0) - counts  # (groups,) position of each group in ``order``
    rank = torch.arange(g_idx.numel()) - first[g_idx[order]]  # position inside its group
    slot = torch.empty_like(g_idx)
    slot[order] = start[g_idx[order]] + rank
    return Int4Layout(
        in_features=int(g_idx.numel()),
        out_features=int(out_features),
        kernel_group=k,
        padded_in=k * int(blocks.sum()),
        padded_out=ROW_MULTIPLE * math.ceil(out_features / ROW_MULTIPLE),
        slot=slot,
        group_of=torch.repeat_interleave(torch.arange(groups), blocks),
    )


def pack(qw: QuantizedWeight, layout: Int4Layout) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's packed weight (uint8) and ``scales_and_zeros`` (bfloat16) of ``qw``."""
    N, Np, Kp = layout.out_features, layout.padded_out, layout.padded_in
    codes = torch.full((Np, Kp), MIDPOINT, dtype=torch.int32)  # padding: read as 0 * scale
    codes[:N, layout.slot] = qw.codes.cpu().to(torch.int32)
    scale = torch.zeros(Np, layout.kernel_groups)  # (Np, K/group); padded rows: weight 0
    offset = torch.zeros_like(scale)
    scale[:N] = qw.scales.cpu().float()[:, layout.group_of]
    offset[:N] = scale[:N] * (MIDPOINT - qw.zeros.cpu().float()[:, layout.group_of])
    scales_and_zeros = torch.stack([scale, offset], dim=-1).transpose(0, 1)  # (K/group, Np, 2)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
    return packed, scales_and_zeros.contiguous().to(torch.bfloat16)


def _gather(layout: Int4Layout) -> tuple[torch.Tensor | None, bool, int]:
    """How a call puts its inputs in kernel order: (index or None, zero column needed, tail).

    The index picks, for each kernel column up to the last used one, the input column that
    goes there (``in_features``: an appended zero column); ``tail`` zero columns follow.
    """
    K = layout.in_features
    source = torch.full((layout.padded_in,), K, dtype=torch.int64)
    source[layout.slot] = torch.arange(K)
    used = int(layout.slot.max()) + 1
    tail = layout.padded_in - used
    source = source[:used]
    if used == K and torch.equal(source, torch.arange(K)):
        return None, False, tail
    return source, bool((source == K).any()), tail


# ---------------------------------------------------------------- module


@functools.cache
def _kernel():
    """The kernel's operator overload, resolved once (the packet lookup costs per call)."""
    return torch.ops.aten._weight_int4pack_mm_for_cpu.default


class Int4Linear(nn.Module):
    """``y = x Wᵀ + b`` on the int4 kernel: input cast to bfloat16, output float32.

    Inference only. Buffers are not persistent: the packed layout belongs to this CPU and this
    process, the checkpoint keeps the portable codes. ``x`` (..., in) -> (..., out).
    """

    def __init__(self, qw: QuantizedWeight, bias: torch.Tensor | None) -> None:
        super().__init__()
        out_features, in_features = (int(s) for s in qw.codes.shape)
        layout = plan_layout(qw.g_idx, int(qw.scales.shape[1]), out_features)
        packed, scales_and_zeros = pack(qw, layout)
        source, self.zero_column, self.tail = _gather(layout)
        self.in_features, self.out_features = in_features, out_features
        self.kernel_group, self.padded_in, self.padded_out = (
            layout.kernel_group,
            layout.padded_in,
            layout.padded_out,
        )
        self.register_buffer("packed_weight", packed, persistent=False)
        self.register_buffer("scales_and_zeros", scales_and_zeros, persistent=False)
        self.register_buffer("source", source, persistent=False)
        bias = None if bias is None else bias.detach().cpu().float().contiguous()
        self.register_buffer("bias", bias, persistent=False)

    @classmethod
    def from_quantized(cls, qw: QuantizedWeight, bias: torch.Tensor | None) -> Int4Linear:
        """The layer of ``qw``; :class:`Int4Unavailable` (before packing) where it cannot run."""
        out_features, in_features = (int(s) for s in qw.codes.shape)
        require_int4([("layer", in_features, out_features)], qw.group_size, qw.grid.bits)
        return cls(qw, bias)

    def kernel_input(self, x: torch.Tensor) -> torch.Tensor:
        """(M, in) float -> (M, padded_in) bfloat16 in kernel column order."""
        a = x.to(torch.bfloat16)
        if self.zero_column:
            a = F.pad(a, (0, 1))
        source = self._buffers["source"]
        if source is not None:
            a = a.index_select(1, source)
        if self.tail:
            a = F.pad(a, (0, self.tail))
        return a.contiguous()

    def _mm(self, a: torch.Tensor) -> torch.Tensor:
        """(M, padded_in) bfloat16 -> (M, padded_out) bfloat16 on the kernel."""
        buffers = self._buffers  # direct lookups: this runs once per call at batch 1
        return _kernel()(
            a, buffers["packed_weight"], self.kernel_group, buffers["scales_and_zeros"]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x if x.dim() == 2 else x.reshape(-1, self.in_features)  # (M, in)
        y = self._mm(self.kernel_input(flat))  # (M, padded_out) bfloat16
        if self.padded_out != self.out_features:
            y = y[:, : self.out_features]
        bias = self._buffers["bias"]
        y = y.float() if bias is None else torch.add(y, bias)  # (M, out) float32
        return y if x.dim() == 2 else y.reshape(*x.shape[:-1], self.out_features)

    @torch.no_grad()
    def kernel_weight(self) -> torch.Tensor:
        """The (out, in) float32 weight as the kernel applies it, read back through the kernel
        (each entry rounded to bfloat16 on the way out)."""
        eye = torch.eye(self.in_features)
        W_t = self._mm(self.kernel_input(eye))  # (in, padded_out)
        return W_t[:, : self.out_features].float().T.contiguous()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"kernel_group={self.kernel_group}, padded=({self.padded_out}, {self.padded_in}), "
            f"reorders_inputs={self.source is not None}, bias={self.bias is not None}"
        )
