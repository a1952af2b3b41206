"""Weight-only machinery on any model: layers found by hooks in call order, convolutions as
matrices over unfolded inputs, group sizes checked against the layers, FP32 leftovers kept."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from quantbench.models import build_model
from quantbench.quant import coverage
from quantbench.quant.methods import gptq, rtn
from quantbench.quant.weightonly.execution import build_module
from quantbench.quant.weightonly.layers import (
    as_matrix,
    check_model_fits,
    input_rows,
    matrix_layers,
)
from tests._toy import toy


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv1d(3, 5, 3, padding=1),
        nn.Conv1d(3, 5, 4, padding=0, stride=2, dilation=2),
        nn.Conv1d(3, 5, 3, padding="same", bias=False),
        nn.Conv1d(3, 5, 5, padding="valid"),
    ],
    ids=["same-by-int", "strided-dilated", "same", "valid"],
)
def test_a_convolution_is_its_matrix_over_unfolded_inputs(conv):
    x = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = conv(x)  # (batch, out, L_out)
        rows = input_rows(conv, x)  # (batch * L_out, C * k)
        out = rows @ as_matrix(conv).T  # (batch * L_out, out)
        if conv.bias is not None:
            out = out + conv.bias
    got = out.reshape(2, -1, 5).transpose(1, 2)
    assert torch.allclose(got, expected, atol=1e-5)


class Reordered(nn.Module):
    """Registered head first, called last: call order is not registration order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 3)
        self.body = nn.Linear(6, 8)
        self.norm = nn.LayerNorm(8)
        self.unused = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(torch.relu(self.body(x))))


def test_layers_come_in_call_order_and_unused_ones_are_left_out():
    names = [n for n, _ in matrix_layers(Reordered(), coverage.probe(6))]
    assert names == ["body", "head"]
    layers = coverage.inventory(Reordered(), coverage.probe(6))
    assert [(layer.name, layer.order) for layer in layers] == [
        ("body", 0), ("norm", 1), ("head", 2), ("unused", -1)
    ]  # fmt: skip


def test_fp32_parameters_outside_the_quantized_layers_are_stored_and_restored():
    torch.manual_seed(0)
    model = Reordered().eval()
    x = torch.randn(64, 6)
    calib_y = torch.zeros(64, dtype=torch.long)
    from quantbench.quant.base import CalibrationData

    calib = CalibrationData(x, calib_y, x[:16], calib_y[:16])
    q = rtn.quantize(model, calib, rtn.Params(bits=4, group_size=-1))
    assert set(q.state["fp32"]) == {"norm.weight", "norm.bias", "unused.weight", "unused.bias"}
    entries = {e["layer"]: e for e in q.info["coverage"]["layers"]}
    assert not entries["unused"]["quantized"] and "not called" in entries["unused"]["why"]
    assert not entries["norm"]["quantized"] and "normalisation" in entries["norm"]["why"]
    torch.manual_seed(1)
    rebuilt = build_module(Reordered(), q.state, rtn.Params(bits=4).grid)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), q.module(x))


def test_group_size_must_fit_every_layer_after_the_first():
    model = build_model({"arch": "transformer", "d_model": 16, "heads": 2, "layers": 1}, 30, 3)
    expected = (
        r"group_size 32 is wider than layer encoder.0.attn.proj \(16 input columns\); "
        r"use a group_size of at most 16 or -1"
    )
    with pytest.raises(ValueError, match=expected) as err:
        check_model_fits(model, 32, 30)
    assert "\n" not in str(err.value)
    check_model_fits(model, 16, 30)
    cnn = build_model({"arch": "cnn1d", "channels": [8, 16]}, 30, 3)
    check_model_fits(cnn, 24, 30)  # conv0 reads the input: 3 columns, one group
    with pytest.raises(ValueError, match=r"wider than layer blocks.conv1 \(24 input columns"):
        check_model_fits(cnn, 32, 30)


def test_group_size_is_checked_before_any_work(monkeypatch):
    t = toy(arch="transformer")
    for kind in (rtn, gptq):
        monkeypatch.setattr(kind, "quantize_layers", lambda *a, **k: pytest.fail("worked"))
        with pytest.raises(ValueError, match="group_size 64 is wider than layer"):
            kind.quantize(t.model, t.calib, kind.Params(group_size=64))


def test_conv_layers_are_quantized_on_their_unfolded_inputs():
    t = toy(arch="cnn1d")
    q = gptq.quantize(t.model, t.calib, gptq.Params(bits=3, group_size=8))
    errors = {e["layer"]: e for e in q.info["layer_error"]}
    assert list(errors) == ["blocks.conv0", "blocks.conv1", "fc", "head"]
    # conv1 sees 15 positions (30 features, pooled once) per calibration row
    assert errors["blocks.conv1"]["rows"]["calib"] == 15 * 2048
    assert q.state["layers"]["blocks.conv1"]["shape"] == [16, 8, 3]
    assert q.state["layers"]["blocks.conv1"]["scales"].shape == (16, 3)  # 24 columns / 8
