"""Bit packing: exact round trips, real sub-byte sizes, documented bit order, clear refusals."""

from __future__ import annotations

import math

import pytest
import torch

from quantbench.quant.weightonly.packing import pack, packed_nbytes, unpack

SHAPES = [(1,), (7,), (3, 5), (7, 11), (13, 3), (2, 3, 5)]


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_every_width_on_odd_shapes(bits: int, shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(bits * 100 + len(shape))
    codes = torch.randint(0, 1 << bits, shape, generator=g, dtype=torch.int64)
    codes.view(-1)[0] = (1 << bits) - 1  # the extremes are always present
    codes.view(-1)[-1] = 0
    packed = pack(codes, bits)
    assert packed.dtype == torch.uint8 and packed.ndim == 1
    assert packed.numel() == math.ceil(codes.numel() * bits / 8)
    out = unpack(packed, bits, shape)
    assert out.dtype == torch.uint8 and out.shape == codes.shape
    assert torch.equal(out.long(), codes)


def test_three_bit_codes_take_three_bits() -> None:
    codes = torch.full((256, 256), 5)
    assert pack(codes, 3).numel() == 256 * 256 * 3 // 8 == packed_nbytes(256 * 256, 3)


def test_bit_order_is_lsb_first() -> None:
    # 2-bit codes 1, 2, 3 -> stream bits 10 01 11 (LSB first) -> byte 0b00111001
    assert pack(torch.tensor([1, 2, 3]), 2).tolist() == [0b00111001]
    # 3-bit codes 7, 1, 4 -> bits 111 100 001 -> bytes 0b00001111, 0b00000001
    assert pack(torch.tensor([7, 1, 4]), 3).tolist() == [0b00001111, 0b00000001]


def test_empty_input_round_trips() -> None:
    packed = pack(torch.zeros(0, dtype=torch.int64), 3)
    assert packed.numel() == 0
    assert unpack(packed, 3, (0, 4)).shape == (0, 4)


def test_refuses_codes_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"\[0, 7\]"):
        pack(torch.tensor([0, 8]), 3)
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        pack(torch.tensor([-1, 2]), 4)


def test_refuses_bad_bits_and_wrong_sizes() -> None:
    with pytest.raises(ValueError, match=r"bits must be an int in 1\.\.8"):
        pack(torch.tensor([1]), 9)
    with pytest.raises(ValueError, match="9 bytes"):
        unpack(torch.zeros(8, dtype=torch.uint8), 3, (4, 6))
    with pytest.raises(ValueError, match="uint8"):
        unpack(torch.zeros(9, dtype=torch.int32), 3, (4, 6))
