"""RTN: the shared grid and packing, both execution paths, rebuild and checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.models import resolve
from quantbench.quant.base import CalibrationData
from quantbench.quant.loader import load_model
from quantbench.quant.methods import registry as methods
from quantbench.quant.methods import rtn
from quantbench.quant.weightonly.grid import quantize_weight
from quantbench.quant.weightonly.params import EXEC_FP32, EXEC_INT8
from quantbench.quant.weightonly.state import unpack_layer
from quantbench.training.checkpoint import save_checkpoint

CFG = resolve({"arch": "mlp", "hidden": [24, 16], "dropout": 0.0}, 10, 3)
LINEARS = ["layers.fc0", "layers.fc1", "layers.head"]


def _setup(seed: int = 0) -> tuple[nn.Module, CalibrationData]:
    torch.manual_seed(seed)
    model = CFG.build().eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(400, CFG.n_features, generator=g)
    y = torch.randint(0, 3, (400,), generator=g)
    return model, CalibrationData(x[:300], y[:300], x[300:], y[300:], seed=seed)


def _meta(variant: dict) -> dict:
    return {
        "method": f"rtn_w{variant['bits']}",
        "kind": "rtn",
        "params": variant,
        "model": CFG.to_dict(),
        "feature_names": [f"f{i}" for i in range(CFG.n_features)],
        "class_names": ["web", "video", "voip"],
        "seed": 0,
    }


def test_params_defaults_and_validation() -> None:
    assert rtn.Params() == rtn.Params(bits=4, group_size=32, symmetric=False)
    with pytest.raises(ValueError, match=r"bits must be one of \[2, 3, 4, 5, 6, 7, 8\], got 1"):
        rtn.Params(bits=1)
    with pytest.raises(ValueError, match=r"group_size must be -1 .* got 0"):
        rtn.Params(group_size=0)
    with pytest.raises(ValueError, match="symmetric must be true or false, got 1"):
        rtn.Params(symmetric=1)
    with pytest.raises(ValueError, match="does not take calibration_samples"):
        methods.make_params("rtn", {"kind": "rtn", "calibration_samples": 10})


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_quantize_matches_the_grid_and_reports_errors(bits: int) -> None:
    model, calib = _setup()
    q = rtn.quantize(model, calib, rtn.Params(bits=bits, group_size=4))
    for name, W in (
        ("layers.fc0", model.layers.fc0.weight),
        ("layers.fc1", model.layers.fc1.weight),
    ):
        expected = quantize_weight(W.detach(), rtn.Params(bits=bits).grid, 4)
        got = unpack_layer(q.state["layers"][name], expected.grid, 4)
        assert torch.equal(got.codes, expected.codes)
        assert torch.equal(got.dequantize(), expected.dequantize())
    info = q.info
    assert info["execution"] == EXEC_FP32 and info["bits"] == bits
    assert info["calibration_rows"] == 300 and info["heldout_rows"] == 100
    assert [e["layer"] for e in info["layer_error"]] == LINEARS
    fc0 = info["layer_error"][0]
    x, W = calib.x_val, model.layers.fc0.weight.detach()
    W_hat = q.module.layers.fc0.weight.detach()
    assert fc0["heldout"] == pytest.approx(float(((x @ (W - W_hat).T) ** 2).sum() / 100), rel=1e-5)


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_per_channel_codes_run_on_exact_int8_kernels(bits: int, symmetric: bool) -> None:
    model, calib = _setup()
    params = rtn.Params(bits=bits, group_size=-1, symmetric=symmetric)
    q = rtn.quantize(model, calib, params)
    assert q.info["execution"] == EXEC_INT8
    for name, entry in q.state["layers"].items():
        layer = q.module.get_submodule(name)
        weight = layer.weight()
        assert weight.dtype == torch.qint8 and weight.qscheme() == torch.per_channel_affine
        grid_w = unpack_layer(entry, params.grid, -1).dequantize()
        assert torch.equal(weight.dequantize(), grid_w)  # bit for bit
    with torch.autograd.profiler.profile() as prof, torch.no_grad():
        q.module(calib.x_val)
    assert "quantized::linear_dynamic" in {e.name for e in prof.function_events}


def test_rebuild_and_checkpoint_round_trip(tmp_path: Path) -> None:
    model, calib = _setup()
    variant = {"kind": "rtn", "bits": 3, "group_size": 4}
    params = methods.make_params("rtn", variant)
    q = rtn.quantize(model, calib, params)
    with torch.no_grad():
        expected = q.module(calib.x_val)
        assert torch.equal(rtn.rebuild(CFG, q.state, params)(calib.x_val), expected)
        path = tmp_path / "rtn_w3.pt"
        save_checkpoint(path, _meta(variant), q.state)
        loaded = load_model(path)
        assert torch.equal(loaded.module(calib.x_val), expected)
    assert loaded.meta["kind"] == "rtn" and loaded.meta["params"] == variant


def test_rebuild_refuses_mismatched_parameters() -> None:
    model, calib = _setup()
    q = rtn.quantize(model, calib, rtn.Params(bits=3, group_size=4))
    with pytest.raises(ValueError, match="bits=3, group_size=4 but the parameters say bits=4"):
        rtn.rebuild(CFG, q.state, rtn.Params(bits=4, group_size=4))


def test_group_wider_than_the_first_layer_is_one_group_per_row() -> None:
    model, calib = _setup()
    q = rtn.quantize(model, calib, rtn.Params(bits=4, group_size=16))
    assert q.state["layers"]["layers.fc0"]["scales"].shape == (24, 1)  # 10 inputs, one group
    assert q.state["layers"]["layers.fc1"]["scales"].shape == (16, 2)  # 24 inputs: 16 + 8
    rtn.check_fits(rtn.Params(group_size=16), [10, 24])
