"""Bit packing of low-bit integer codes into ``uint8`` tensors.

Format: the codes are flattened row-major into one bit stream; code ``k`` occupies stream bits
``[k * bits, (k + 1) * bits)``, least significant bit first, and stream bit ``j`` is bit
``j % 8`` of byte ``j // 8``. The last byte is zero-padded. ``n`` codes of ``bits`` bits take
``ceil(n * bits / 8)`` bytes, so 3-bit codes really take 3 bits, not 4.

The shape is not stored here; the caller keeps it next to the packed tensor.
"""

from __future__ import annotations

import math

import torch

MIN_BITS = 1
MAX_BITS = 8


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or isinstance(bits, bool) or not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an int in {MIN_BITS}..{MAX_BITS}, got {bits!r}")


def packed_nbytes(n_codes: int, bits: int) -> int:
    """Bytes that ``n_codes`` codes of ``bits`` bits occupy once packed."""
    _check_bits(bits)
    return math.ceil(n_codes * bits / 8)


def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack integer codes in ``[0, 2**bits)`` (any shape) into a 1-D ``uint8`` tensor."""
    _check_bits(bits)
    flat = codes.detach().reshape(-1).to("cpu", torch.int64)
    if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= 1 << bits):
        raise ValueError(
            f"codes must lie in [0, {(1 << bits) - 1}] for {bits}-bit packing, "
            f"got [{int(flat.min())}, {int(flat.max())}]"
        )
    shifts = torch.arange(bits, dtype=torch.int64)
    stream = ((flat.unsqueeze(1) >> shifts) & 1).to(torch.uint8).reshape(-1)  # (n * bits,)
    pad = (-stream.numel()) % 8
    stream = torch.cat([stream, stream.new_zeros(pad)]).reshape(-1, 8)  # (n_bytes, 8)
    weights = (1 << torch.arange(8, dtype=torch.int64)).to(torch.uint8)
    return (stream * weights).sum(dim=1, dtype=torch.int64).to(torch.uint8)


def unpack(packed: torch.Tensor, bits: int, shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    """Inverse of :func:`pack`: the codes as a ``uint8`` tensor of ``shape``."""
    _check_bits(bits)
    n = math.prod(shape)
    need = packed_nbytes(n, bits)
    if packed.dtype != torch.uint8 or packed.ndim != 1 or packed.numel() != need:
        raise ValueError(
            f"packed codes must be a 1-D uint8 tensor of {need} bytes for {n} {bits}-bit codes, "
            f"got {packed.dtype} of shape {tuple(packed.shape)}"
        )
    shifts = torch.arange(8, dtype=torch.int64)
    stream = ((packed.to(torch.int64).unsqueeze(1) >> shifts) & 1).reshape(-1)[: n * bits]
    weights = 1 << torch.arange(bits, dtype=torch.int64)
    codes = (stream.reshape(n, bits) * weights).sum(dim=1)
    return codes.to(torch.uint8).reshape(tuple(shape))
