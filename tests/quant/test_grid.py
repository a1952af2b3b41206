"""The shared weight grid: scales, zeros, codes, groups (ragged ones included)."""

from __future__ import annotations

import pytest
import torch

from quantbench.quant.weightonly.grid import (
    Grid,
    check_group_size,
    contiguous_groups,
    dequantize,
    fit,
    group_count,
    quantize,
    quantize_weight,
)


def _weights(out: int = 6, width: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randn(out, width, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bits", [1, 9, 4.0, True])
def test_grid_refuses_bad_bits(bits) -> None:
    with pytest.raises(ValueError, match=r"bits must be one of \[2, 3, 4, 5, 6, 7, 8\]"):
        Grid(bits)


@pytest.mark.parametrize("group_size", [0, -2, 3.5, False])
def test_group_size_must_be_minus_one_or_positive(group_size) -> None:
    with pytest.raises(ValueError, match="group_size must be -1"):
        check_group_size(group_size)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_fit_gives_float16_scales_and_integer_zeros(bits: int, symmetric: bool) -> None:
    grid = Grid(bits, symmetric)
    W = _weights()
    scale, zero = fit(W, grid)
    assert torch.equal(scale, scale.half().float()) and bool((scale > 0).all())
    assert torch.equal(zero, zero.round()) and zero.min() >= 0 and zero.max() <= grid.maxq
    if symmetric:
        assert bool((zero == 2 ** (bits - 1)).all())
    codes = quantize(W, scale[:, None], zero[:, None], grid)
    err = (dequantize(codes, scale[:, None], zero[:, None]) - W).abs()
    # inside the range, rounding is off by at most half a step (plus float16 scale rounding)
    assert bool((err <= scale[:, None] * 0.5 + 1e-3 * W.abs().amax(1, keepdim=True)).all())


def test_fit_covers_zero_and_handles_all_zero_rows() -> None:
    W = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [-3.0, -2.0, -1.0]])
    grid = Grid(4)
    scale, zero = fit(W, grid)
    assert zero[0] == 0 and zero[2] == grid.maxq  # ranges stretched to include 0
    codes = quantize(W, scale[:, None], zero[:, None], grid)
    assert bool((dequantize(codes, scale[:, None], zero[:, None])[1] == 0).all())


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weights_on_the_grid_round_trip_exactly(bits: int, symmetric: bool) -> None:
    grid = Grid(bits, symmetric)
    g = torch.Generator().manual_seed(bits)
    out, width = 5, 16
    low = 1 if symmetric else 0  # symmetric grids leave code 0 unused: ±max are 1 and maxq
    codes = torch.randint(low, grid.maxq + 1, (out, width), generator=g).float()
    codes[:, 0], codes[:, 1] = low, grid.maxq  # every row spans the whole grid
    zero = (
        torch.full((out, 1), float(2 ** (bits - 1)))
        if symmetric
        else torch.randint(0, grid.maxq + 1, (out, 1), generator=g).float()
    )
    if symmetric:
        codes[:, 0] = 1  # a symmetric grid is [-max, max]: its lowest code is never reached
    scale = 2.0 ** torch.randint(-6, 0, (out, 1), generator=g).float()
    W = dequantize(codes, scale, zero)
    qw = quantize_weight(W, grid, -1)
    assert torch.equal(qw.dequantize(), W)


def test_ragged_last_group() -> None:
    W = _weights(4, 30)
    qw = quantize_weight(W, Grid(4), 8)
    assert group_count(30, 8) == 4 and qw.scales.shape == (4, 4)
    assert contiguous_groups(30, 8).tolist() == [i // 8 for i in range(30)]
    tail = quantize_weight(W[:, 24:], Grid(4), -1)  # the last group holds 6 columns
    assert torch.equal(qw.codes[:, 24:], tail.codes)
    assert torch.equal(qw.scales[:, 3], tail.scales[:, 0])
    assert qw.groups_contiguous


def test_group_wider_than_layer_is_one_group_per_row() -> None:
    W = _weights(4, 29)
    wide, per_row = quantize_weight(W, Grid(3), 32), quantize_weight(W, Grid(3), -1)
    assert wide.scales.shape == (4, 1)
    assert torch.equal(wide.dequantize(), per_row.dequantize())


def test_dequantize_uses_each_columns_group() -> None:
    W = _weights(3, 8)
    qw = quantize_weight(W, Grid(4), 4)
    expected = torch.cat(
        [
            qw.scales[:, g : g + 1]
            * (qw.codes[:, 4 * g : 4 * g + 4].float() - qw.zeros[:, g : g + 1])
            for g in range(2)
        ],
        dim=1,
    )
    assert torch.equal(qw.dequantize(), expected)
