"""The int4 kernel path: layout, packing round trips, act-order, padding, and the clear stop."""

from __future__ import annotations

import pytest
import torch

from quantbench.quant.methods import gptq
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import Grid, QuantizedWeight, quantize_weight

# Skipped only where torch lacks the ops; a kernel that runs wrong must fail these tests.
needs_kernel = pytest.mark.skipif(not int4._ops_present(), reason="torch has no CPU int4 kernel")


def weight(out: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(out, width, generator=torch.Generator().manual_seed(seed))


def act_order_weight(out: int, width: int, group_size: int, seed: int = 0) -> QuantizedWeight:
    """GPTQ with act-order: groups follow descending diag(H), so g_idx is not consecutive."""
    g = torch.Generator().manual_seed(seed)
    X = (
        torch.randn(400, width, generator=g)
        * torch.linspace(0.2, 3.0, width)[torch.randperm(width, generator=g)]
    )
    params = gptq.Params(bits=4, group_size=group_size, act_order=True)
    qw, _ = gptq.gptq_quantize(weight(out, width, seed), gptq.hessian(X), params)
    assert not qw.groups_contiguous
    return qw


def step(qw: QuantizedWeight) -> torch.Tensor:
    """(out, in) grid step (scale) of each weight entry."""
    return qw.scales[:, qw.g_idx]


def assert_round_trip(layer: int4.Int4Linear, qw: QuantizedWeight) -> None:
    """The kernel's weight is the dequantized weight up to bfloat16 scales and read-back."""
    W_hat = qw.dequantize()
    bound = step(qw) / 32 + W_hat.abs() / 256 + 1e-6
    err = (layer.kernel_weight() - W_hat).abs()
    assert (err <= bound).all(), f"worst excess {(err - bound).max():.3g}"


def assert_matches(layer: int4.Int4Linear, qw: QuantizedWeight, bias, x: torch.Tensor) -> None:
    """Output = bfloat16 inputs times the dequantized weight, within the bfloat16 bounds."""
    xb = x.bfloat16().float()
    want = xb @ qw.dequantize().T + (0 if bias is None else bias)
    bound = xb.abs() @ (step(qw) / 32).T + (want.abs() + 1) / 128
    got = layer(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert ((got - want).abs() <= bound).all()


@needs_kernel
@pytest.mark.parametrize(
    ("out", "width", "group_size", "grid"),
    [
        (256, 256, 32, Grid(4)),
        (32, 512, 128, Grid(4)),
        (48, 1024, -1, Grid(4)),  # per row: kernel groups of 256 share the row's scale
        (64, 256, 64, Grid(4, symmetric=True)),
        (32, 128, 32, Grid(3)),  # fewer bits run as 4-bit codes, exactly
        (3, 29, 32, Grid(4)),  # the default head/first-layer shapes: padded rows and columns
        (100, 80, 32, Grid(4)),  # ragged last group; 100 rows padded to 112
    ],
)
def test_packing_round_trips_to_the_dequantized_weight(out, width, group_size, grid):
    qw = quantize_weight(weight(out, width), grid, group_size)
    bias = torch.randn(out, generator=torch.Generator().manual_seed(1))
    layer = int4.Int4Linear.from_quantized(qw, bias)
    assert_round_trip(layer, qw)
    assert_matches(layer, qw, bias, torch.randn(9, width, generator=torch.Generator()))


@needs_kernel
def test_padding_is_added_and_sliced_away():
    qw = quantize_weight(weight(3, 80), Grid(4), 32)
    layer = int4.Int4Linear.from_quantized(qw, None)
    assert (layer.kernel_group, layer.padded_in, layer.padded_out) == (32, 96, 16)
    assert layer.source is None and layer.tail == 16 and not layer.zero_column
    assert layer(torch.randn(5, 80)).shape == (5, 3)


@needs_kernel
def test_leading_dimensions_are_kept():
    qw = quantize_weight(weight(32, 64), Grid(4), 32)
    layer = int4.Int4Linear.from_quantized(qw, torch.zeros(32))
    x = torch.randn(2, 3, 64)
    assert torch.equal(layer(x), layer(x.reshape(6, 64)).reshape(2, 3, 32))


@needs_kernel
@pytest.mark.parametrize(("width", "group_size"), [(256, 32), (80, 32), (192, 64)])
def test_act_order_reorders_inputs_and_equals_the_sorted_layer(width, group_size):
    qw = act_order_weight(48, width, group_size)
    layer = int4.Int4Linear.from_quantized(qw, None)
    assert layer.source is not None
    assert_round_trip(layer, qw)
    x = torch.randn(7, width, generator=torch.Generator().manual_seed(2))
    assert_matches(layer, qw, None, x)
    # The same weight with its columns sorted by group is a consecutive-group layer: fed the
    # sorted inputs, it runs the very same kernel on the very same numbers.
    order = torch.argsort(qw.g_idx, stable=True)
    sorted_qw = QuantizedWeight(
        qw.codes[:, order], qw.scales, qw.zeros, qw.g_idx[order], qw.grid, qw.group_size
    )
    assert sorted_qw.groups_contiguous
    plain = int4.Int4Linear.from_quantized(sorted_qw, None)
    assert plain.source is None
    assert torch.equal(layer(x), plain(x[:, order]))


@needs_kernel
def test_groups_of_any_size_are_padded_inside():
    # hand-made group index: groups of 20, 40 and 4 columns, interleaved
    g_idx = torch.tensor([0] * 20 + [1] * 40 + [2] * 4)[torch.randperm(64)]
    base = quantize_weight(weight(16, 64), Grid(4), 64)
    qw = QuantizedWeight(
        codes=base.codes,
        scales=torch.rand(16, 3, generator=torch.Generator().manual_seed(3)) * 0.1 + 0.01,
        zeros=torch.randint(0, 16, (16, 3), dtype=torch.uint8),
        g_idx=g_idx,
        grid=Grid(4),
        group_size=64,
    )
    layer = int4.Int4Linear(qw, None)  # the constructor itself takes any group index
    assert layer.zero_column and layer.padded_in == 32 + 64 + 32
    assert_round_trip(layer, qw)
    assert_matches(layer, qw, None, torch.randn(4, 64))


@pytest.mark.parametrize("seed", range(5))
def test_layout_puts_every_column_in_its_own_groups_kernel_group(seed):
    g = torch.Generator().manual_seed(seed)
    groups = int(torch.randint(1, 6, (1,), generator=g))
    width = int(torch.randint(groups, 300, (1,), generator=g))
    g_idx = torch.randint(0, groups, (width,), generator=g)
    lay = int4.plan_layout(g_idx, groups, 20)
    assert lay.padded_in % lay.kernel_group == 0 and lay.padded_out == 32
    assert len(set(lay.slot.tolist())) == width and int(lay.slot.max()) < lay.padded_in
    assert torch.equal(lay.group_of[lay.slot // lay.kernel_group], g_idx)


def test_kernel_group_pads_least_and_prefers_larger():
    per_row = int4.plan_layout(torch.zeros(1024, dtype=torch.long), 1, 8)
    assert (per_row.kernel_group, per_row.padded_in) == (256, 1024)
    grouped = int4.plan_layout(torch.arange(1024) // 128, 8, 8)
    assert (grouped.kernel_group, grouped.padded_in) == (128, 1024)
    narrow = int4.plan_layout(torch.zeros(29, dtype=torch.long), 1, 8)
    assert (narrow.kernel_group, narrow.padded_in) == (32, 32)


@needs_kernel
def test_buffers_are_not_saved():
    layer = int4.Int4Linear.from_quantized(quantize_weight(weight(16, 64), Grid(4), 32), None)
    assert layer.state_dict() == {}
    assert {n for n, _ in layer.named_buffers()} == {"packed_weight", "scales_and_zeros"}


# ---------------------------------------------------------------- the clear stop


@pytest.mark.parametrize(
    ("group_size", "bits", "words"),
    [(16, 4, "group_size 16"), (48, 4, "group_size 48"), (32, 5, "bits: 5")],
)
def test_unsupported_layers_stop_with_one_line_naming_alternatives(group_size, bits, words):
    assert int4.layer_problem(64, 32, group_size, bits) is not None
    assert not int4.int4_supported(64, 32, group_size, bits)
    with pytest.raises(int4.Int4Unavailable) as exc:
        int4.require_int4([("layers.fc0", 64, 32)], group_size, bits)
    msg = str(exc.value)
    assert "\n" not in msg and words in msg and msg.startswith("layers.fc0: ")
    assert "execution: dequantized" in msg and "execution: int8" in msg


def test_the_stop_comes_before_any_packing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("packed before the check")

    monkeypatch.setattr(int4, "pack", fail)
    qw = quantize_weight(weight(32, 64), Grid(4), 16)
    with pytest.raises(int4.Int4Unavailable, match="group_size 16"):
        int4.Int4Linear.from_quantized(qw, None)


@pytest.fixture
def fresh_probe():
    int4.kernel_problem.cache_clear()
    yield
    int4.kernel_problem.cache_clear()


def test_a_torch_without_the_ops_is_named(monkeypatch, fresh_probe):
    monkeypatch.setattr(int4, "_ops_present", lambda: False)
    problem = int4.kernel_problem()
    assert problem is not None and torch.__version__ in problem
    with pytest.raises(int4.Int4Unavailable, match="no CPU int4 kernel"):
        int4.require_int4([("layers.head", 256, 3)], 32, 4)


def test_a_kernel_that_fails_or_is_wrong_is_named(monkeypatch, fresh_probe):
    def boom(self, a):
        raise RuntimeError("unsupported CPU\nmore detail")

    monkeypatch.setattr(int4.Int4Linear, "_mm", boom)
    assert int4.kernel_problem().endswith("fails on this CPU (unsupported CPU)")
    int4.kernel_problem.cache_clear()
    monkeypatch.setattr(int4.Int4Linear, "_mm", lambda self, a: torch.zeros(a.shape[0], 16))
    assert "wrong results" in int4.kernel_problem()
